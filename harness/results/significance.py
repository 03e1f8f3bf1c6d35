"""Noise-aware comparison of two sets of timings: pure functions over lists of floats (no I/O, no pandas).

A change counts only if it is both statistically significant (p < alpha) and larger than a relative
threshold: with 100 samples a test flags 1% shifts that are within the run-to-run noise of a machine
(clock boost, thermals, memory placement, other tenants), which per-step samples from one process do not see.
Lower is better for every metric compared here (seconds).

``parse_percent``, ``parse_alpha`` and ``levels`` are the one validation of compare's and history's threshold,
alpha and fail-on level: the commands' argparse types and the library functions both call them.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

from harness.errors import ConvbenchError

DEFAULT_THRESHOLD = 5.0   # percent
DEFAULT_ALPHA = 0.05
FASTER, SLOWER, SAME = "faster", "slower", "no significant change"
MANN_WHITNEY, WELCH, SINGLE = "Mann-Whitney U", "Welch t", "single sample"


@dataclass(frozen=True)
class Comparison:
    a: float              # headline statistic of A: median of per-step samples, or mean over seeds
    b: float
    ratio: float          # b / a
    p_value: float | None
    test: str             # MANN_WHITNEY, WELCH or SINGLE (no test possible: the threshold alone decides)
    significant: bool     # p < alpha; True for SINGLE
    verdict: str          # FASTER, SLOWER or SAME

    @property
    def change_pct(self) -> float:
        return 100.0 * (self.ratio - 1.0)


def parse_percent(value: float | str) -> float:
    """'5%', '5' or 5 -> 5.0. Raises ValueError for anything else or a negative number."""
    text = str(value).strip()
    try:
        number = float(text[:-1] if text.endswith("%") else text)
    except ValueError:
        number = math.nan
    if not number >= 0 or math.isinf(number):
        raise ValueError(f"expected a non-negative percentage, got {value!r}")
    return number


def parse_alpha(value: float | str) -> float:
    """'0.05' or 0.05 -> 0.05: a significance level strictly between 0 and 1. Raises ValueError for anything else."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0 < number < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {value}")
    return number


def levels(threshold: float | str, alpha: float | str,
           fail_on: float | str | None = None) -> tuple[float, float, float | None]:
    """(threshold %, alpha, fail-on % or None) checked in that order; ConvbenchError (one line) for the first bad one."""
    try:
        threshold_pct = parse_percent(threshold)
        fail_pct = None if fail_on is None else parse_percent(fail_on)
        return threshold_pct, parse_alpha(alpha), fail_pct
    except ValueError as exc:
        raise ConvbenchError(str(exc)) from None


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 where it is undefined (e.g. every value tied)."""
    from scipy.stats import mannwhitneyu
    p = float(mannwhitneyu(list(a), list(b), alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else p


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value (unequal variances); needs at least 2 values per side."""
    from scipy.stats import ttest_ind
    if len(set(a)) == 1 and len(set(b)) == 1:  # no variance on either side: the difference is exact
        return 1.0 if a[0] == b[0] else 0.0
    p = float(ttest_ind(list(a), list(b), equal_var=False).pvalue)
    return 1.0 if math.isnan(p) else p


def decide(ratio: float, significant: bool, threshold_pct: float) -> str:
    """SLOWER / FASTER only when significant AND |ratio - 1| exceeds the threshold, else SAME."""
    if significant and abs(ratio - 1.0) * 100.0 > threshold_pct:
        return SLOWER if ratio > 1.0 else FASTER
    return SAME


def _build(a: float, b: float, p: float | None, test: str, alpha: float, threshold: float) -> Comparison:
    ratio = b / a if a > 0 else math.inf
    significant = p is None or p < alpha
    return Comparison(a, b, ratio, p, test, significant, decide(ratio, significant, threshold))


def compare_samples(a: Sequence[float], b: Sequence[float], threshold: float = DEFAULT_THRESHOLD,
                    alpha: float = DEFAULT_ALPHA) -> Comparison:
    """Per-step times of one cell in two runs: ratio of medians, Mann-Whitney U on the raw samples."""
    if not a or not b:
        raise ValueError("no samples")
    if min(len(a), len(b)) < 2:
        return compare_repeats(a, b, threshold, alpha)
    p = mann_whitney_p(a, b)
    return _build(statistics.median(a), statistics.median(b), p, MANN_WHITNEY, alpha, threshold)


def compare_repeats(a: Sequence[float], b: Sequence[float], threshold: float = DEFAULT_THRESHOLD,
                    alpha: float = DEFAULT_ALPHA) -> Comparison:
    """One value per seed (e.g. training times): ratio of means, Welch t with 2+ values per side,
    otherwise SINGLE: no test is possible and the threshold alone decides."""
    if not a or not b:
        raise ValueError("no values")
    p = welch_p(a, b) if min(len(a), len(b)) >= 2 else None
    return _build(statistics.fmean(a), statistics.fmean(b), p, SINGLE if p is None else WELCH, alpha, threshold)


def difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float | None]:
    """mean(b) - mean(a), and the Welch p-value when both sides have 2+ values (e.g. test accuracies)."""
    p = welch_p(a, b) if min(len(a), len(b)) >= 2 else None
    return statistics.fmean(b) - statistics.fmean(a), p


def is_regression(c: Comparison, fail_on_pct: float) -> bool:
    """Slower by more than ``fail_on_pct`` percent, with significance (or a single sample per side)."""
    return c.significant and c.change_pct > fail_on_pct
