"""A speed-mode cell: forward, forward_backward and train_step timed on one fixed batch.

Each phase gives two figures. Latency: every step timed alone, the device synchronised before both clock
readings (``ms_*``, and ``images_per_sec`` = batch / median step). Throughput: windows of steps queued back to
back between two synchronisations (``pipelined_ms`` per step, ``pipelined_images_per_sec``), which is what
training sees when the host runs ahead of the device; on a GPU a small network's per-step latency is mostly
kernel launches and is then far above its pipelined time. On the CPU, with adaptive sampling, the per-step
series gives both (its mean is the pipelined figure): nothing is queued there.

How many steps each series takes: ``harness/worker/sampling.py`` (``--steps auto``, the default), or the fixed
counts of ``--steps N`` (``--warmup`` burn-in steps, then N timed, then one window of N steps).

Achieved FLOP/s count the forward pass as the definition's FLOPs and a training pass as three times that
(backward ~ 2 x forward, the usual convention), against the median latency.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace
from typing import Any, Callable, TextIO

from harness.datasets.batches import train_batches
from harness.hardware.peaks import gpu_peak_gflops
from harness.native import PHASES
from harness.results import stats
from harness.results.records import measured_row
from harness.settings import Cell, RunSettings
from harness.worker.context import CellContext, setup
from harness.worker.protocol import emit, throttled
from harness.worker.sampling import Series, StopRule, fixed_series, planned_series, sample_series, stationary
from harness.worker.timing import articles_line

SPEED_LR = 1e-3  # small, so timed updates stay finite on random data
PASS_FACTOR = {"forward": 1, "forward_backward": 3, "train_step": 3}
WINDOW_STEPS = 100        # steps per pipelined window (the fixed protocol's window): each window is one sample
WINDOW_MIN_SAMPLES = 5


def peak_of(ctx: CellContext, common: dict[str, Any]) -> tuple[float | None, str]:
    """(device peak GFLOP/s for the precision that ran, a note when there is none)."""
    if not ctx.cell.device.is_gpu:
        peak = ctx.cell.run.cpu_peak_gflops
        return peak, "" if peak else "CPU GEMM peak not measured: peak_fraction left empty"
    peak, note = gpu_peak_gflops(ctx.cell.device_name or "", common.get("precision", "fp32"), bool(common.get("tf32")))
    return peak, "" if peak else note


def step_timer(step: Callable[[], None], sync: Callable[[], None], units: int = 1) -> Callable[[], float]:
    """Seconds per step of ``units`` steps queued back to back between two synchronisations (1: one step alone)."""
    def take() -> float:
        sync()
        start = time.perf_counter()
        for _ in range(units):
            step()
        sync()
        return (time.perf_counter() - start) / units
    return take


class Allowance:
    """Each series' time budget. Without ``--budget`` every series has ``max_time``; with it the cell's planned
    ``max_time`` x ``planned`` series (``planned_series``, as the budget counted them) is one pool, each of the
    ``series`` the cell runs taking an equal share of what the earlier ones left, so a phase that met its target
    early leaves its time to the noisier ones after it."""

    def __init__(self, run: RunSettings, series: int, planned: int | None = None) -> None:
        self.run, self.left, self.pool = run, series, run.max_time * (planned or series)

    def rule(self, **overrides: Any) -> StopRule:
        share = self.pool / self.left if self.run.budget is not None else self.run.max_time
        values: dict[str, Any] = {"target": self.run.precision_target, "max_time_s": share,
                                  "min_samples": self.run.min_steps}
        return StopRule(**{**values, **overrides})

    def spend(self, seconds: float) -> None:
        self.pool, self.left = max(0.0, self.pool - seconds), max(1, self.left - 1)


def queues_work(ctx: CellContext) -> bool:
    """Synchronising this cell's device waits for queued work: a GPU, or a framework asynchronous on the CPU."""
    return ctx.device.is_gpu or bool(getattr(ctx.pm.get_plugin(ctx.framework), "async_on_cpu", False))


