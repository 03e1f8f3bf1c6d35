"""A speed-mode cell: forward, forward_backward and train_step timed on one fixed batch.

Each phase gives two figures. Latency: every step timed alone, the device synchronised before both clock
readings (``ms_*``, and ``images_per_sec`` = batch / median step). Throughput: a window of the same number
of steps queued back to back between two synchronisations (``pipelined_ms`` per step,
``pipelined_images_per_sec``), which is what training sees when the host runs ahead of the device; on a GPU
a small network's per-step latency is mostly kernel launches and is then far above its pipelined time.

Achieved FLOP/s count the forward pass as the definition's FLOPs and a training pass as three times that
(backward ~ 2 x forward, the usual convention), against the median latency.
"""
from __future__ import annotations

from typing import Any, TextIO

from harness.datasets.batches import train_batches
from harness.hardware.peaks import gpu_peak_gflops
from harness.native import PHASES
from harness.results import stats
from harness.results.records import measured_row
from harness.settings import Cell
from harness.worker.context import CellContext, setup
from harness.worker.protocol import emit, throttled
from harness.worker.timing import articles_line, time_phase, time_window

SPEED_LR = 1e-3  # small, so timed updates stay finite on random data
PASS_FACTOR = {"forward": 1, "forward_backward": 3, "train_step": 3}


def peak_of(ctx: CellContext, common: dict[str, Any]) -> tuple[float | None, str]:
    """(device peak GFLOP/s for the precision that ran, a note when there is none)."""
    if not ctx.cell.device.is_gpu:
        peak = ctx.cell.run.cpu_peak_gflops
        return peak, "" if peak else "CPU GEMM peak not measured: peak_fraction left empty"
    peak, note = gpu_peak_gflops(ctx.cell.device_name or "", common.get("precision", "fp32"), bool(common.get("tf32")))
    return peak, "" if peak else note


def run_speed_cell(cell: Cell, progress: TextIO) -> dict[str, Any]:
    batch_size = cell.batch_size
    emit(progress, event="phase", name="setup: data, model and weights")
    ctx = setup(cell, data_size=(batch_size, 1))
    images, labels = next(train_batches(ctx.data.x_train, ctx.data.y_train, batch_size, cell.seed, 0))
    batch = ctx.native.prepare_batch(images, labels)
    common = ctx.common()
    peak_gflops, note = peak_of(ctx, common)
    rows, samples = [], {}
    for phase in PHASES:
        def step(phase: str = phase) -> None:
            ctx.native.run_phase(phase, batch, SPEED_LR)
        ctx.peak_memory_mb(reset=True)
        calls, tick = 1 + cell.run.warmup + cell.run.steps, throttled(progress)
        emit(progress, event="phase", name=f"{phase} (the first step compiles and tunes)")
        timing = time_phase(step, ctx.sync, cell.run.warmup, cell.run.steps,
                            on_step=lambda done: tick(event="phase", name=phase, step=done, steps=calls))
        # the sampler reads energy counters here; the window reports nothing until it ends (about the timed steps'
        # total), which the stall watchdog is told
        emit(progress, event="region", name=phase, state="start", quiet_s=2 * sum(timing.samples_s))
        window_s = time_window(step, ctx.sync, cell.run.steps)
        emit(progress, event="region", name=phase, state="end", images=batch_size * cell.run.steps)
        s = stats.sample_stats(timing.samples_s)
        samples[phase] = timing.samples_s
        achieved = ctx.summary.flops * PASS_FACTOR[phase] * batch_size / s.median / 1e9
        ms = s.scaled(1000)
        rows.append(measured_row(
            ctx.cell, common, [note], phase=phase, lr=SPEED_LR, steps=s.n, warmup=cell.run.warmup,
            ms_mean=ms["mean"], ms_std=ms["std"], ms_median=ms["median"], ms_iqr=ms["iqr"], ms_min=ms["min"],
            ms_max=ms["max"], ms_ci_low=ms["ci_low"], ms_ci_high=ms["ci_high"], first_step_s=timing.first_step_s,
            images_per_sec=batch_size / s.median, pipelined_ms=1000 * window_s / cell.run.steps,
            pipelined_images_per_sec=batch_size * cell.run.steps / window_s, achieved_gflops=achieved,
            peak_gflops=peak_gflops, peak_fraction=achieved / peak_gflops if peak_gflops else None,
            peak_mem_mb=ctx.peak_memory_mb()))
        print(articles_line(phase, s.n, s.mean, s.std), file=progress)
    rows = [{**row, "compile_cache": ctx.compile_cache()} for row in rows]
    return {"rows": rows, "samples": samples}
