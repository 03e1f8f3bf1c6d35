"""Trust in the clock: the timing loop against a fake clock, and the statistics against numpy."""
from __future__ import annotations

import numpy as np
import pytest

from harness.results import stats
from harness.worker.timing import articles_line, time_phase, time_window


class FakeDevice:
    """Each step costs ``durations[i]`` of fake time, but only once the device is synchronised."""

    def __init__(self, durations):
        self.durations = list(durations)
        self.now = 0.0
        self.queued = 0.0
        self.calls = 0

    def step(self):
        self.queued += self.durations[self.calls]
        self.calls += 1

    def sync(self):
        self.now += self.queued
        self.queued = 0.0

    def clock(self):
        return self.now


def test_first_step_apart_burn_in_excluded_every_step_timed():
    durations = [50.0] + [9.0] * 3 + [1.0, 2.0, 3.0, 4.0]   # compile, burn-in, timed
    dev = FakeDevice(durations)
    t = time_phase(dev.step, dev.sync, warmup=3, steps=4, clock=dev.clock)
    assert dev.calls == 8
    assert t.first_step_s == 50.0
    assert t.samples_s == [1.0, 2.0, 3.0, 4.0]


def test_asynchronous_work_is_charged_to_its_own_step():
    dev = FakeDevice([0.0, 7.0, 1.0])   # the burn-in step's work is still queued when timing starts
    t = time_phase(dev.step, dev.sync, warmup=1, steps=1, clock=dev.clock)
    assert t.samples_s == [1.0]   # the sync before the clock reading settles the burn-in's 7.0 first


class OverlappingDevice(FakeDevice):
    """A GPU-like device: each step costs ``launch`` of host time to queue and ``work`` of device time, and
    the device works while the host queues the next step."""

    def __init__(self, launch, work, steps):
        super().__init__([work] * steps)
        self.launch, self.busy_until = launch, 0.0

    def step(self):
        self.now += self.launch
        self.busy_until = max(self.busy_until, self.now) + self.durations[self.calls]
        self.calls += 1

    def sync(self):
        self.now = max(self.now, self.busy_until)


def test_pipelined_window_measures_throughput_not_latency():
    """Per-step synchronisation sees launch + work; a window of queued steps sees only the slower of the two."""
    dev = OverlappingDevice(launch=2.0, work=3.0, steps=100)
    latency = time_phase(dev.step, dev.sync, warmup=0, steps=10, clock=dev.clock).samples_s
    window = time_window(dev.step, dev.sync, 10, clock=dev.clock)
    assert latency == [5.0] * 10
    assert window == pytest.approx(2.0 + 10 * 3.0)   # the first launch, then back-to-back work
    assert dev.calls == 21


def test_statistics_match_numpy():
    samples = list(np.random.default_rng(0).lognormal(0, 0.3, 101))
    s = stats.sample_stats(samples)
    assert s.n == 101
    assert s.mean == pytest.approx(np.mean(samples))
    assert s.std == pytest.approx(np.std(samples, ddof=1))
    assert s.median == pytest.approx(np.median(samples))
    assert s.iqr == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25))
    assert (s.min, s.max) == (min(samples), max(samples))
    assert s.ci_low <= s.median <= s.ci_high
    ranks = sorted(samples)
    assert ranks.index(s.ci_low) == 40 and ranks.index(s.ci_high) == 60   # 50 -/+ 1.96*sqrt(101)/2


def test_median_ci_covers_the_true_median_about_95_percent():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(400):
        s = stats.sample_stats(list(rng.exponential(1.0, 100)))
        covered += s.ci_low <= np.log(2) <= s.ci_high
    assert 0.92 <= covered / 400 <= 0.99


def test_scaled_and_single_sample():
    s = stats.sample_stats([0.002])
    assert s.std == 0.0 and s.scaled(1000)["median"] == pytest.approx(2.0) and s.scaled(1000)["n"] == 1
    with pytest.raises(ValueError):
        stats.sample_stats([])


def test_articles_line():
    assert articles_line("forward", 100, 0.1234, 0.0041) == "Forward across 100 steps, 0.123 +/- 0.004 sec / batch"
    assert articles_line("forward_backward", 100, 1, 0).startswith("Forward-backward across 100 steps")
