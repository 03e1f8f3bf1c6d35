"""Paired timing, the one way the lab's scripts compare two things: a timed step, the ABBA order, and the
bootstrap interval of the median of paired ratios.

On a shared machine a step's speed drifts more from one round to the next than the gaps these scripts judge
(docs/performance.md, "Noise on the project's machine"), so the sides of a comparison are timed next to each
other, in alternating order, and judged by the median of the pairs' ratios: a drift moves both sides of a pair
alike and cancels in their ratio, which the medians of rounds taken apart cannot do.

Nothing here imports a framework; the clock is convbench's own window (``harness.worker.timing.time_window``),
so the lab times a step exactly as speed mode times its pipelined window.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, Iterator, NamedTuple, Sequence, TypeVar

import numpy as np

from harness.worker.timing import time_window

T = TypeVar("T")
DRAWS = 2000                  # bootstrap resamples of the pairs
QUANTILES = (0.025, 0.975)    # a 95 % interval


def timed(step: Callable[[], Any], sync: Callable[[], Any], repeat: int = 1,
          clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds per call of ``repeat`` calls of ``step`` queued back to back, the device synchronised before the
    first clock reading and after the last call. ``repeat=1`` is one synchronised step; a ``step`` that does a
    block of N steps itself is ``timed(block, sync) / N``."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    return time_window(step, sync, repeat, clock) / repeat


def abba(sides: Sequence[T], index: int) -> list[T]:
    """The order of round (or step) ``index``: ``sides`` as given when it is even, reversed when it is odd
    (A B, B A, A B, ...), so each side runs first as often as last and a steady drift hits both alike."""
    return list(sides) if index % 2 == 0 else list(sides)[::-1]


def shuffled(sides: Sequence[T], cycles: int, seed: int = 0) -> Iterator[list[T]]:
    """``cycles`` orders of ``sides``, each a seeded random permutation of the one before: for more than two
    sides, where ABBA would keep the middle ones in the middle of every round."""
    order, current = random.Random(seed), list(sides)
    for _ in range(cycles):
        order.shuffle(current)
        yield list(current)


class PairedRatio(NamedTuple):
    ratio: float   # the median of the pairs' ratios
    low: float     # the percentile bootstrap 95 % interval of that median
    high: float


def bootstrap_median(values: Sequence[float] | np.ndarray, draws: int = DRAWS, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the median of ``values``: ``draws`` resamples of them with
    replacement (a seeded generator), each resample's median, and the 2.5 % and 97.5 % quantiles of those."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError("bootstrap_median needs a non-empty list of values")
    medians = np.median(np.random.default_rng(seed).choice(values, (draws, len(values))), axis=1)
    low, high = np.quantile(medians, QUANTILES)
    return float(low), float(high)


def paired_ratio(numerators: Sequence[float] | np.ndarray, denominators: Sequence[float] | np.ndarray,
                 draws: int = DRAWS, seed: int = 0) -> PairedRatio:
    """The median over pairs of ``numerators[k] / denominators[k]`` (the two timed next to each other), with its
    bootstrap interval over the pairs."""
    a, b = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired_ratio needs as many numerators as denominators, at least one; got {a.shape} and "
                         f"{b.shape}")
    ratios = a / b
    return PairedRatio(float(np.median(ratios)), *bootstrap_median(ratios, draws, seed))
