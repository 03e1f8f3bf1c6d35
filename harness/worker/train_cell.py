"""A train-mode cell: the shared training loop, per-epoch rows and checkpoints, one result row."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TextIO

from harness.model.weights import check_momentum, check_weights, load_checkpoint, save_weights
from harness.results.records import failure_row, measured_row
from harness.settings import Cell
from harness.worker.context import setup
from harness.worker.pipeline import pipelined
from harness.worker.protocol import emit, throttled
from harness.worker.training import Diverged, Recipe, train

PROGRESS_EVERY_S = 1.0


def run_train_cell(cell: Cell, progress: TextIO) -> dict[str, Any]:
    emit(progress, event="phase", name="setup: data, model and weights")
    ctx = setup(cell)
    recipe = Recipe.of(cell)
    first_epoch, resumed = 0, ""
    if cell.run.resume_from:
        first_epoch, resumed = resume(ctx.native, ctx.model, cell.run.resume_from)
    ctx.peak_memory_mb(reset=True)
    steps_per_epoch = len(ctx.data.x_train) // recipe.batch_size
    checkpoint = Path(cell.checkpoint) if cell.checkpoint else None
    step_event = throttled(progress, PROGRESS_EVERY_S)

    def on_step(epoch: int, step: int, loss: float) -> None:
        step_event(event="step", epoch=epoch + 1, epochs=recipe.epochs, step=step, steps=steps_per_epoch, loss=loss)

    def on_epoch(row: dict[str, float]) -> None:
        if checkpoint is not None:
            momentum = ctx.native.get_momentum() if hasattr(ctx.native, "get_momentum") else None
            save_weights(checkpoint, ctx.native.get_weights(), momentum, model=ctx.model.name,
                         framework=ctx.framework, epoch=str(row["epoch"]))
        emit(progress, event="epoch", epochs=recipe.epochs, **row)

    epoch = [first_epoch]

    def on_region(state: str, images: int) -> None:   # the sampler's energy regions; the watchdog's progress
        epoch[0] += state == "start"
        emit(progress, event="region", name="train", state=state, images=images, epoch=epoch[0], epochs=recipe.epochs)

    common = ctx.common()
    try:
        result = train(ctx.native, ctx.data, recipe, cell.seed, ctx.sync, on_epoch, first_epoch=first_epoch,
                       on_step=on_step, shard=cell.shard, prefetch=ctx.device.is_gpu, on_region=on_region)
    except Diverged as exc:
        return {"rows": [failure_row(ctx.cell, "diverged", str(exc), **common)]}
    last = result.history[-1] if result.history else {}
    missed = recipe.target is not None and result.time_to_target_s is None
    notes = [f"target {recipe.target:g} not reached in {recipe.epochs} epochs" if missed else None, resumed,
             None if pipelined(ctx.native) else ("this plugin has no train_step_async/read_losses: every step waited "
                                                 "for its loss (slower on GPUs)")]
    row = measured_row(ctx.cell, common, notes, test_accuracy=result.test_accuracy,
                       test_loss=last.get("test_loss"), train_loss=last.get("train_loss"),
                       train_time_s=result.train_time_s, eval_time_s=result.eval_time_s,
                       images_per_sec=result.train_images / result.train_time_s if result.train_time_s else math.nan,
                       peak_mem_mb=ctx.peak_memory_mb(), target=recipe.target, time_to_target_s=result.time_to_target_s,
                       epochs_to_target=result.epochs_to_target, epochs_run=len(result.history))
    return {"rows": [row], "history": result.history}


def resume(native: Any, model: Any, path: str) -> tuple[int, str]:
    """Loads a checkpoint's weights (and momentum buffers where both it and the plugin have them);
    returns (epochs already done, the note for the result row)."""
    weights, momentum, meta = load_checkpoint(path)
    check_weights(model, weights, source=f"checkpoint {path!r}")
    native.set_weights(weights)
    done = int(meta.get("epoch", 0))
    if not momentum:
        return done, f"resumed after epoch {done} (the checkpoint has no momentum buffers: they restart at zero)"
    if not hasattr(native, "set_momentum"):
        return done, f"resumed after epoch {done} (this plugin cannot load momentum buffers: they restart at zero)"
    check_momentum(model, momentum, source=f"checkpoint {path!r}")
    native.set_momentum(momentum)
    return done, f"resumed after epoch {done} with its momentum buffers"
