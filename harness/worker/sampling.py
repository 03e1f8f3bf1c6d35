"""When a speed phase has sampled enough: adaptive sampling to a precision target or a time budget.

A series is a stream of timings (one synchronised step each, or one pipelined window of steps per sample). Its
first ``WARM_BLOCK``-sized blocks are compared pairwise until one block is no slower than the next: the steps
before that point are warm-up and discarded, the rest are samples (where the first block is already as fast as
the second, nothing is discarded: a phase that needs no warm-up pays none). Sampling then goes on until

- ``target``: the 95 % interval of the median is within ``target`` of the median on both sides, the series is
  stationary (the medians of its first and second halves agree within their own intervals), and at least
  ``min_samples`` were taken; or
- ``budget``: ``max_time_s`` of the series' wall time is spent (warm-up included; at least ``MIN_KEPT`` samples
  are kept whatever the budget, so a step longer than the budget still gives a row); or
- ``cap``: ``max_samples`` were taken.

Only ``target`` is a met target; a series that stopped otherwise is unstable and its row says so. pyperf's
calibration and warnings, criterion.rs's measurement time and asv's ``repeat = (min, max, max_time)`` are the
models. Pure Python over a ``take()`` callable, so synthetic streams test the rule exactly.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from harness.results.stats import median_ci

WARM_BLOCK = 5              # steps per warm-up block
WARM_TOLERANCE = 0.05       # a block within 5 % of the next one's median is warm
WARM_CAP_STEPS = 50         # at most this many steps discarded as warm-up ...
WARM_CAP_SHARE = 0.25       # ... or this share of the series' time budget, whichever comes first
MIN_KEPT = 3
CHECK_GROWTH = 0.05         # the rule is evaluated each time the sample count grows by 5 % (at least one sample)


@dataclass(frozen=True)
class StopRule:
    target: float = 0.01      # the median's 95 % interval half-width, as a fraction of the median
    max_time_s: float = 30.0  # wall seconds per series, warm-up included
    min_samples: int = 20
    max_samples: int = 10_000
    detect_warmup: bool = True   # False for a series that starts on a warm device (pipelined windows after steps)


@dataclass
class Series:
    samples: list[float]                                   # seconds per step, warm-up excluded
    warmup: list[float] = field(default_factory=list)      # the discarded warm-up steps' timings
    stop: str = "fixed"                                    # target | budget | cap | fixed
    seconds: float = 0.0                                   # wall time of the series, warm-up included
    warm_settled: bool = True                              # False: the warm-up cap ended it, still getting faster

    @property
    def half_width(self) -> float:
        return half_width(self.samples)

    def stable(self, target: float) -> bool:
        """The median is known to ``target`` and the series did not drift (also judged for a fixed count)."""
        return self.half_width <= target and stationary(self.samples, target)


def planned_series(gpu: bool) -> int:
    """The series --budget plans per speed cell: a per-step series per phase, and a pipelined one on a GPU (a
    framework that queues work on the CPU runs windows there too, from the same share)."""
    return 3 * (2 if gpu else 1)


def half_width(samples: Sequence[float]) -> float:
    """The larger side of the median's 95 % interval, as a fraction of the median (inf for fewer than 2 samples)."""
    if len(samples) < 2:
        return math.inf
    s = sorted(samples)
    med = statistics.median(s)
    lo, hi = median_ci(s)
    return max(med - lo, hi - med) / med if med > 0 else math.inf


