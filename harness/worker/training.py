"""The training loop every framework shares: same batches, same schedule, same clock."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from harness.datasets import Dataset
from harness.datasets.batches import test_batches, train_batches
from harness.native import NativeModel
from harness.settings import DEFAULT_EPOCHS, RECIPE_BATCH, RunSettings


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and L2 weight decay; lr multiplied by ``decay_factor`` at each milestone epoch.

    Defaults are the articles' (REFERENCE s.3); ``milestones=None`` means one decay at half the epochs.
    ``target``: stop once test accuracy reaches it (time-to-target).
    """
    epochs: int = DEFAULT_EPOCHS["cifar10"]
    batch_size: int = RECIPE_BATCH
    lr: float = RunSettings.lr
    momentum: float = RunSettings.momentum
    weight_decay: float = RunSettings.weight_decay
    milestones: tuple[int, ...] | None = None
    decay_factor: float = RunSettings.decay_factor
    augment: bool = False
    target: float | None = None

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``."""
        marks = self.milestones if self.milestones is not None else ((self.epochs // 2,) if self.epochs > 1 else ())
        return self.lr * self.decay_factor ** sum(1 for m in marks if epoch >= m)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    train_images: int = 0
    time_to_target_s: float | None = None   # wall clock from first touch of the data, evaluation included
    epochs_to_target: int | None = None

    @property
    def test_accuracy(self) -> float:
        return self.history[-1]["test_accuracy"] if self.history else float("nan")


def evaluate(native: NativeModel, data: Dataset, batch_size: int) -> tuple[float, float]:
    """(mean test loss, test accuracy) over every test image."""
    loss_sum, correct = 0.0, 0
    for xb, yb in test_batches(data.x_test, data.y_test, batch_size):
        loss, hits = native.evaluate(xb, yb)
        loss_sum += loss
        correct += hits
    n = len(data.y_test)
    return loss_sum / n, correct / n


def train(native: NativeModel, data: Dataset, recipe: Recipe, seed: int, sync: Callable[[], None],
          on_epoch: Callable[[dict[str, float]], None] = lambda row: None,
          clock: Callable[[], float] = time.perf_counter, first_epoch: int = 0,
          on_step: Callable[[int, int, float], None] = lambda epoch, step, loss: None,
          shard: tuple[int, int] = (0, 1)) -> TrainResult:
    """Trains epochs ``first_epoch`` .. ``recipe.epochs - 1``.

    ``train_time_s`` covers training steps only and ``eval_time_s`` the per-epoch evaluation, each
    synchronised. ``time_to_target_s`` follows MLPerf: the clock starts when the data is first touched
    (the first batch is drawn) and stops when the evaluation that reaches ``recipe.target`` ends, so it
    includes evaluation; training stops there.

    ``shard=(rank, world_size)``: data-parallel training; this process trains on its contiguous
    slice of every global batch (the plugin averages gradients and the loss across processes).
    """
    rank, world = shard
    result = TrainResult()
    sync()
    run_start = clock()
    for epoch in range(first_epoch, recipe.epochs):
        lr = recipe.lr_at(epoch)
        loss_sum, steps = 0.0, 0
        sync()
        start = clock()
        for xb, yb in train_batches(data.x_train, data.y_train, recipe.batch_size, seed, epoch, recipe.augment):
            if world > 1:
                lo, hi = rank * len(xb) // world, (rank + 1) * len(xb) // world
                xb, yb = xb[lo:hi], yb[lo:hi]
            loss = native.train_step(xb, yb, lr)
            if not math.isfinite(loss):
                raise Diverged(f"loss became {loss} at epoch {epoch + 1}, step {steps + 1}")
            loss_sum += loss
            steps += 1
            on_step(epoch, steps, loss)
        sync()
        result.train_time_s += clock() - start
        result.train_images += steps * recipe.batch_size
        start = clock()
        test_loss, test_acc = evaluate(native, data, recipe.batch_size)
        sync()
        end = clock()
        result.eval_time_s += end - start
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": loss_sum / max(steps, 1), "test_loss": test_loss,
               "test_accuracy": test_acc, "train_time_s": result.train_time_s, "eval_time_s": result.eval_time_s,
               "wall_time_s": end - run_start}
        result.history.append(row)
        on_epoch(row)
        if recipe.target is not None and test_acc >= recipe.target:
            result.time_to_target_s, result.epochs_to_target = end - run_start, epoch + 1
            break
    return result
