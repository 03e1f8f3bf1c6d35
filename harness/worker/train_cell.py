"""A train-mode cell: the shared training loop, per-epoch rows and checkpoints, one result row.

Each epoch ends with the cell's checkpoint (weights, momentum buffers, and the epochs so far with their clocks),
so a cell that stopped (crashed, stalled, timed out, interrupted) continues from its last finished epoch when the
run is resumed: the data order, augmentation and learning rate are functions of (seed, epoch), so epoch k + 1 after
a restart draws and trains exactly what it would have in one go.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.atomic import WriteFailed
from harness.model.graph import Dropout, walk
from harness.model.weights import check_momentum, check_weights, load_checkpoint, save_weights
from harness.results.records import failure_row, measured_row
from harness.settings import Cell
from harness.worker.context import setup
from harness.worker.pipeline import pipelined
from harness.worker.protocol import checkpoint_owner, emit, is_own_checkpoint, throttled
from harness.worker.training import Diverged, Recipe, TrainResult, collapsed, train

PROGRESS_EVERY_S = 1.0


@dataclass
class Start:
    """Where a cell's training starts: epochs already done, the row's note, and (continuing this same cell) the
    history of those epochs, whose clocks the new part adds to."""
    epoch: int = 0
    note: str = ""
    history: list[dict[str, float]] = field(default_factory=list)


def run_train_cell(cell: Cell, progress: TextIO) -> dict[str, Any]:
    emit(progress, event="phase", name="setup: data, model and weights")
    ctx = setup(cell)
    recipe = Recipe.of(cell)
    start = resume(ctx.native, ctx.model, cell.run.resume_from, cell) if cell.run.resume_from else Start()
    ctx.peak_memory_mb(reset=True)
    steps_per_epoch = len(ctx.data.x_train) // recipe.batch_size
    checkpoint = Path(cell.checkpoint) if cell.checkpoint else None
    history = list(start.history)
    step_event = throttled(progress, PROGRESS_EVERY_S)

    def on_step(epoch: int, step: int, loss: float) -> None:
        step_event(event="step", epoch=epoch + 1, epochs=recipe.epochs, step=step, steps=steps_per_epoch, loss=loss)

    unsaved: list[str] = []   # the last checkpoint the disk refused: the cell's results stand, with this note

    def on_epoch(row: dict[str, float]) -> None:
        history.append(row)
        if checkpoint is not None:
            momentum = ctx.native.get_momentum() if hasattr(ctx.native, "get_momentum") else None
            try:
                save_weights(checkpoint, ctx.native.get_weights(), momentum, model=ctx.model.name,
                             framework=ctx.framework, epoch=str(row["epoch"]), **checkpoint_owner(cell),
                             history=json.dumps(history))
                unsaved.clear()
            except WriteFailed as exc:
                unsaved[:] = [f"{checkpoint.name} not saved after epoch {row['epoch']:g} ({exc.reason})"]
        emit(progress, event="epoch", epochs=recipe.epochs, **row)

    epoch = [start.epoch]

    def on_region(state: str, images: int) -> None:   # the sampler's energy regions; the watchdog's progress
        epoch[0] += state == "start"
        emit(progress, event="region", name="train", state=state, images=images, epoch=epoch[0], epochs=recipe.epochs)

    common = ctx.common()
    done = TrainResult.carried(start.history, steps_per_epoch * recipe.batch_size) if start.history else None
    try:
        result = train(ctx.native, ctx.data, recipe, cell.seed, ctx.sync, on_epoch, first_epoch=start.epoch,
                       on_step=on_step, shard=cell.shard, prefetch=ctx.device.is_gpu, done=done, on_region=on_region)
    except Diverged as exc:
        return {"rows": [failure_row(ctx.cell, "diverged", str(exc), **common, compile_cache=ctx.compile_cache())]}
    last = result.history[-1] if result.history else {}
    missed = recipe.target is not None and result.time_to_target_s is None
    notes = [f"target {recipe.target:g} not reached in {recipe.epochs} epochs" if missed else None, start.note,
             *unsaved,
             None if pipelined(ctx.native) else ("this plugin has no train_step_async/read_losses: every step waited "
                                                 "for its loss (slower on GPUs)")]
    row = measured_row(ctx.cell, common, notes, test_accuracy=result.test_accuracy,
                       test_loss=last.get("test_loss"), train_loss=last.get("train_loss"),
                       train_time_s=result.train_time_s, eval_time_s=result.eval_time_s,
                       images_per_sec=result.train_images / result.train_time_s if result.train_time_s else math.nan,
                       peak_mem_mb=ctx.peak_memory_mb(), target=recipe.target, time_to_target_s=result.time_to_target_s,
                       epochs_to_target=result.epochs_to_target, epochs_run=len(result.history),
                       compile_cache=ctx.compile_cache())
    # random labels (synthetic) can score 2 x chance on a small test set by luck: real labels only
    why = collapsed(result.history, ctx.model.num_classes) if cell.run.dataset != "synthetic" else None
    if why:   # its figures stay in the row, as measured
        row.update(status="diverged", error=why)
    return {"rows": [row], "history": result.history}


def resume(native: Any, model: Any, path: str, cell: Cell | None = None) -> Start:
    """Loads a checkpoint's weights (and momentum buffers where both it and the plugin have them); returns where
    training starts. A checkpoint this same cell wrote (``--resume`` of its run) also gives back the epochs it
    had finished, so the row and epochs.json hold both parts; any other (``--resume-from``) starts a new history."""
    weights, momentum, meta = load_checkpoint(path)
    check_weights(model, weights, source=f"checkpoint {path!r}")
    native.set_weights(weights)
    done = int(meta.get("epoch", 0))
    own = cell is not None and is_own_checkpoint(meta, cell)
    history = json.loads(meta["history"]) if own else []
    what = f"continued after epoch {done} from this cell's checkpoint" if own else f"resumed after epoch {done}"
    dropout = any(isinstance(node, Dropout) for _, node in walk(model.body))
    rng = ("; the framework's dropout RNG is not in the checkpoint: later epochs draw other dropout masks than an "
           "uninterrupted run" if dropout else "")
    if not momentum:
        return Start(done, f"{what} (the checkpoint has no momentum buffers: they restart at zero){rng}", history)
    if not hasattr(native, "set_momentum"):
        return Start(done, f"{what} (this plugin cannot load momentum buffers: they restart at zero){rng}", history)
    check_momentum(model, momentum, source=f"checkpoint {path!r}")
    native.set_momentum(momentum)
    return Start(done, f"{what} with its momentum buffers{rng}", history)