def run_speed_cell(cell: Cell, progress: TextIO) -> dict[str, Any]:
    batch_size, run = cell.batch_size, cell.run
    emit(progress, event="phase", name="setup: data, model and weights")
    ctx = setup(cell, data_size=(batch_size, 1))
    images, labels = next(train_batches(ctx.data.x_train, ctx.data.y_train, batch_size, cell.seed, 0))
    batch = ctx.native.prepare_batch(images, labels)
    common = ctx.common()
    peak_gflops, note = peak_of(ctx, common)
    # a window measures what per-step timing does not only where synchronising waits for queued work: on a GPU, and
    # on the CPU for a framework that queues work there too (its plugin's async_on_cpu: JAX). Elsewhere a step returns
    # with its work done and one series gives both figures; a fixed count keeps the window everywhere (the protocol
    # earlier runs were measured with)
    windows = queues_work(ctx) or not run.adaptive
    allowance = Allowance(run, len(PHASES) * (2 if windows else 1), planned_series(cell.device.is_gpu))
    rows, samples = [], {}
    for phase in PHASES:
        def step(phase: str = phase) -> None:
            ctx.native.run_phase(phase, batch, SPEED_LR)
        ctx.peak_memory_mb(reset=True)
        tick = throttled(progress)
        emit(progress, event="phase", name=f"{phase} (the first step compiles and tunes)")
        first_step_s = step_timer(step, ctx.sync)()
        if not windows:
            emit(progress, event="region", name=phase, state="start")
        series = sample(step_timer(step, ctx.sync), run, allowance.rule(),
                        on_sample=lambda done: tick(event="phase", name=phase, step=1 + done, steps=run.steps or "auto"))
        allowance.spend(series.seconds)
        if windows:
            window, pipelined_from = sample_window(step, ctx, run, allowance, progress, phase, series, batch_size), "window"
            allowance.spend(window.seconds)
            pipelined_s, window_time_s = statistics.median(window.samples), window.seconds
        else:
            emit(progress, event="region", name=phase, state="end",
                 images=batch_size * (len(series.samples) + len(series.warmup)))
            window, pipelined_from = None, "steps"
            pipelined_s, window_time_s = statistics.fmean(series.samples), None
        s = stats.sample_stats(series.samples)
        samples[phase] = series.samples
        if window is not None:   # each pipelined window's seconds per step, kept beside the steps' own
            samples[f"{phase} pipelined"] = window.samples
        achieved = ctx.summary.flops * PASS_FACTOR[phase] * batch_size / s.median / 1e9
        ms = s.scaled(1000)
        stable = series.stable(run.precision_target) and (
            window is None or not run.adaptive or window.stable(run.precision_target))
        rows.append(measured_row(
            ctx.cell, common, [note, *sampling_notes(phase, series, window, run)], phase=phase, lr=SPEED_LR,
            steps=s.n, warmup=len(series.warmup), ms_mean=ms["mean"], ms_std=ms["std"], ms_median=ms["median"],
            ms_iqr=ms["iqr"], ms_min=ms["min"], ms_max=ms["max"], ms_ci_low=ms["ci_low"], ms_ci_high=ms["ci_high"],
            sampling="auto" if run.adaptive else "fixed", stop=series.stop,
            ci_half_pct=finite_pct(series.half_width), stable=stable, first_step_s=first_step_s,
            timing_s=series.seconds, window_time_s=window_time_s,
            images_per_sec=batch_size / s.median, pipelined_ms=1000 * pipelined_s, pipelined_from=pipelined_from,
            pipelined_ci_half_pct=finite_pct(window.half_width) if window else None,
            pipelined_images_per_sec=batch_size / pipelined_s, achieved_gflops=achieved,
            peak_gflops=peak_gflops, peak_fraction=achieved / peak_gflops if peak_gflops else None,
            peak_mem_mb=ctx.peak_memory_mb()))
        print(articles_line(phase, s.n, s.mean, s.std), file=progress)
    rows = [{**row, "compile_cache": ctx.compile_cache()} for row in rows]
    return {"rows": rows, "samples": samples}


