"""benchmarks/paired.py, the lab's one way of comparing two things, on synthetic inputs: no test here times
anything real, so a busy machine cannot fail it."""
from __future__ import annotations

import numpy as np
import pytest
from paired import DRAWS, abba, bootstrap_median, paired_ratio, shuffled, timed


class FakeDevice:
    """A clock that only moves when a step runs (``cost`` seconds each), and a log of steps and syncs."""

    def __init__(self, cost: float) -> None:
        self.now, self.cost, self.log = 0.0, cost, []

    def clock(self) -> float:
        return self.now

    def step(self) -> None:
        self.now += self.cost
        self.log.append("step")

    def sync(self) -> None:
        self.log.append("sync")


@pytest.mark.parametrize("repeat", [1, 5])
def test_timed_synchronises_around_the_steps_and_gives_seconds_per_step(repeat: int) -> None:
    device = FakeDevice(cost=0.25)
    assert timed(device.step, device.sync, repeat, clock=device.clock) == pytest.approx(0.25)
    assert device.log == ["sync", *["step"] * repeat, "sync"]


def test_timed_refuses_no_steps() -> None:
    device = FakeDevice(cost=1.0)
    with pytest.raises(ValueError, match="at least 1"):
        timed(device.step, device.sync, 0, clock=device.clock)


def test_abba_alternates_and_puts_each_side_first_as_often_as_last() -> None:
    orders = [abba(("harness", "hand"), i) for i in range(6)]
    assert orders[:2] == [["harness", "hand"], ["hand", "harness"]]
    assert orders == orders[:2] * 3
    three = [abba("xyz", i) for i in range(4)]
    assert three == [list("xyz"), list("zyx")] * 2
    firsts = [order[0] for order in three]
    assert firsts.count("x") == firsts.count("z") == 2


def test_shuffled_gives_seeded_permutations_that_vary() -> None:
    sides = ["train", "window", "latency", "ceiling", "input"]
    orders = list(shuffled(sides, 50))
    assert len(orders) == 50 and all(sorted(o) == sorted(sides) for o in orders)
    assert orders == list(shuffled(sides, 50))                    # the same seed, the same orders
    assert len({tuple(o) for o in orders}) > 10                    # not one order over and over
    assert {o[0] for o in orders} == set(sides)                    # every side leads some cycle
    assert sides == ["train", "window", "latency", "ceiling", "input"]   # the caller's list is left alone


def test_a_constant_ratio_is_exact_and_its_interval_closed() -> None:
    theirs = np.random.default_rng(0).uniform(0.01, 0.02, 30)
    result = paired_ratio(1.25 * theirs, theirs)
    assert result.ratio == pytest.approx(1.25) and result.low == pytest.approx(1.25) and result.high == pytest.approx(1.25)


def test_a_known_ratio_is_inside_the_interval() -> None:
    """Pairs whose ratio is 1.1 times noise of median 1 (lognormal, 5 %): the interval holds 1.1 and is narrow."""
    rng = np.random.default_rng(3)
    theirs = rng.uniform(0.5, 1.5, 200)
    ours = 1.1 * theirs * rng.lognormal(0.0, 0.05, 200)
    ratio, low, high = paired_ratio(ours, theirs)
    assert low <= 1.1 <= high and low <= ratio <= high and high - low < 0.03


def test_pairing_cancels_drift_between_pairs() -> None:
    """convbench 5 % slower on a machine whose speed doubles halfway through the run (medians of rounds taken
    apart could then say anything from 0.5 to 2)."""
    drift = np.concatenate([np.full(10, 1.0), np.full(10, 2.0)]) * np.random.default_rng(1).uniform(0.98, 1.02, 20)
    ours, theirs = list(1.05 * drift), list(drift * np.random.default_rng(2).uniform(0.99, 1.01, 20))
    ratio, low, high = paired_ratio(ours, theirs)
    assert 1.03 < ratio < 1.07 and low <= ratio <= high and high - low < 0.05


def test_the_estimator_is_the_one_the_scripts_had() -> None:
    """Median of the pairs' ratios; percentile bootstrap of it, 2000 resamples from default_rng(0), 2.5 % and
    97.5 % quantiles: what idiomatic_ratio.py and train_vs_speed.py computed inline, to the last bit."""
    rng = np.random.default_rng(7)
    ours, theirs = rng.uniform(1, 2, 40), rng.uniform(1, 2, 40)
    ratios = ours / theirs
    medians = np.median(np.random.default_rng(0).choice(ratios, (2000, len(ratios))), axis=1)
    assert DRAWS == 2000
    assert tuple(paired_ratio(ours, theirs)) == (float(np.median(ratios)), float(np.quantile(medians, 0.025)),
                                                 float(np.quantile(medians, 0.975)))


def test_bootstrap_interval_covers_the_median_about_as_often_as_it_says() -> None:
    """Over 200 seeded samples of 60 values from a distribution with median 1, a 95 % interval holds 1 in
    roughly 95 % of them (the percentile bootstrap of a median is a little conservative or liberal at n=60)."""
    hits = 0
    for seed in range(200):
        values = np.random.default_rng(seed).lognormal(0.0, 0.3, 60)
        low, high = bootstrap_median(values, draws=500, seed=seed)
        hits += low <= 1.0 <= high
    assert 0.88 <= hits / 200 <= 0.99


@pytest.mark.parametrize("ours, theirs", [([1.0, 2.0], [1.0]), ([], [])])
def test_pairs_must_match(ours: list[float], theirs: list[float]) -> None:
    with pytest.raises(ValueError):
        paired_ratio(ours, theirs)


def test_the_scripts_time_and_judge_through_paired(benchmarks_dir) -> None:
    """No script keeps its own copy of the clock, the order or the bootstrap."""
    for script in ("overhead.py", "idiomatic_ratio.py", "train_vs_speed.py"):
        text = (benchmarks_dir / script).read_text()
        assert "from paired import" in text, script
        for copy in ("default_rng(0).choice", "np.quantile", "perf_counter", "i % 2", "def bootstrap", "def timed"):
            assert copy not in text, (script, copy)

