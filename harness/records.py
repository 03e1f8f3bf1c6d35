"""Result rows: flat dicts with a fixed column order and a status field."""
from __future__ import annotations

from typing import Any

COLUMNS = (
    "run_id", "cell", "framework", "framework_version", "model", "mode", "phase", "device", "device_name",
    "dataset", "batch_size", "epochs", "seed", "lr", "threads", "precision", "compile", "layout", "tf32",
    "cudnn_benchmark", "deterministic", "status", "error", "params", "flops_per_image",
    "test_accuracy", "test_loss", "train_loss", "train_time_s", "eval_time_s", "images_per_sec",
    "steps", "warmup", "ms_mean", "ms_std", "ms_median", "ms_iqr", "ms_min", "ms_max", "ms_ci_low", "ms_ci_high",
    "first_step_s", "achieved_gflops", "peak_gflops", "peak_fraction", "peak_mem_mb", "target",
    "time_to_target_s", "epochs_to_target", "epochs_run", "world_size", "per_device_batch", "scaling_efficiency",
    "note",
)
STATUSES = ("ok", "error", "crashed", "timeout", "diverged", "oom", "unavailable")


def cell_id(framework: str, model: str, device: str) -> str:
    return f"{framework}-{model}-{device.replace(':', '')}"


def make_row(cell: dict[str, Any], **values: Any) -> dict[str, Any]:
    """A row with every column present: the cell's settings, then ``values``; missing ones are None."""
    row: dict[str, Any] = {c: None for c in COLUMNS}
    for key in ("run_id", "framework", "framework_version", "model", "device", "device_name", "dataset",
                "batch_size", "epochs", "seed", "lr", "threads", "mode", "precision", "compile", "layout",
                "world_size", "per_device_batch"):
        row[key] = cell.get(key)
    row["cell"] = cell.get("cell") or cell_id(cell["framework"], cell["model"], cell["device"])
    row["phase"] = "train" if cell.get("mode", "train") == "train" else None
    row.update(values)
    if row["status"] not in STATUSES:
        raise ValueError(f"bad status {row['status']!r}")
    return row
