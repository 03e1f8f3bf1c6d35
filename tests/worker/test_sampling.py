"""The adaptive stopping rule on synthetic streams: each sample costs its own value of a fake clock, so the budget,
the warm-up and the stopping point are exact and the test cannot be disturbed by a busy machine."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.worker.sampling import (
    MIN_KEPT,
    WARM_BLOCK,
    WARM_CAP_STEPS,
    Series,
    StopRule,
    fixed_series,
    half_width,
    sample_series,
    stationary,
)


class Stream:
    """``values`` one after another; the clock advances by each value taken."""

    def __init__(self, values):
        self.values = iter(values)
        self.now = 0.0
        self.taken = 0

    def take(self):
        value = next(self.values)
        self.now += value
        self.taken += 1
        return value

    def clock(self):
        return self.now


def run(values, **rule):
    stream = Stream(values)
    return sample_series(stream.take, StopRule(**rule), clock=stream.clock), stream


def noisy(sigma, seed=0, base=0.01):
    rng = np.random.default_rng(seed)
    return (base * math.exp(rng.normal(0, sigma)) for _ in itertools.count())


def test_a_constant_stream_stops_at_the_minimum():
    series, stream = run(itertools.repeat(0.01), min_samples=20)
    assert (series.stop, len(series.samples), series.warmup, stream.taken) == ("target", 20, [], 20)
    assert series.half_width == 0 and series.stable(0.01)


def test_a_drifting_stream_spends_its_budget_and_is_unstable():
    """+0.5 % a step: every overall interval narrows, but the halves part."""
    drift = (0.01 * 1.005 ** i for i in itertools.count())
    series, _ = run(drift, max_time_s=5.0, target=0.01)
    assert series.stop == "budget"
    assert 5.0 <= series.seconds < 5.0 + 0.2
    assert not stationary(series.samples, 0.01) and not series.stable(0.01)


def test_a_noisy_stream_takes_more_samples_than_a_quiet_one():
    quiet, _ = run(noisy(0.005), max_time_s=1e9)
    loud, _ = run(noisy(0.10), max_time_s=1e9)
    assert quiet.stop == loud.stop == "target"
    assert len(quiet.samples) == 20            # within 1 % at the minimum
    assert len(loud.samples) > 5 * len(quiet.samples)
    assert loud.half_width <= 0.01 and loud.stable(0.01)


def test_too_noisy_for_the_budget_is_marked():
    series, _ = run(noisy(0.5), max_time_s=0.5)
    assert series.stop == "budget" and series.half_width > 0.01 and not series.stable(0.01)


def test_the_sample_cap_stops_a_stream_the_target_never_ends():
    series, _ = run(noisy(0.5), max_time_s=1e9, max_samples=300)
    assert series.stop == "cap" and len(series.samples) == 300 and not series.stable(0.01)


def test_slow_first_steps_are_warm_up_and_dropped():
    values = itertools.chain([0.05, 0.04, 0.03, 0.02, 0.015], itertools.repeat(0.01))
    series, _ = run(values)
    assert series.warmup == [0.05, 0.04, 0.03, 0.02, 0.015]
    assert series.samples[0] == 0.01 and series.stop == "target" and series.warm_settled


def test_a_single_slow_second_call_is_warm_up():
    values = itertools.chain([0.03], itertools.repeat(0.01))
    series, _ = run(values)
    assert len(series.warmup) == WARM_BLOCK and max(series.samples) == 0.01


def test_a_plateau_of_slow_steps_is_found_by_the_halves():
    """Ten equally slow steps fool the pairwise block rule; the halves then disagree and the slow blocks go."""
    values = itertools.chain([0.02] * 10, itertools.repeat(0.01))
    series, _ = run(values)
    assert series.warmup == [0.02] * 10 and set(series.samples) == {0.01} and series.stop == "target"


def test_a_warm_phase_pays_no_warm_up():
    series, stream = run(noisy(0.002))
    assert series.warmup == [] and stream.taken == len(series.samples) == 20


def test_warm_up_is_capped():
    getting_faster = (0.01 * (1 + 10 / (i + 1)) for i in itertools.count())
    series, _ = run(getting_faster, max_time_s=1e9, max_samples=400)
    assert len(series.warmup) <= WARM_CAP_STEPS


def test_a_step_longer_than_the_budget_still_keeps_its_minimum():
    series, stream = run(itertools.repeat(2.0), max_time_s=1.0)
    assert series.stop == "budget" and len(series.samples) == MIN_KEPT and stream.taken == MIN_KEPT


def test_without_warm_up_detection_nothing_is_dropped():
    values = itertools.chain([0.05] * 5, itertools.repeat(0.01))
    series, _ = run(values, detect_warmup=False, max_time_s=2.0)
    assert series.warmup == [] and series.samples[:5] == [0.05] * 5


def test_fixed_counts():
    stream = Stream(itertools.repeat(0.01))
    series = fixed_series(stream.take, 10, 100, clock=stream.clock)
    assert (len(series.warmup), len(series.samples), series.stop, stream.taken) == (10, 100, "fixed", 110)
    assert series.seconds == pytest.approx(1.1)


def test_half_width_is_the_wider_side_of_the_medians_interval():
    assert half_width([1.0]) == math.inf
    assert half_width([1.0] * 30) == 0
    values = [1.0] * 15 + [2.0] * 15   # median 1.5, interval from 1 to 2
    assert half_width(values) == pytest.approx(0.5 / 1.5)


def test_a_small_drift_below_the_target_is_stationary():
    values = [0.01 * (1 + 0.004 * i / 1000) for i in range(1000)]   # 0.4 % over the whole series
    assert not stationary(values) and stationary(values, 0.01)


def test_pipelined_windows_sample_by_their_own_rule_and_mark_one_region():
    """The GPU path on any machine: windows of queued steps, each a sample, with their own minimum and
    no warm-up detection; the energy sampler's region spans them all and counts their images."""
    import io
    import json
    from types import SimpleNamespace

    from harness.settings import RunSettings
    from harness.worker.speed_cell import WINDOW_MIN_SAMPLES, Allowance, sample_window, window_steps

    calls, progress = [0], io.StringIO()

    def step():
        calls[0] += 1
    run = RunSettings(mode="speed", max_time=0.5)
    per_step = Series([0.001] * 20)
    window = sample_window(step, SimpleNamespace(sync=lambda: None), run, Allowance(run, 2), progress, "forward",
                           per_step, batch_size=8)
    assert window.stop in ("target", "budget", "cap") and window.warmup == []
    assert len(window.samples) >= (WINDOW_MIN_SAMPLES if window.stop == "target" else MIN_KEPT)
    units = window_steps(0.001, 0.5)   # the per-step median and the series' time: 50 steps a window
    assert units == 50 and calls[0] == units * len(window.samples)
    regions = [e for e in map(json.loads, progress.getvalue().splitlines()) if e["event"] == "region"]
    assert [r["state"] for r in regions] == ["start", "end"]
    assert regions[1]["images"] == 8 * units * len(window.samples) and regions[0]["quiet_s"] > 0


def test_a_window_fits_its_series_budget():
    from harness.worker.speed_cell import WINDOW_MIN_SAMPLES, WINDOW_STEPS, window_steps
    assert window_steps(0.001, 30.0) == WINDOW_STEPS                     # a GPU's millisecond step: the full window
    assert window_steps(0.1, 30.0) == 30.0 // (2 * WINDOW_MIN_SAMPLES * 0.1)
    assert window_steps(2.5, 30.0) == 1                                  # a slow CPU step: one step a window