def halves(samples: Sequence[float]) -> tuple[float, float, float]:
    """(median of the first half, of the second, their intervals' combined half-width)."""
    n = len(samples)
    first, second = sorted(samples[: n // 2]), sorted(samples[n // 2:])
    m1, m2 = statistics.median(first), statistics.median(second)
    h1 = max(abs(m1 - v) for v in median_ci(first))
    h2 = max(abs(m2 - v) for v in median_ci(second))
    return m1, m2, math.hypot(h1, h2)


def stationary(samples: Sequence[float], target: float = 0.0) -> bool:
    """The medians of the first and second half differ by no more than their intervals' combined half-widths, or
    than ``target`` of the median (a drift below the precision asked for does not matter; a drifting series fails
    this however narrow its overall interval gets, its halves parting as it goes on)."""
    if len(samples) < 4:
        return False
    m1, m2, h = halves(samples)
    return abs(m1 - m2) <= max(h, target * statistics.median(samples))


def warm(first: Sequence[float], second: Sequence[float]) -> bool:
    """The first block is warm: its median within ``WARM_TOLERANCE`` of the next block's (or below it), and no step of
    it slower than twice that median (a single slow step, a second call that still autotunes)."""
    reference = statistics.median(second)
    return statistics.median(first) <= reference * (1 + WARM_TOLERANCE) and max(first) <= 2 * reference


def still_warming(series: Sequence[float], warmup: Sequence[float]) -> bool:
    """The leading block is no warm block for the rest of the series (asked once a series' slower first half fails
    the stationarity test: a plateau of slow steps fools the pairwise block rule), and the warm-up cap allows
    another block."""
    return (len(warmup) + WARM_BLOCK <= WARM_CAP_STEPS and len(series) > 2 * WARM_BLOCK
            and not warm(series[:WARM_BLOCK], series[WARM_BLOCK:]))


def sample_series(take: Callable[[], float], rule: StopRule, clock: Callable[[], float] = time.perf_counter,
                  on_sample: Callable[[int], None] = lambda taken: None) -> Series:
    """Samples ``take()`` (seconds of one timed unit) by ``rule``. ``on_sample(units taken)`` follows each."""
    start = clock()
    series: list[float] = []
    warmup: list[float] = []

    def next_sample() -> None:
        series.append(take())
        on_sample(len(series) + len(warmup))

    def spent() -> float:
        return clock() - start

    settled = True
    while rule.detect_warmup:   # warm-up: drop leading blocks while each is slower than the next
        while len(series) < 2 * WARM_BLOCK and spent() < rule.max_time_s:
            next_sample()
        if len(series) < 2 * WARM_BLOCK or warm(series[:WARM_BLOCK], series[WARM_BLOCK:2 * WARM_BLOCK]):
            break
        if len(warmup) + WARM_BLOCK > WARM_CAP_STEPS or spent() >= WARM_CAP_SHARE * rule.max_time_s:
            settled = False
            break
        warmup += series[:WARM_BLOCK]
        del series[:WARM_BLOCK]
    stop, checked = "", 0
    while not stop:
        n = len(series)
        if n >= rule.min_samples and n >= checked * (1 + CHECK_GROWTH):
            checked = n
            if half_width(series) <= rule.target and stationary(series, rule.target):
                stop = "target"
                break
            if rule.detect_warmup and not stationary(series, rule.target) and halves(series)[0] > halves(series)[1]:
                while still_warming(series, warmup):   # slower steps at the start that the block rule missed
                    warmup += series[:WARM_BLOCK]
                    del series[:WARM_BLOCK]
                if len(series) < n:
                    continue
        if n >= rule.max_samples:
            stop = "cap"
        elif spent() >= rule.max_time_s and n >= MIN_KEPT:
            stop = "budget"
        else:
            next_sample()
    if stop != "target" and len(series) >= rule.min_samples and half_width(series) <= rule.target \
            and stationary(series, rule.target):
        stop = "target"   # met by the samples that arrived after the last check
    return Series(series, warmup, stop, spent(), settled)


def fixed_series(take: Callable[[], float], warmup: int, steps: int, clock: Callable[[], float] = time.perf_counter,
                 on_sample: Callable[[int], None] = lambda taken: None) -> Series:
    """Today's fixed counts: ``warmup`` units discarded, ``steps`` kept."""
    start = clock()
    burn = []
    for i in range(warmup):
        burn.append(take())
        on_sample(i + 1)
    samples = []
    for i in range(steps):
        samples.append(take())
        on_sample(warmup + i + 1)
    return Series(samples, burn, "fixed", clock() - start)
