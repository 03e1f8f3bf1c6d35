"""convbench history: every run under a folder as one table, and the run where a planted slowdown happened."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from helpers import make_run, run_cli

from harness.errors import ConvbenchError
from harness.results.history import write_history
from harness.results.significance import SAME, SINGLE, SLOWER

# run ids sort the other way round from their start times: history must order by meta.json's `started`
RUN_IDS = ("c-first", "b-second", "a-third")


def three_runs(root: Path, mode: str = "speed", **kw: Any) -> Path:
    """Three runs of torch and tensorflow a day apart (different noise); tensorflow 20% slower in the third."""
    results = root / "results"
    speed = {"dataset": "synthetic", "models": ("lenet5",)} if mode == "speed" else {"seeds": (0, 1, 2)}
    for i, run_id in enumerate(RUN_IDS):
        make_run(results, run_id=run_id, mode=mode, frameworks=("torch", "tensorflow"), rng_seed=10 + i,
                 started=f"2026-03-0{i + 1}T12:00:00+00:00", step_scale={"tensorflow": 1.2} if i == 2 else None,
                 **speed, **kw)
    return results


def test_finds_the_planted_slowdown_in_raw_samples_and_names_the_run(tmp_path):
    results = three_runs(tmp_path)
    text, (csv, page) = write_history(results)
    frame = pd.read_csv(csv)
    assert len(frame) == 3 * 2 * 3                                          # runs x frameworks x phases
    assert list(dict.fromkeys(frame["run"])) == list(RUN_IDS)              # ordered by start time
    changed = frame[frame["verdict"].notna() & (frame["verdict"] != SAME)]
    assert set(changed["run"]) == {"a-third"} and set(changed["framework"]) == {"tensorflow"}
    assert set(changed["phase"]) == {"forward", "forward_backward", "train_step"}
    assert (changed["verdict"] == SLOWER).all() and set(changed["previous_run"]) == {"b-second"}
    assert changed["change_pct"].between(15, 25).all() and (changed["p_value"] < 1e-6).all()
    assert set(changed["test"]) == {"Mann-Whitney U"}
    first = frame[frame["run"] == "c-first"]
    assert first["verdict"].isna().all() and first["value"].between(9, 31).all()   # ms medians of the three phases
    assert "changes against the previous run of the same cell (p < 0.05 and |change| > 5%): 3" in text
    assert "slower +" in text and "in run a-third (vs b-second): tensorflow lenet5 cpu forward," in text
    html = page.read_text(encoding="utf-8")
    assert html.count("Plotly.newPlot") == 1 and "a-third" in html and 'class="slower"' in html


def test_training_times_over_seeds(tmp_path):
    results = three_runs(tmp_path, mode="train")
    text, (csv, page) = write_history(results, tmp_path / "out")
    frame = pd.read_csv(csv)
    slower = frame[frame["verdict"] == SLOWER]
    assert list(slower["run"]) == ["a-third"] and list(slower["framework"]) == ["tensorflow"]
    assert list(slower["test"]) == ["Welch t"] and list(slower["metric"]) == ["train time s"]
    assert frame["test_accuracy"].notna().all()
    assert page.parent == tmp_path / "out" and page.read_text(encoding="utf-8").count("Plotly.newPlot") == 2


def test_a_run_without_samples_is_compared_on_its_csv_medians(tmp_path):
    results = three_runs(tmp_path)
    shutil.rmtree(results / "b-second" / "cells")          # results.csv only: one median per cell
    frame = pd.read_csv(write_history(results)[1][0])
    third = frame[frame["run"] == "a-third"]
    assert set(third["test"]) == {SINGLE} and third["p_value"].isna().all()   # the threshold alone decides
    assert set(third[third["verdict"] == SLOWER]["framework"]) == {"tensorflow"}
    assert set(frame[frame["run"] == "b-second"]["test"]) == {SINGLE}


def test_filters_and_a_higher_threshold(tmp_path):
    results = three_runs(tmp_path)
    text, (csv, _) = write_history(results, frameworks=["torch"])
    assert set(pd.read_csv(csv)["framework"]) == {"torch"} and "same cell (p < 0.05 and |change| > 5%): none" in text
    text, _ = write_history(results, threshold="25%")
    assert "|change| > 25%): none" in text
    with pytest.raises(ConvbenchError, match="unknown model 'vgg15' in these runs; known: lenet5"):
        write_history(results, models=["vgg15"])


def test_skips_folders_that_are_not_runs_and_keeps_failed_cells(tmp_path):
    results = three_runs(tmp_path)
    (results / "broken").mkdir()
    (results / "broken" / "results.csv").write_text("a,b\n1,2\n")
    make_run(results, run_id="d-fourth", mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
             failed={("tensorflow", "lenet5"): "crashed"}, started="2026-03-04T12:00:00+00:00")
    text, (csv, _) = write_history(results)
    assert "skipped:" in text and "broken" in text
    frame = pd.read_csv(csv)
    assert set(frame["run"]) == {*RUN_IDS, "d-fourth"}
    assert (frame[frame["run"] == "d-fourth"]["framework"] == "torch").all()   # a crashed speed cell has no phase


def test_history_command(tmp_path):
    results = three_runs(tmp_path)
    proc = run_cli("history", str(results), "--model", "lenet5", "--output", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "in run a-third (vs b-second): tensorflow lenet5 cpu forward" in proc.stdout
    assert (tmp_path / "out" / "history.csv").is_file() and (tmp_path / "out" / "history.html").is_file()


@pytest.mark.parametrize("case", ["missing", "file", "no_runs", "unknown_model", "unknown_framework", "bad_threshold"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, case):
    target = tmp_path / "results"
    args: list[str] = []
    if case == "file":
        target.write_text("hello")
    elif case == "no_runs":
        (target / "empty").mkdir(parents=True)
    elif case != "missing":
        make_run(target, mode="speed", dataset="synthetic")
        args = {"unknown_model": ["--model", "vgg15"], "unknown_framework": ["--framework", "caffe"],
                "bad_threshold": ["--threshold", "lots"]}[case]
    proc = run_cli("history", str(target), *args, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convbench: error: ") and "Traceback" not in proc.stderr
    expected = {"missing": "does not exist", "file": "is not a folder", "no_runs": "no convbench runs under",
                "unknown_model": "unknown model 'vgg15'", "unknown_framework": "unknown framework 'caffe'",
                "bad_threshold": "argument --threshold: expected a number, got 'lots'"}[case]
    assert expected in lines[0]
