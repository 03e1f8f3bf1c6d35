"""convbench compare: run B against run A cell by cell (the statistics themselves: test_significance.py)."""
from __future__ import annotations

import re

import pandas as pd
import pytest
from helpers import make_run

from harness.errors import ConvbenchError
from harness.results.comparison import compare_runs


def speed_pair(tmp_path, factor: float, noise: float = 0.05, **kw):
    a = make_run(tmp_path, run_id="a", mode="speed", dataset="synthetic", step_s=0.010, noise=noise, rng_seed=1, **kw)
    b = make_run(tmp_path, run_id="b", mode="speed", dataset="synthetic", step_s=0.010 * factor, noise=noise,
                 rng_seed=2, **kw)
    return a, b


def verdicts(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("torch ")]


def test_compare_2x_slowdown_fails_the_gate(tmp_path):
    a, b = speed_pair(tmp_path, 2.0)
    text, code = compare_runs(a, b, fail_on="5%")
    lines = verdicts(text)
    assert len(lines) == 3 and all(line.endswith("slower") for line in lines), text
    assert all("Mann-Whitney U" in line and re.search(r"\s(1\.9\d|2\.0\d)\d\s", line) for line in lines)
    assert code == 1 and "regressions over 5%: 3" in text
    assert compare_runs(a, b)[1] == 0                      # no gate without --fail-on-regression
    assert compare_runs(b, a, fail_on=5)[1] == 0           # the other way round it is faster
    assert all(line.endswith("faster") for line in verdicts(compare_runs(b, a)[0]))


def test_compare_1_percent_passes_the_gate(tmp_path):
    a, b = speed_pair(tmp_path, 1.01)
    text, code = compare_runs(a, b, fail_on="5")
    assert code == 0 and "regressions over 5%: none" in text
    assert all(line.endswith("no significant change") for line in verdicts(text)), text


def test_compare_10_percent_tight_noise(tmp_path):
    a, b = speed_pair(tmp_path, 1.10, noise=0.02)
    text, code = compare_runs(a, b, fail_on=5)
    assert all(line.endswith("slower") for line in verdicts(text)) and code == 1, text
    assert compare_runs(a, b, fail_on=20)[1] == 0


def test_compare_train_runs_and_unmatched_cells(tmp_path):
    a = make_run(tmp_path, run_id="a", models=("lenet5", "simple_cnn"), seeds=(0, 1, 2), rng_seed=1)
    b = make_run(tmp_path, run_id="b", models=("lenet5", "resnet32"), seeds=(0, 1, 2), rng_seed=2,
                 failed={("torch", "resnet32"): "oom"})
    text, code = compare_runs(a, b, fail_on=5)
    (line,) = verdicts(text)
    assert "train time s" in line and "Welch t" in line and "no significant change" in line and "accuracy" in line
    assert "only in A: torch simple_cnn cpu train" in text and "only in B: torch resnet32 cpu train" in text
    assert "common to every cell: dataset digits, batch_size 128, epochs 3" in text and code == 0
    single_a = make_run(tmp_path, run_id="sa", rng_seed=1)
    single_b = make_run(tmp_path, run_id="sb", rng_seed=2)
    text, _ = compare_runs(single_a, single_b)
    assert "single sample" in verdicts(text)[0]


def test_compare_time_to_target(tmp_path):
    a = make_run(tmp_path, run_id="a", seeds=(0, 1), target=0.65, rng_seed=1)
    b = make_run(tmp_path, run_id="b", seeds=(0, 1), target=0.65, rng_seed=2)
    (line,) = verdicts(compare_runs(a, b)[0])
    assert "time to target s" in line and "Welch t" in line
    missed = make_run(tmp_path, run_id="c", seeds=(0, 1), target=0.999, rng_seed=2)
    other = make_run(tmp_path, run_id="d", seeds=(0, 1), target=0.999, rng_seed=1)
    text, code = compare_runs(other, missed, fail_on=5)
    assert "target not reached in A and B" in text and code == 1   # the gate compared nothing: it fails
    assert text.splitlines()[-1] == "regression gate failed: no cell was compared (0 of A's 1 cell(s) had no partner " \
                                    "in B, 0 of B's 1 none in A, 1 matched but not compared)"
    df = pd.read_csv(b / "results.csv")
    df["time_to_target_s"] = None
    df.to_csv(b / "results.csv", index=False)
    text, code = compare_runs(a, b, fail_on=5)
    assert "target not reached in B" in text and code == 1


def test_ok_in_a_failed_in_b_is_a_regression(tmp_path):
    a = make_run(tmp_path, run_id="a")
    b = make_run(tmp_path, run_id="b", failed={("torch", "lenet5"): "crashed"})
    text, code = compare_runs(a, b, fail_on=5)
    assert code == 1 and "failed in B" in text and "crashed" in text
    assert compare_runs(a, b)[1] == 0


def test_bad_directories(tmp_path):
    a = make_run(tmp_path, run_id="a")
    with pytest.raises(ConvbenchError, match="does not exist"):
        compare_runs(a, tmp_path / "nope")
    with pytest.raises(ConvbenchError, match="not a convbench run directory"):
        compare_runs(tmp_path, a)
    with pytest.raises(ConvbenchError, match="percentage"):
        compare_runs(a, a, fail_on="lots")
