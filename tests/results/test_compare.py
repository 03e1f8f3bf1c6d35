"""convbench compare: the pure statistics (significance AND threshold) and the run-to-run comparison."""
from __future__ import annotations

import argparse
import re

import numpy as np
import pandas as pd
import pytest
from helpers import make_run

from harness.commands.args import alpha_arg, percent_arg
from harness.errors import ConvbenchError
from harness.results import significance as cmp
from harness.results.comparison import compare_runs


def lognormal(mean_s: float, sigma: float, n: int = 100, seed: int = 0) -> list[float]:
    """Per-step times with a realistic right-skewed noise around ``mean_s``."""
    return list(mean_s * np.random.default_rng(seed).lognormal(0.0, sigma, n))


# ---- pure statistics -----------------------------------------------------------------------------------

def test_twice_as_slow_is_slower():
    c = cmp.compare_samples(lognormal(0.010, 0.1, seed=1), lognormal(0.020, 0.1, seed=2))
    assert c.verdict == cmp.SLOWER and c.test == cmp.MANN_WHITNEY and c.p_value < 1e-10
    assert 1.9 < c.ratio < 2.1
    assert cmp.compare_samples(lognormal(0.020, 0.1, seed=1), lognormal(0.010, 0.1, seed=2)).verdict == cmp.FASTER


@pytest.mark.parametrize("seed", range(5))
def test_one_percent_is_no_significant_change(seed):
    c = cmp.compare_samples(lognormal(0.010, 0.05, seed=seed), lognormal(0.0101, 0.05, seed=seed + 100))
    assert c.verdict == cmp.SAME and abs(c.change_pct) < 5


def test_one_percent_with_tight_noise_is_significant_but_below_the_threshold():
    c = cmp.compare_samples(lognormal(0.010, 0.002, seed=3), lognormal(0.0101, 0.002, seed=4))
    assert c.significant and c.verdict == cmp.SAME
    assert cmp.compare_samples(lognormal(0.010, 0.002, seed=3), lognormal(0.0101, 0.002, seed=4),
                               threshold=0.5).verdict == cmp.SLOWER


@pytest.mark.parametrize("seed", range(5))
def test_ten_percent_with_tight_noise_is_slower(seed):
    c = cmp.compare_samples(lognormal(0.010, 0.02, seed=seed), lognormal(0.011, 0.02, seed=seed + 100))
    assert c.verdict == cmp.SLOWER and c.significant and 8 < c.change_pct < 12


@pytest.mark.parametrize("seed", range(20))
def test_noise_without_change_is_no_significant_change(seed):
    c = cmp.compare_samples(lognormal(0.010, 0.15, seed=seed), lognormal(0.010, 0.15, seed=seed + 1000))
    assert c.verdict == cmp.SAME


def test_big_but_noisy_change_is_not_significant():
    # 8% apart in the medians but 3 samples of wild noise: the test cannot tell
    c = cmp.compare_samples([0.010, 0.030, 0.005], [0.0108, 0.004, 0.025])
    assert not c.significant and c.verdict == cmp.SAME


def test_repeats_welch_and_single_sample():
    c = cmp.compare_repeats([10.0, 10.2, 9.9], [12.0, 12.1, 11.8])
    assert c.test == cmp.WELCH and c.verdict == cmp.SLOWER
    assert cmp.compare_repeats([10.0, 10.2, 9.9], [10.1, 10.0, 10.2]).verdict == cmp.SAME
    single = cmp.compare_repeats([10.0], [12.0])
    assert single.test == cmp.SINGLE and single.p_value is None and single.verdict == cmp.SLOWER
    assert cmp.compare_repeats([10.0], [10.3]).verdict == cmp.SAME
    assert cmp.compare_repeats([10.0, 10.0], [11.0, 11.0]).p_value == 0.0


def test_difference_and_regression():
    diff, p = cmp.difference([0.80, 0.81], [0.82, 0.83])
    assert diff == pytest.approx(0.02) and p is not None
    assert cmp.difference([0.8], [0.9])[1] is None
    slow = cmp.compare_samples(lognormal(0.010, 0.05, seed=1), lognormal(0.013, 0.05, seed=2))
    assert cmp.is_regression(slow, 5) and not cmp.is_regression(slow, 40)


@pytest.mark.parametrize("text,value", [("5%", 5.0), ("5", 5.0), (" 2.5% ", 2.5), (0, 0.0)])
def test_parse_percent(text, value):
    assert cmp.parse_percent(text) == value
    assert percent_arg(str(text)) == value


@pytest.mark.parametrize("text", ["five", "-5%", "%", "nan", "inf"])
def test_bad_percent(text):
    with pytest.raises(ValueError):
        cmp.parse_percent(text)
    with pytest.raises(argparse.ArgumentTypeError):
        percent_arg(text)


@pytest.mark.parametrize("text", ["0", "1", "x", "1.5"])
def test_bad_alpha(text):
    with pytest.raises(argparse.ArgumentTypeError):
        alpha_arg(text)


# ---- run directories -----------------------------------------------------------------------------------

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
    assert "target not reached in A and B" in text and code == 0
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
