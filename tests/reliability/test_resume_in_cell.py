"""A train cell that stopped after epoch k continues from its epoch-k checkpoint on --resume and ends where an
uninterrupted run ends: same losses and accuracies, every epoch in its history, both parts' time counted.
(The orchestrator's path, a stalled or SIGHUP-interrupted cell continued by ``convbench run --resume``, is in
test_stall.py.)"""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import needs

from harness.datasets import load_dataset
from harness.model.graph import Dropout, Flatten, Linear, ModelDef, Seq
from harness.model.weights import init_weights, save_weights
from harness.orchestrator.retries import continuation
from harness.settings import Cell, RunSettings
from harness.worker.train_cell import resume, run_train_cell
from harness.worker.training import Recipe, TrainResult, train


class LearnsAtLowLr:
    """A stand-in model: every test image right once the learning rate has decayed, none before."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def train_step(self, images, labels, lr):
        self.lrs.append(lr)
        return 1.0

    def evaluate(self, images, labels):
        return float(len(labels)), len(labels) if self.lrs and self.lrs[-1] < 0.05 else 0


def ticking(start: int):
    ticks = iter(range(start, start + 1000))
    return lambda: float(next(ticks))


def test_continued_training_carries_history_clocks_and_time_to_target():
    """Epochs 2-3 after a stop, on a clock 1000 ticks later, give the history of one uninterrupted run; a target
    already reached before the stop trains nothing more."""
    data = load_dataset("synthetic", shape=(1, 2, 2), num_classes=2, seed=0, synthetic_size=(8, 4))
    recipe = Recipe(epochs=3, batch_size=4, milestones=(2,), target=0.9)
    straight = train(LearnsAtLowLr(), data, recipe, 0, lambda: None, clock=ticking(0))
    assert straight.epochs_to_target == 3 and straight.time_to_target_s == straight.history[-1]["wall_time_s"]
    done = TrainResult.carried(straight.history[:1], images_per_epoch=8)
    continued = train(LearnsAtLowLr(), data, recipe, 0, lambda: None, clock=ticking(1000), first_epoch=1, done=done)
    assert continued.history == straight.history and continued.train_images == straight.train_images
    assert (continued.train_time_s, continued.eval_time_s) == (straight.train_time_s, straight.eval_time_s)
    assert (continued.time_to_target_s, continued.epochs_to_target) == (straight.time_to_target_s, 3)
    idle = LearnsAtLowLr()
    again = train(idle, data, recipe, 0, lambda: None, first_epoch=3,
                  done=TrainResult.carried(straight.history, images_per_epoch=8))
    assert idle.lrs == [] and again.time_to_target_s == straight.time_to_target_s and again.epochs_to_target == 3


class KeepsCheckpoint(io.StringIO):
    """The progress stream of a worker, which keeps a copy of the cell's checkpoint as it was after epoch ``k``
    (the checkpoint is written before the epoch's event): what a worker that died right then leaves behind."""

    def __init__(self, k: int, checkpoint: str, copy: Path) -> None:
        super().__init__()
        self.k, self.checkpoint, self.copy = k, checkpoint, copy

    def write(self, text: str) -> int:
        if text.strip() and json.loads(text).get("event") == "epoch" and json.loads(text)["epoch"] == self.k:
            shutil.copy(self.checkpoint, self.copy)
        return super().write(text)


@pytest.mark.parametrize("framework", [pytest.param("torch", marks=needs("torch")),
                                       pytest.param("jax", marks=needs("jax"))])
def test_a_cell_continued_from_its_checkpoint_equals_an_uninterrupted_one(framework, tmp_path):
    """lenet5 (no dropout) on digits with augmentation, momentum and an lr decay after epoch 1: continued from
    its epoch-1 checkpoint in a new model, epoch 2 trains on the same batches with the same weights, momentum and
    lr as in one go."""
    run = RunSettings(epochs=2, batch_size=128, lr=0.05, milestones=(1,), augment=True, threads=1)

    def cell(folder: str) -> Cell:
        (tmp_path / folder).mkdir()
        return Cell(run_id="r1", name=f"{framework}-lenet5-cpu", framework=framework, model="lenet5", run=run,
                    checkpoint=str(tmp_path / folder / "checkpoint.npz"))
    straight_cell, stopped = cell("straight"), cell("stopped")
    assert straight_cell.checkpoint and stopped.checkpoint
    straight = run_train_cell(straight_cell, KeepsCheckpoint(1, straight_cell.checkpoint, Path(stopped.checkpoint)))
    attempt, why = continuation(stopped)
    assert why == "continuing after epoch 1 from its checkpoint" and attempt.run.resume_from == stopped.checkpoint
    continued = run_train_cell(attempt, io.StringIO())
    assert [h["epoch"] for h in continued["history"]] == [1, 2] and continued["history"][1]["lr"] == pytest.approx(0.005)
    for key in ("train_loss", "test_loss", "test_accuracy"):
        assert [h[key] for h in continued["history"]] == pytest.approx([h[key] for h in straight["history"]],
                                                                       rel=1e-5), key
    row, first = continued["rows"][0], continued["history"][0]
    assert row["status"] == "ok" and row["epochs_run"] == 2 and row["test_accuracy"] == continued["history"][1]["test_accuracy"]
    assert row["note"].startswith("continued after epoch 1 from this cell's checkpoint with its momentum buffers")
    assert row["train_time_s"] == continued["history"][1]["train_time_s"] > first["train_time_s"] > 0
    assert row["eval_time_s"] == continued["history"][1]["eval_time_s"] > first["eval_time_s"]


def test_only_the_cells_own_readable_checkpoint_is_continued(tmp_path):
    """A torn checkpoint, or another attempt's (batch halved by --oom-retry), restarts the cell with a note saying so."""
    cell = Cell(run_id="r1", name="torch-lenet5-cpu", framework="torch", model="lenet5",
                run=RunSettings(epochs=3, batch_size=64), checkpoint=str(tmp_path / "checkpoint.npz"))
    assert continuation(cell) == (cell, None)   # nothing to continue
    (tmp_path / "checkpoint.npz").write_bytes(b"PK\x03\x04 torn")
    same, why = continuation(cell)
    assert same is cell and why is not None and why.startswith(f"its checkpoint {cell.checkpoint!r} is unreadable (")
    assert why.endswith("): training restarts at epoch 1")
    history = json.dumps([{"epoch": 1, "train_time_s": 1.0, "eval_time_s": 0.1, "wall_time_s": 1.2}])
    save_weights(tmp_path / "checkpoint.npz", {}, epoch="1", run_id="r1", cell=cell.name, batch_size="128",
                 history=history)
    same, why = continuation(cell)
    assert same is cell and why == (f"its checkpoint {cell.checkpoint!r} is not this cell's at batch 64 (it has "
                                    "'torch-lenet5-cpu' at batch 128): training restarts at epoch 1")
    save_weights(tmp_path / "checkpoint.npz", {}, epoch="1", run_id="r1", cell=cell.name, batch_size="64",
                 history=history)
    assert continuation(cell)[0].run.resume_from == cell.checkpoint


class Holds:
    def set_weights(self, weights) -> None:
        self.weights = weights


def test_a_model_with_dropout_says_its_masks_differ_after_a_restart(tmp_path):
    """The frameworks' dropout RNG state is not in the checkpoint: the row's note says what that changes."""
    model = ModelDef("drop", (1, 2, 2), 2, Seq("net", (Flatten("flatten"), Dropout("drop", 0.5), Linear("fc", 2))))
    save_weights(tmp_path / "c.npz", init_weights(model, 0), epoch="2")
    native = Holds()
    start = resume(native, model, str(tmp_path / "c.npz"))
    assert start.epoch == 2 and start.history == [] and set(native.weights) == {"fc.weight", "fc.bias"}
    assert start.note == ("resumed after epoch 2 (the checkpoint has no momentum buffers: they restart at zero); the "
                          "framework's dropout RNG is not in the checkpoint: later epochs draw other dropout masks "
                          "than an uninterrupted run")
