"""A change point over a cell's whole series of runs (``convbench history``): pure functions over lists of floats.

A test between neighbouring runs sees one step at a time, so a slow drift (five steps of +4 %) never crosses a 5 %
threshold. Here each cell's series is asked once "did it shift?", the at-most-one-change model of a change-point
test: every split of the series into an earlier and a later part (one run or more each) is tested with
``convbench compare``'s tests on the two parts pooled (significance.compare_samples: Mann-Whitney U on the raw
per-step samples; compare_repeats: Welch t over the per-seed values), the split with the smallest p is the change
point, and its p is multiplied by the number of splits tried (Bonferroni, so choosing the best split is paid for).

Across cells, the Benjamini-Hochberg procedure (SciPy's ``false_discovery_control``) turns those p-values into
q-values that control the false discovery rate, so forty cells of pure noise at alpha 0.05 flag none. A change
point counts, as a change in compare, only if q < alpha and the later part differs from the earlier one by more
than the threshold (ratio of medians of the pooled samples, or of means of the pooled values).

asv's step detection (asv/step_detect.py) fits a penalised piecewise-constant function to the per-run values and
reports its steps without a p-value; testing the raw samples instead gives each cell a p-value, which is what a
false-discovery-rate control across cells needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from harness.results.significance import Comparison, compare_repeats, compare_samples


@dataclass(frozen=True)
class Split:
    """The best split of one series: the later part starts at run ``index`` (1 .. number of runs - 1)."""
    index: int
    comparison: Comparison   # the earlier part pooled against the later part; its p_value is the split's own
    p_value: float           # the split's p times the number of splits tried, at most 1
    splits: int              # the splits that had a test (a part of one value has none)


def best_split(series: Sequence[Sequence[float]], samples: bool) -> Split | None:
    """The most significant split of ``series`` (one list of values per run, oldest first): raw per-step samples
    (``samples``: Mann-Whitney U) or per-seed values (Welch t). None with fewer than 3 runs (two runs are the
    neighbour test) or when no split has a test."""
    if len(series) < 3 or not all(series):
        return None
    test = compare_samples if samples else compare_repeats
    found: list[tuple[float, float, int, Comparison]] = []
    for k in range(1, len(series)):
        c = test([v for s in series[:k] for v in s], [v for s in series[k:] for v in s], 0.0, 1.0)
        if c.p_value is not None:   # one value on a side: no test is possible
            found.append((c.p_value, -abs(c.change_pct), k, c))
    if not found:
        return None
    p, _, k, c = min(found, key=lambda f: (f[0], f[1], f[2]))   # ties: the larger change, then the earlier split
    return Split(k, c, min(1.0, p * len(found)), len(found))


def adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given."""
    if not p_values:
        return []
    from scipy.stats import false_discovery_control
    return [float(q) for q in false_discovery_control(list(p_values), method="bh")]
