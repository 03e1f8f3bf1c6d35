"""The noise-aware statistics of compare and history (significance AND threshold), and the one validation of their
threshold, alpha and fail-on level that the library functions and the commands' argparse types share."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from harness.commands.args import alpha_arg, percent_arg
from harness.errors import ConvbenchError
from harness.results.significance import (
    FASTER,
    MANN_WHITNEY,
    SAME,
    SINGLE,
    SLOWER,
    WELCH,
    compare_repeats,
    compare_samples,
    difference,
    is_regression,
    levels,
    parse_alpha,
    parse_percent,
)


def lognormal(mean_s: float, sigma: float, n: int = 100, seed: int = 0) -> list[float]:
    """Per-step times with a realistic right-skewed noise around ``mean_s``."""
    return list(mean_s * np.random.default_rng(seed).lognormal(0.0, sigma, n))


# ---- pure statistics -----------------------------------------------------------------------------------

def test_twice_as_slow_is_slower():
    c = compare_samples(lognormal(0.010, 0.1, seed=1), lognormal(0.020, 0.1, seed=2))
    assert c.verdict == SLOWER and c.test == MANN_WHITNEY and c.p_value < 1e-10
    assert 1.9 < c.ratio < 2.1
    assert compare_samples(lognormal(0.020, 0.1, seed=1), lognormal(0.010, 0.1, seed=2)).verdict == FASTER


@pytest.mark.parametrize("seed", range(5))
def test_one_percent_is_no_significant_change(seed):
    c = compare_samples(lognormal(0.010, 0.05, seed=seed), lognormal(0.0101, 0.05, seed=seed + 100))
    assert c.verdict == SAME and abs(c.change_pct) < 5


def test_one_percent_with_tight_noise_is_significant_but_below_the_threshold():
    c = compare_samples(lognormal(0.010, 0.002, seed=3), lognormal(0.0101, 0.002, seed=4))
    assert c.significant and c.verdict == SAME
    assert compare_samples(lognormal(0.010, 0.002, seed=3), lognormal(0.0101, 0.002, seed=4),
                           threshold=0.5).verdict == SLOWER


@pytest.mark.parametrize("seed", range(5))
def test_ten_percent_with_tight_noise_is_slower(seed):
    c = compare_samples(lognormal(0.010, 0.02, seed=seed), lognormal(0.011, 0.02, seed=seed + 100))
    assert c.verdict == SLOWER and c.significant and 8 < c.change_pct < 12


@pytest.mark.parametrize("seed", range(20))
def test_noise_without_change_is_no_significant_change(seed):
    c = compare_samples(lognormal(0.010, 0.15, seed=seed), lognormal(0.010, 0.15, seed=seed + 1000))
    assert c.verdict == SAME


def test_big_but_noisy_change_is_not_significant():
    # 8% apart in the medians but 3 samples of wild noise: the test cannot tell
    c = compare_samples([0.010, 0.030, 0.005], [0.0108, 0.004, 0.025])
    assert not c.significant and c.verdict == SAME


def test_repeats_welch_and_single_sample():
    c = compare_repeats([10.0, 10.2, 9.9], [12.0, 12.1, 11.8])
    assert c.test == WELCH and c.verdict == SLOWER
    assert compare_repeats([10.0, 10.2, 9.9], [10.1, 10.0, 10.2]).verdict == SAME
    single = compare_repeats([10.0], [12.0])
    assert single.test == SINGLE and single.p_value is None and single.verdict == SLOWER
    assert compare_repeats([10.0], [10.3]).verdict == SAME
    assert compare_repeats([10.0, 10.0], [11.0, 11.0]).p_value == 0.0


def test_difference_and_regression():
    diff, p = difference([0.80, 0.81], [0.82, 0.83])
    assert diff == pytest.approx(0.02) and p is not None
    assert difference([0.8], [0.9])[1] is None
    slow = compare_samples(lognormal(0.010, 0.05, seed=1), lognormal(0.013, 0.05, seed=2))
    assert is_regression(slow, 5) and not is_regression(slow, 40)


# ---- the one validation of threshold, alpha and fail-on --------------------------------------------------

@pytest.mark.parametrize("text,value", [("5%", 5.0), ("5", 5.0), (" 2.5% ", 2.5), (0, 0.0)])
def test_parse_percent(text, value):
    assert parse_percent(text) == value
    assert percent_arg(str(text)) == value


@pytest.mark.parametrize("text", ["five", "-5%", "%", "nan", "inf"])
def test_bad_percent(text):
    with pytest.raises(ValueError):
        parse_percent(text)
    with pytest.raises(argparse.ArgumentTypeError):
        percent_arg(text)


@pytest.mark.parametrize("value", ["0.05", 0.05, "1e-3", 0.999])
def test_parse_alpha(value):
    assert parse_alpha(value) == float(value)
    assert alpha_arg(str(value)) == float(value)


@pytest.mark.parametrize("text", ["0", "1", "x", "1.5", "-0.1", "nan", "inf", ""])
def test_bad_alpha(text):
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        parse_alpha(text)
    # the command line's one number parser: 'expected a number' / 'expected a finite number' / the range
    with pytest.raises(argparse.ArgumentTypeError, match="expected a (finite )?number|must be between 0 and 1"):
        alpha_arg(text)


def accepts(check, value) -> bool:
    try:
        check(value)
    except (ValueError, argparse.ArgumentTypeError, ConvbenchError):
        return False
    return True


@pytest.mark.parametrize("text", ["5", "5%", " 2.5% ", "0", "1e2", "-5", "five", "nan", "inf", "%", ""])
def test_the_commands_and_the_library_accept_the_same_percentages(text):
    expected = accepts(parse_percent, text)
    assert accepts(percent_arg, text) == expected
    assert accepts(lambda t: levels(t, 0.05), text) == expected
    assert accepts(lambda t: levels(5, 0.05, fail_on=t), text) == expected


@pytest.mark.parametrize("text", ["0.05", "0.5", "1e-3", "0", "1", "-0.1", "x", "nan", ""])
def test_the_commands_and_the_library_accept_the_same_alphas(text):
    expected = accepts(parse_alpha, text)
    assert accepts(alpha_arg, text) == expected and accepts(lambda t: levels(5, t), text) == expected


def test_levels_are_checked_in_order_as_one_line_user_errors():
    assert levels("5%", "0.05") == (5.0, 0.05, None)
    assert levels(2, 0.1, "10%") == (2.0, 0.1, 10.0)
    with pytest.raises(ConvbenchError, match=r"^expected a non-negative percentage, got 'x'$"):
        levels("x", 2, "lots")       # the threshold first,
    with pytest.raises(ConvbenchError, match=r"^expected a non-negative percentage, got 'lots'$"):
        levels(5, 2, "lots")         # then the fail-on level,
    with pytest.raises(ConvbenchError, match=r"^alpha must be between 0 and 1, got 2$"):
        levels(5, 2)                 # then alpha
