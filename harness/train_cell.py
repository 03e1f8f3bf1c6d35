"""A train-mode cell: the shared training loop, per-epoch rows, a checkpoint, one result row."""
from __future__ import annotations

import math
from typing import Any, TextIO

from harness.cell import setup
from harness.records import make_row
from harness.training import Diverged, Recipe, train
from harness.weights import save_weights


def run_train_cell(cell: dict[str, Any], progress: TextIO) -> dict[str, Any]:
    ctx = setup(cell)
    recipe = Recipe(epochs=cell["epochs"], batch_size=cell["batch_size"], lr=cell["lr"], momentum=cell["momentum"],
                    weight_decay=cell["weight_decay"], augment=cell.get("augment", False))
    ctx.peak_memory_mb(reset=True)

    def on_epoch(row: dict[str, float]) -> None:
        print(f"epoch {row['epoch']}/{recipe.epochs} loss {row['train_loss']:.4f} "
              f"test_acc {row['test_accuracy']:.4f} lr {row['lr']:g} train {row['train_time_s']:.1f}s", file=progress)

    common = ctx.common()
    try:
        result = train(ctx.native, ctx.data, recipe, cell["seed"], ctx.sync, on_epoch)
    except Diverged as exc:
        return {"rows": [make_row(cell, status="diverged", error=str(exc), **common)]}
    peak = ctx.peak_memory_mb()
    if cell.get("checkpoint"):
        save_weights(cell["checkpoint"], ctx.native.get_weights(), model=ctx.model.name, framework=ctx.framework)
    last = result.history[-1] if result.history else {}
    row = make_row(cell, status="ok", error="", test_accuracy=result.test_accuracy,
                   test_loss=last.get("test_loss"), train_loss=last.get("train_loss"),
                   train_time_s=result.train_time_s, eval_time_s=result.eval_time_s,
                   images_per_sec=result.train_images / result.train_time_s if result.train_time_s else math.nan,
                   peak_mem_mb=peak, **common)
    return {"rows": [row], "history": result.history}
