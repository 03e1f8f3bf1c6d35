"""A structural change must not change what a run writes: one small train cell and one small speed cell run
through the real CLI, and their rows (results.csv) and per-epoch rows (epochs.json) are compared with the ones
the same fixture wrote before the change (tests/data/rows_before.json), timings and machine facts aside.

Regenerate the file only when a change is meant to alter rows: ``CONVBENCH_WRITE_ROWS=1 pytest tests/test_rows_unchanged.py``.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import pytest
from helpers import needs, run_cli

BEFORE = Path(__file__).resolve().parent / "data" / "rows_before.json"
# columns that are timings or facts of the machine the test runs on, not of the code
VOLATILE = {
    "run_id", "framework_version", "device_name", "python", "interpreter", "train_time_s", "eval_time_s",
    "images_per_sec", "ms_mean", "ms_std", "ms_median", "ms_iqr", "ms_min", "ms_max", "ms_ci_low", "ms_ci_high",
    "first_step_s", "pipelined_ms", "pipelined_images_per_sec", "achieved_gflops", "peak_gflops", "peak_fraction",
    "peak_mem_mb", "host_busy_fraction", "rss_peak_mb", "gpu_mem_peak_mb", "cpu_util", "gpu_util", "energy_j",
    "joules_per_image", "time_to_target_s", "wall_time_s", "ci_half_pct", "stable", "pipelined_ci_half_pct", "timing_s",
    "window_time_s", "cell_wall_s",
}
# results of training: equal up to the last bits a different CPU's kernels may change
TRAINED = {"test_accuracy": 0.02, "test_loss": 1e-2, "train_loss": 1e-2}


def small_run(root: Path, *args: str) -> dict:
    """One run's rows and epochs, volatile columns dropped, cells by name."""
    out = root / "results"
    done = run_cli("run", "--frameworks", "torch", "--models", "lenet5", "--threads", "1", "--output", str(out), *args)
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = next(out.iterdir())
    with open(run_dir / "results.csv", newline="") as fh:
        rows = [{k: steady_notes(v) if k == "note" else v for k, v in row.items() if k not in VOLATILE}
                for row in csv.DictReader(fh)]
    epochs = {}
    for cell in sorted((run_dir / "cells").iterdir()):
        if (cell / "epochs.json").exists():
            epochs[cell.name] = [{k: v for k, v in e.items() if k not in VOLATILE}
                                 for e in json.loads((cell / "epochs.json").read_text())]
    return {"columns": list(csv.DictReader(open(run_dir / "results.csv")).fieldnames or []), "rows": rows,
            "epochs": epochs}


def steady_notes(note: str) -> str:
    """A row's note without the parts that say how noisy this machine's timings were (a fixed count's 3 steps may
    or may not be marked unstable)."""
    return "; ".join(part for part in note.split("; ") if not part.startswith("unstable "))


def runs(tmp: Path) -> dict:
    return {"train": small_run(tmp / "train", "--epochs", "2"),
            "speed": small_run(tmp / "speed", "--mode", "speed", "--warmup", "1", "--steps", "3")}


def close(key: str, got: object, want: object) -> bool:
    if key in TRAINED and got not in ("", None) and want not in ("", None):
        return math.isclose(float(got), float(want), rel_tol=TRAINED[key], abs_tol=TRAINED[key])
    return got == want


@pytest.mark.e2e
@needs("torch")
def test_rows_are_what_they_were(tmp_path: Path):
    now = runs(tmp_path)
    if os.environ.get("CONVBENCH_WRITE_ROWS"):
        BEFORE.parent.mkdir(exist_ok=True)
        BEFORE.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    before = json.loads(BEFORE.read_text())
    for mode in ("train", "speed"):
        assert now[mode]["columns"] == before[mode]["columns"], f"{mode}: results.csv's columns changed"
        assert len(now[mode]["rows"]) == len(before[mode]["rows"]), f"{mode}: number of rows"
        for got, want in zip(now[mode]["rows"], before[mode]["rows"]):
            diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if not close(k, got.get(k), want.get(k))}
            assert not diff, f"{mode} row {want.get('cell')}/{want.get('phase')} changed: {diff}"
        assert list(now[mode]["epochs"]) == list(before[mode]["epochs"])
        for cell, history in before[mode]["epochs"].items():
            for got, want in zip(now[mode]["epochs"][cell], history):
                diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if not close(k, got.get(k), want.get(k))}
                assert not diff, f"{cell} epoch {want.get('epoch')} changed: {diff}"
