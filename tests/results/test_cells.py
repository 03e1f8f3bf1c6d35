"""The one cell key and metric choice of compare and history: what matches between runs, what a cell is judged on,
and that both commands judge the same two runs the same way."""
from __future__ import annotations

import re

import pandas as pd
import pytest
from helpers import make_run

from harness.results.cells import (
    MATCH_KEYS,
    SPEED_METRIC,
    TARGET_METRIC,
    TRAIN_METRIC,
    cell_key,
    column_values,
    key_dict,
    metric,
    step_samples,
)
from harness.results.comparison import compare_runs
from harness.results.history import write_history
from harness.results.runs import Run, load_run

ROW = {"mode": "speed", "framework": "torch", "model": "lenet5", "device": "cpu", "phase": "forward",
       "dataset": "synthetic", "batch_size": 128, "epochs": None, "target": None, "precision": "fp32",
       "compile": "eager", "layout": "nchw", "framework_version": "2.1", "seed": 0, "threads": 2, "lr": 0.1}


def test_the_key_ignores_versions_seeds_and_whole_float_noise():
    key = cell_key(ROW)
    assert key_dict(key) == {k: ROW[k] for k in MATCH_KEYS}
    assert cell_key(dict(ROW, batch_size=128.0, framework_version="2.2", seed=3, threads=8, lr=0.5,
                         device_name="other")) == key
    assert isinstance(cell_key(dict(ROW, batch_size=128.0))[MATCH_KEYS.index("batch_size")], int)
    for name, other in (("batch_size", 64), ("phase", "train_step"), ("precision", "bf16"), ("device", "cuda:0")):
        assert cell_key(dict(ROW, **{name: other})) != key, name
    assert cell_key({"mode": "train"}) == ("train",) + (None,) * (len(MATCH_KEYS) - 1)


@pytest.mark.parametrize("row,expected", [
    ({"mode": "speed", "target": 0.9}, (SPEED_METRIC, "ms_median")),
    ({"mode": "train"}, (TRAIN_METRIC, "train_time_s")),
    ({"mode": "train", "target": None}, (TRAIN_METRIC, "train_time_s")),
    ({"mode": "train", "target": 0.65}, (TARGET_METRIC, "time_to_target_s")),
])
def test_metric(row, expected):
    assert metric(row) == expected


def test_values_of_a_cell(tmp_path):
    speed = load_run(make_run(tmp_path, run_id="s", mode="speed", dataset="synthetic", seeds=(0, 1), n_samples=7))
    forward = [r for r in speed.rows if r["phase"] == "forward"]
    samples = step_samples(speed, forward)
    assert len(samples) == 14 and samples[:7] == [1e3 * s for s in speed.samples[forward[0]["cell"]]["forward"]]
    assert step_samples(Run(speed.path, speed.rows, speed.meta, {}, {}), forward) == []   # no samples.json
    train = load_run(make_run(tmp_path, run_id="t", seeds=(0, 1, 2), target=0.999))
    assert len(column_values(train.rows, "train_time_s")) == 3 and column_values(train.rows, "time_to_target_s") == []


def compare_lines(text: str) -> dict[str, list[str]]:
    """cell -> [metric, change, p, test, verdict] from compare's table."""
    rows = [re.split(r"\s{2,}", line) for line in text.splitlines() if line.startswith(("torch ", "tensorflow "))]
    return {r[0]: [r[1], r[5], r[6], r[7], r[8]] for r in rows}


@pytest.mark.parametrize("mode", ["speed", "train"])
def test_compare_and_history_judge_two_runs_alike(tmp_path, mode):
    results = tmp_path / "results"
    kw = {"dataset": "synthetic", "models": ("lenet5",)} if mode == "speed" else {"seeds": (0, 1, 2)}
    for i, run_id in enumerate(("a", "b")):
        make_run(results, run_id=run_id, mode=mode, frameworks=("torch", "tensorflow"), rng_seed=i,
                 started=f"2026-05-0{i + 1}T00:00:00+00:00", step_scale={"tensorflow": 1.2} if i else None, **kw)
    compared = compare_lines(compare_runs(results / "a", results / "b")[0])
    frame = pd.read_csv(write_history(results, tmp_path / "out")[1][0])
    history = {r["cell"]: [r["metric"], f"{r['change_pct']:+.1f}%", "-" if pd.isna(r["p_value"]) else f"{r['p_value']:.2g}",
                           r["test"], r["verdict"]] for r in frame[frame["run"] == "b"].to_dict("records")}
    assert len(compared) == (6 if mode == "speed" else 2) and compared == history
    assert {v[4] for k, v in compared.items() if k.startswith("tensorflow")} == {"slower"}
