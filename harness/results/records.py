"""Result rows: flat dicts with a fixed column order and a status field, built here and only here.

A row is made from typed parts on both sides of the process boundary: the cell's settings (``cell_values``),
then in the worker what it measured (``measured_row``), or in the orchestrator why the cell failed
(``failure_row``); the orchestrator then fills what only it knows (NVML's facts, telemetry, the retry's and the
executor's notes) with ``fill`` and ``add_note``. Notes are joined in one place (``add_note``).
"""
from __future__ import annotations

from typing import Any, Iterable

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
    # how sampling stopped (harness/worker/sampling.py): auto or fixed, target | budget | cap | fixed, the median's
    # interval half-width in % of it, and whether the target was met by a series that did not drift
    "sampling", "stop", "ci_half_pct", "stable",
    "first_step_s", "compile_cache", "pipelined_ms", "pipelined_images_per_sec", "pipelined_from", "pipelined_ci_half_pct",
    "achieved_gflops", "peak_gflops", "peak_fraction", "peak_mem_mb",
    # where the time went: the phase's per-step series and pipelined windows (warm-up included), the cell's wall time
    "timing_s", "window_time_s", "cell_wall_s",
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
    # the GPU's SM clock during the timed work (throttling shows as a minimum below gpu_sm_clock_mhz, the maximum)
    "gpu_sm_clock_min_mhz", "gpu_sm_clock_mean_mhz",
    "note",
)
STATUSES = ("ok", "error", "crashed", "timeout", "stalled", "diverged", "oom", "unavailable")
# the columns every row fills (what identifies its cell, and how it ended); any other may be empty
REQUIRED = ("cell", "framework", "model", "mode", "status")
Row = dict[str, Any]

# each column's type, the one place it is declared: results.csv is read back with it (csvio.read_csv) and the JSON
# Schema of a row is made from it (harness/results/schema): text stays text ("12.10" is a version, not 12.1), int
# columns take pandas' "128.0" of an int column with gaps, bool is True/False
COLUMN_TYPES: dict[str, type] = {
    **dict.fromkeys(COLUMNS, str),
    **dict.fromkeys(("batch_size", "epochs", "seed", "threads", "params", "flops_per_image", "steps", "warmup",
                     "epochs_to_target", "epochs_run", "world_size", "per_device_batch", "gpu_other_procs"), int),
    **dict.fromkeys(("tf32", "autotune", "deterministic", "stable"), bool),
    **dict.fromkeys(("lr", "test_accuracy", "test_loss", "train_loss", "train_time_s", "eval_time_s", "images_per_sec",
                     "ms_mean", "ms_std", "ms_median", "ms_iqr", "ms_min", "ms_max", "ms_ci_low", "ms_ci_high",
                     "first_step_s", "pipelined_ms", "pipelined_images_per_sec", "achieved_gflops", "peak_gflops",
                     "peak_fraction", "peak_mem_mb", "target", "time_to_target_s", "scaling_efficiency",
                     "gpu_memory_mb", "gpu_sm_clock_mhz", "gpu_power_limit_w", "host_busy_fraction", "rss_peak_mb",
                     "gpu_mem_peak_mb", "cpu_util", "gpu_util", "energy_j", "joules_per_image",
                     "gpu_sm_clock_min_mhz", "gpu_sm_clock_mean_mhz", "ci_half_pct", "pipelined_ci_half_pct",
                     "timing_s", "window_time_s", "cell_wall_s"), float),
}


def cell_id(framework: str, model: str, device: str) -> str:
    return f"{framework}-{model}-{device.replace(':', '')}"


def cell_values(cell: Cell) -> Row:
    """The columns a cell's settings fill in (what was asked for; execution values come from the worker)."""
    run = cell.run
    return {"run_id": cell.run_id, "cell": cell.name, "framework": cell.framework,
            "framework_version": cell.framework_version, "model": cell.model, "mode": run.mode,
            "phase": "train" if run.mode == "train" else None, "device": cell.device.name,
            "device_name": cell.device_name, "dataset": run.dataset, "batch_size": cell.batch_size,
            "epochs": run.epochs, "seed": cell.seed, "lr": run.lr, "threads": run.threads, "precision": run.precision,
            "compile": run.compile, "layout": run.layout, "world_size": cell.world_size,
            "per_device_batch": cell.per_device_batch}


def make_row(cell: Cell, **values: Any) -> Row:
    """A row with every column present: the cell's settings, then ``values``; missing ones are None."""
    row: Row = {c: None for c in COLUMNS}
    row.update(cell_values(cell))
    row.update(values)
    if row["status"] not in STATUSES:
        raise ValueError(f"bad status {row['status']!r}")
    return row


def measured_row(cell: Cell, common: dict[str, Any], notes: Iterable[str | None] = (), **measured: Any) -> Row:
    """An ``ok`` row of what a worker measured: ``common`` holds what every row of the cell carries (parameters,
    FLOPs, the execution settings read back from the framework), ``measured`` the phase's own figures."""
    return make_row(cell, status="ok", error="", note=join_notes(notes), **measured, **common)


def failure_row(cell: Cell, status: str, error: str, **values: Any) -> Row:
    """The one row of a cell that did not finish (or could not start), with its status and the reason."""
    return make_row(cell, status=status, error=error, **values)


def join_notes(notes: Iterable[str | None]) -> str | None:
    """Notes in order, empty ones dropped, joined by '; ' (None when there is none)."""
    return "; ".join(n for n in notes if n) or None


def add_note(rows: list[Row], note: str | None) -> list[Row]:
    """Appends ``note`` to every row's own."""
    for row in rows:
        row["note"] = join_notes([row.get("note"), note])
    return rows


def fill(rows: list[Row], values: dict[str, Any]) -> list[Row]:
    """Fills the columns the worker left empty with ``values`` (a ``note`` is appended to the row's own)."""
    for row in rows:
        for key, value in values.items():
            if key == "note":
                add_note([row], value)
            elif row.get(key) is None:
                row[key] = value
    return rows


def add_scaling_efficiency(rows: list[Row], done: dict[str, list[Row]]) -> list[Row]:
    """A data-parallel row's throughput on N devices / (N x its single-device baseline's, same global batch);
    ``done`` holds the rows journaled so far by cell name."""
    for row in rows:
        world = int(row.get("world_size") or 1)
        if world > 1 and row["status"] == "ok":
            base = [r for r in done.get(row["cell"].replace(f"-x{world}", ""), []) if r["status"] == "ok"]
            if base and base[0].get("images_per_sec"):
                row["scaling_efficiency"] = row["images_per_sec"] / (world * base[0]["images_per_sec"])
    return rows
