"""The training loop every framework shares: same batches, same schedule, same clock."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from harness.datasets import Dataset
from harness.datasets.batches import test_batches
from harness.native import NativeModel
from harness.settings import DEFAULT_EPOCHS, RECIPE_BATCH, Cell, RunSettings, parse_schedule
from harness.worker import checks
from harness.worker.pipeline import input_path, pipelined


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and L2 weight decay; lr multiplied by ``decay_factor`` at each milestone epoch.

    Defaults are RunSettings' (the articles', docs/articles.md 'The recipe'), with 200 epochs and batch 128 as on CIFAR-10;
    ``milestones=None`` means RunSettings' schedule (one decay at half the epochs). ``target``: stop once test
    accuracy reaches it (time-to-target). A cell's recipe is ``Recipe.of(cell)``.
    """
    epochs: int = DEFAULT_EPOCHS["cifar10"]
    batch_size: int = RECIPE_BATCH
    lr: float = RunSettings.lr
    momentum: float = RunSettings.momentum
    weight_decay: float = RunSettings.weight_decay
    milestones: tuple[int, ...] | None = None
    decay_factor: float = RunSettings.decay_factor
    augment: bool = RunSettings.augment
    target: float | None = RunSettings.target

    @classmethod
    def of(cls, cell: Cell) -> "Recipe":
        r = cell.run
        assert r.epochs is not None, "a train cell has epochs"
        return cls(epochs=r.epochs, batch_size=cell.batch_size, lr=r.lr, momentum=r.momentum,
                   weight_decay=r.weight_decay, milestones=tuple(r.milestones), decay_factor=r.decay_factor,
                   augment=r.augment, target=r.target)

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``."""
        marks = self.milestones if self.milestones is not None else parse_schedule(RunSettings.schedule, self.epochs)
        return self.lr * self.decay_factor ** sum(1 for m in marks if epoch >= m)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


COLLAPSE_LEARNED = 2.0   # x chance: an earlier epoch's test accuracy at least this shows the network had learned
COLLAPSE_AT = 1.25       # x chance: a last epoch's test accuracy below this is back at chance


def collapsed(history: list[dict[str, float]], classes: int) -> str | None:
    """Why a training that had learned ended back at chance (a finite loss that sits at ln(classes): the ReLUs died
    after a spike, the collapse a learning rate at the edge of stability causes; docs/gpu.md), or None. A run that
    never left chance (random labels, one short epoch) is not one."""
    accs = [e["test_accuracy"] for e in history if math.isfinite(e.get("test_accuracy", math.nan))]
    chance = 1 / classes
    if len(accs) < 2 or accs[-1] >= COLLAPSE_AT * chance or max(accs[:-1]) < COLLAPSE_LEARNED * chance:
        return None
    best = max(range(len(accs) - 1), key=accs.__getitem__)
    since = next(i for i in range(best + 1, len(accs)) if all(a < COLLAPSE_AT * chance for a in accs[i:]))
    loss = history[-1].get("train_loss", math.nan)
    return (f"training collapsed to chance: test accuracy {100 * accs[best]:.2f}% after epoch {best + 1}, "
            f"{100 * accs[-1]:.2f}% at the end (chance {100 * chance:.0f}%) and from epoch {since + 1} on; last train "
            f"loss {loss:.4f} (ln {classes} = {math.log(classes):.4f}); a lower --lr or another --seed may train")


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

    @classmethod
    def carried(cls, history: list[dict[str, float]], images_per_epoch: int) -> "TrainResult":
        """The result so far of a cell that stopped after ``history``'s epochs (its clocks are cumulative)."""
        last = history[-1]
        return cls(list(history), float(last["train_time_s"]), float(last["eval_time_s"]),
                   images_per_epoch * len(history))


def test_metrics(native: NativeModel, data: Dataset, batch_size: int) -> tuple[float, float]:
    """(mean test loss, test accuracy) over every test image."""
    loss_sum, correct = 0.0, 0
    for xb, yb in test_batches(data.x_test, data.y_test, batch_size):
        loss, hits = checks.evaluation(native, native.evaluate(xb, yb), len(yb))
        loss_sum += loss
        correct += hits
    n = len(data.y_test)
    return loss_sum / n, correct / n


READ_EVERY = 8  # pipelined steps: losses are read in bulk once this many are queued (progress, divergence)


