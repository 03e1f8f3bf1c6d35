"""The timing loop: first step apart, burn-in discarded, every timed step synchronised and kept."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class PhaseTiming:
    first_step_s: float     # the first call: tracing, compilation, autotuning included
    samples_s: list[float]  # one per timed step, burn-in excluded


def time_phase(step: Callable[[], None], sync: Callable[[], None], warmup: int, steps: int,
               clock: Callable[[], float] = time.perf_counter,
               on_step: Callable[[int], None] = lambda done: None) -> PhaseTiming:
    """Runs ``step`` 1 + warmup + steps times; times the first call alone and each of the last ``steps``.

    The device is synchronised before every clock reading, so queued asynchronous work is counted
    in the step that queued it. ``on_step(calls done)`` follows each call, outside the timed interval (progress).
    """
    sync()
    start = clock()
    step()
    sync()
    first = clock() - start
    on_step(1)
    for i in range(warmup):
        step()
        on_step(2 + i)
    samples = []
    for i in range(steps):
        sync()
        start = clock()
        step()
        sync()
        samples.append(clock() - start)
        on_step(2 + warmup + i)
    return PhaseTiming(first, samples)


def time_window(step: Callable[[], None], sync: Callable[[], None], steps: int,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds for ``steps`` calls queued back to back, the device synchronised only before and after: the
    pipelined throughput a training loop sees (per-step synchronisation measures latency instead)."""
    sync()
    start = clock()
    for _ in range(steps):
        step()
    sync()
    return clock() - start


def articles_line(phase: str, steps: int, mean_s: float, std_s: float) -> str:
    """The timing article's line: 'Forward across 100 steps, 0.123 +/- 0.004 sec / batch'."""
    label = {"forward": "Forward", "forward_backward": "Forward-backward", "train_step": "Train step"}[phase]
    return f"{label} across {steps} steps, {mean_s:.3f} +/- {std_s:.3f} sec / batch"
