"""Result rows: flat dicts with a fixed column order and a status field."""
from __future__ import annotations

from typing import Any

from harness.settings import Cell

COLUMNS = (
    # what ran
    "run_id", "cell", "framework", "framework_version", "model", "mode", "phase", "device", "device_name",
    "dataset", "batch_size", "epochs", "seed", "lr", "threads",
    # how it ran (as read back from the framework, not as asked for)
    "precision", "compile", "layout", "tf32", "autotune", "deterministic",
    # outcome
    "status", "error", "params", "flops_per_image",
    # train mode
    "test_accuracy", "test_loss", "train_loss", "train_time_s", "eval_time_s", "images_per_sec",
    # speed mode: per-step latency samples, pipelined throughput, device peak
    "steps", "warmup", "ms_mean", "ms_std", "ms_median", "ms_iqr", "ms_min", "ms_max", "ms_ci_low", "ms_ci_high",
    "first_step_s", "pipelined_ms", "pipelined_images_per_sec", "achieved_gflops", "peak_gflops", "peak_fraction",
    "peak_mem_mb",
    # time to target, data parallel
    "target", "time_to_target_s", "epochs_to_target", "epochs_run", "world_size", "per_device_batch",
    "scaling_efficiency",
    # the GPU and its software, as the framework and NVML report them (empty on the CPU)
    "gpu_driver", "cuda_runtime", "cudnn", "nccl", "gpu_memory_mb", "gpu_sm_clock_mhz", "gpu_power_limit_w",
    "gpu_mig", "gpu_other_procs",
    # the worker's interpreter (one environment per framework: --python)
    "python", "interpreter",
    # telemetry (harness/hardware/telemetry.py): was the machine quiet, one memory meter for every framework,
    # utilisation and energy of the timed work
    "host_busy_fraction", "rss_peak_mb", "gpu_mem_peak_mb", "cpu_util", "gpu_util", "energy_j", "joules_per_image",
    "note",
)
STATUSES = ("ok", "error", "crashed", "timeout", "diverged", "oom", "unavailable")


def cell_id(framework: str, model: str, device: str) -> str:
    return f"{framework}-{model}-{device.replace(':', '')}"


def cell_values(cell: Cell) -> dict[str, Any]:
    """The columns a cell's settings fill in (what was asked for; execution values come from the worker)."""
    run = cell.run
    return {"run_id": cell.run_id, "cell": cell.name, "framework": cell.framework,
            "framework_version": cell.framework_version, "model": cell.model, "mode": run.mode,
            "phase": "train" if run.mode == "train" else None, "device": cell.device, "device_name": cell.device_name,
            "dataset": run.dataset, "batch_size": cell.batch_size, "epochs": run.epochs, "seed": cell.seed,
            "lr": run.lr, "threads": run.threads, "precision": run.precision, "compile": run.compile,
            "layout": run.layout, "world_size": cell.world_size, "per_device_batch": cell.per_device_batch}


def make_row(cell: Cell, **values: Any) -> dict[str, Any]:
    """A row with every column present: the cell's settings, then ``values``; missing ones are None."""
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(cell_values(cell))
    row.update(values)
    if row["status"] not in STATUSES:
        raise ValueError(f"bad status {row['status']!r}")
    return row