def run_epoch(native: NativeModel, batches: Iterator[Any], lr: float, epoch: int,
              on_step: Callable[[int, int, float], None], layout: str = "nchw",
              prepared: bool = False) -> tuple[float, int]:
    """(sum of the steps' losses, steps). With a PipelinedModel the device never waits for the host: batch k+1
    is prepared (its copy to the device queued) while step k runs, and losses are read in bulk one step behind
    the newest, so a read never drains the queue. Otherwise every ``train_step`` returns its loss (a sync).
    ``prepared``: ``batches`` are already the model's own batches (``gather_batch``), not numpy arrays."""
    loss_sum, steps = 0.0, 0
    if not pipelined(native):
        for xb, yb in batches:
            loss = checks.loss(native, native.train_step(xb, yb, lr))
            steps += 1
            check_finite(loss, epoch, steps)
            loss_sum += loss
            on_step(epoch, steps, loss)
        return loss_sum, steps
    model: Any = native
    pending: list[object] = []

    def read(keep_newest: bool) -> None:
        nonlocal loss_sum
        taken = pending[:-1] if keep_newest else list(pending)
        first = steps - len(pending) + 1   # the step number of pending[0]
        values = checks.losses(model, model.read_losses(taken), len(taken))
        for offset, loss in enumerate(values):
            check_finite(loss, epoch, first + offset)
        del pending[:len(taken)]
        loss_sum += sum(values)
        on_step(epoch, first + len(values) - 1, values[-1])
    prepare = model.prepare_nhwc_batch if layout == "nhwc" else model.prepare_batch
    ready = batches if prepared else (prepare(*arrays) for arrays in batches)
    batch = next(ready, None)
    while batch is not None:
        pending.append(model.train_step_async(batch, lr))
        steps += 1
        batch = next(ready, None)   # made while step k runs (queued behind it on a device)
        if len(pending) > READ_EVERY:
            read(keep_newest=True)
    if pending:
        read(keep_newest=False)
    return loss_sum, steps


def check_finite(loss: float, epoch: int, step: int) -> None:
    if not math.isfinite(loss):
        raise Diverged(f"loss became {loss} at epoch {epoch + 1}, step {step}")


def train(native: NativeModel, data: Dataset, recipe: Recipe, seed: int, sync: Callable[[], None],
          on_epoch: Callable[[dict[str, float]], None] = lambda row: None,
          clock: Callable[[], float] = time.perf_counter, first_epoch: int = 0,
          on_step: Callable[[int, int, float], None] = lambda epoch, step, loss: None,
          shard: tuple[int, int] = (0, 1),
          on_region: Callable[[str, int], None] = lambda state, images: None,
          prefetch: bool = False, done: TrainResult | None = None) -> TrainResult:
    """Trains epochs ``first_epoch`` .. ``recipe.epochs - 1``.

    ``done``: what this cell had finished before it stopped (continued from its checkpoint): its history and
    clocks continue here, so ``train_time_s``, ``eval_time_s``, each row's ``wall_time_s`` and ``time_to_target_s``
    count both parts (not the time between them, nor the unfinished epoch that is trained again).

    ``train_time_s`` covers training steps only, the making of their batches included, and ``eval_time_s`` the
    per-epoch evaluation, each synchronised. Batches are made as the cell's ``InputPath`` says (chosen once, after
    the run's clock starts; ``harness.worker.pipeline``), ahead in a thread when ``prefetch`` (a GPU cell).
    ``time_to_target_s`` follows MLPerf: the clock starts when the data is first touched (the first batch is
    drawn) and stops when the evaluation that reaches ``recipe.target`` ends, so it includes evaluation;
    training stops there.

    ``shard=(rank, world_size)``: data-parallel training; this process gathers and trains on its contiguous
    slice of every global batch (the plugin averages gradients and the loss across processes).

    ``on_region("start" | "end", images)`` marks each epoch's training (for the telemetry sampler's energy).
    """
    result = TrainResult() if done is None else replace(done, history=list(done.history))
    hit = next((h for h in result.history if recipe.target is not None and h["test_accuracy"] >= recipe.target), None)
    if hit is not None:   # the target was reached before the stop
        result.time_to_target_s, result.epochs_to_target = hit["wall_time_s"], int(hit["epoch"])
        return result
    sync()
    run_start = clock() - (result.history[-1]["wall_time_s"] if result.history else 0.0)
    path = input_path(native, data.x_train, data.y_train, recipe.augment)
    for epoch in range(first_epoch, recipe.epochs):
        lr = recipe.lr_at(epoch)
        sync()
        on_region("start", 0)
        start = clock()
        source = path.loop_batches(native, data.y_train, recipe.batch_size, seed, epoch, recipe.augment, shard)
        with path.feeding(source, prefetch) as batches:
            loss_sum, steps = run_epoch(native, batches, lr, epoch, on_step, path.layout, prepared=path.held)
        sync()
        result.train_time_s += clock() - start
        on_region("end", steps * recipe.batch_size)
        result.train_images += steps * recipe.batch_size
        start = clock()
        test_loss, test_acc = test_metrics(native, data, recipe.batch_size)
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