def sample(take: Callable[[], float], run: RunSettings, rule: StopRule,
           on_sample: Callable[[int], None]) -> Series:
    """A series by the run's sampling: adaptive, or the fixed counts."""
    if run.adaptive:
        if run.warmup is not None:   # a given burn-in, then the adaptive rule
            for i in range(run.warmup):
                take()
                on_sample(i + 1)
            return sample_series(take, replace(rule, detect_warmup=False), on_sample=on_sample)
        return sample_series(take, rule, on_sample=on_sample)
    return fixed_series(take, run.fixed_warmup, run.steps or 0, on_sample=on_sample)


def sample_window(step: Callable[[], None], ctx: CellContext, run: RunSettings, allowance: Allowance,
                  progress: TextIO, phase: str, series: Series, batch_size: int) -> Series:
    """The pipelined series: one window of ``steps`` steps with a fixed count; when adaptive, windows of up to
    WINDOW_STEPS steps, each a sample, by their own stopping rule. A window is cut to what lets WINDOW_MIN_SAMPLES x 2
    of them fit the series' time (``window_steps``). The energy sampler's region spans the series."""
    units = window_steps(statistics.median(series.samples), allowance.rule().max_time_s) if run.adaptive \
        else run.steps or 0
    # each window reports nothing until it ends (about ``units`` steps), which the stall watchdog is told
    emit(progress, event="region", name=phase, state="start", quiet_s=2 * units * max(series.samples))
    tick = throttled(progress)
    take = step_timer(step, ctx.sync, units)
    if run.adaptive:
        window = sample_series(take, allowance.rule(detect_warmup=False, min_samples=WINDOW_MIN_SAMPLES),
                               on_sample=lambda done: tick(event="phase", name=f"{phase} pipelined", step=done * units,
                                                           steps="auto"))
    else:
        window = fixed_series(take, 0, 1)
    emit(progress, event="region", name=phase, state="end", images=batch_size * units * len(window.samples))
    return window


def window_steps(step_s: float, max_time_s: float) -> int:
    """Steps per pipelined window: WINDOW_STEPS (the fixed protocol's window: the queue's fill and drain weigh 1 %),
    fewer where WINDOW_MIN_SAMPLES x 2 such windows would not fit ``max_time_s`` (a slow CPU step: a 100-step window
    of 2.5 s steps would take 4 minutes, and the series keeps at least 3 windows whatever its budget)."""
    fits = int(max_time_s / (2 * WINDOW_MIN_SAMPLES * max(step_s, 1e-9)))
    return max(1, min(WINDOW_STEPS, fits))


def finite_pct(fraction: float) -> float | None:
    return 100 * fraction if math.isfinite(fraction) else None


def sampling_notes(phase: str, series: Series, window: Series | None, run: RunSettings) -> list[str]:
    """Why a phase is marked unstable, in words (the row's note)."""
    notes = []
    target = f"{100 * run.precision_target:g} %"
    for what, s in (("", series), (" pipelined", window)):
        if s is None or (s is window and not run.adaptive):   # a fixed count's one window has no interval
            continue
        if s.stop in ("budget", "cap") or not s.stable(run.precision_target):
            why = {"budget": f"its time budget ({s.seconds:.0f} s) ran out", "cap": "the sample cap was reached",
                   "fixed": "a fixed count", "target": "it met the target"}[s.stop]
            drifting = len(s.samples) >= 4 and not stationary(s.samples, run.precision_target)
            drift = ", drifting (its first and second halves differ)" if drifting else ""
            notes.append(f"unstable {phase}{what}: median known to +-{100 * s.half_width:.1f} % (target {target}), "
                         f"{why} after {len(s.samples)} samples{drift}")
        if not s.warm_settled:
            notes.append(f"{phase}{what}: still getting faster when the warm-up cap ended it "
                         f"({len(s.warmup)} steps discarded)")
    if window is None and run.adaptive:
        notes.append(f"{phase}: pipelined figures from the per-step series (on the CPU nothing is queued: one series)")
    return notes
