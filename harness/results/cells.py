"""One cell followed across runs, as ``convbench compare`` and ``convbench history`` both see it: the key that
matches it between runs and the metric it is judged on, with the values that metric is computed from."""
from __future__ import annotations

from typing import Any, Sequence

from harness.results.runs import Run
from harness.results.table import Row, number

# cells match when all of these agree; versions, device names, threads, lr and seeds may differ
MATCH_KEYS = ("mode", "framework", "model", "device", "phase", "dataset", "batch_size", "epochs", "target",
              "precision", "compile", "layout")
SECONDARY = MATCH_KEYS[5:]   # dataset, batch_size, ...: shown in a cell's label only when they vary
SPEED_METRIC, TRAIN_METRIC, TARGET_METRIC = "median step ms", "train time s", "time to target s"


def cell_key(row: Row) -> tuple[Any, ...]:
    """The row's MATCH_KEYS values; whole floats as ints, so a batch size read back as 128.0 matches 128."""
    return tuple(int(v) if isinstance(v, float) and v.is_integer() else v for v in (row.get(k) for k in MATCH_KEYS))


def key_dict(key: Sequence[Any]) -> dict[str, Any]:
    """A cell key as {match key: value}."""
    return dict(zip(MATCH_KEYS, key))


def metric(row: Row) -> tuple[str, str]:
    """(the metric, the row column holding one value of it per seed) a cell is judged on, from one of its ok rows:
    the median step time of a speed cell, else the training time, or the time to target when the cell has a target."""
    if row["mode"] == "speed":
        return SPEED_METRIC, "ms_median"
    return (TARGET_METRIC, "time_to_target_s") if number(row.get("target")) else (TRAIN_METRIC, "train_time_s")


def step_samples(run: Run, rows: Sequence[Row]) -> list[float]:
    """The raw per-step times (ms) of one speed cell's rows in ``run``, pooled over seeds; [] without samples.json."""
    phase = rows[0]["phase"]
    return [1e3 * s for r in rows for s in run.samples.get(r["cell"], {}).get(phase, [])]


def column_values(rows: Sequence[Row], column: str) -> list[float]:
    """The rows' values of ``column`` that are numbers (one per seed)."""
    return [r[column] for r in rows if number(r.get(column))]
