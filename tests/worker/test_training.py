"""The shared training loop: schedule, clock, divergence, and real learning on digits."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import needs

from harness.datasets import load_dataset
from harness.model.weights import init_weights
from harness.worker.training import Diverged, Recipe, collapsed, train


def test_step_decay_at_half_the_epochs_by_default():
    r = Recipe(epochs=200)
    assert [r.lr_at(e) for e in (0, 99, 100, 199)] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    assert Recipe(epochs=1).lr_at(0) == 0.1
    assert Recipe(epochs=9, milestones=(3, 6)).lr_at(6) == pytest.approx(0.001)


class Scripted:
    """A stand-in model whose losses are scripted; records what the loop asks of it."""

    def __init__(self, losses):
        self.losses = iter(losses)
        self.steps: list[float] = []

    def train_step(self, images, labels, lr):
        self.steps.append(lr)
        return next(self.losses)

    def evaluate(self, images, labels):
        return float(len(labels)), int((labels == 0).sum())


def small_data():
    d = load_dataset("synthetic", shape=(1, 2, 2), num_classes=2, seed=0, synthetic_size=(10, 6))
    d.y_test[:] = [0, 0, 0, 1, 1, 1]
    return d


def test_loop_times_training_apart_from_evaluation():
    ticks = iter(range(100))
    syncs = []
    result = train(Scripted([1.0] * 10), small_data(), Recipe(epochs=2, batch_size=4), 0,
                   lambda: syncs.append(1), clock=lambda: float(next(ticks)))
    assert [h["test_accuracy"] for h in result.history] == [0.5, 0.5]
    assert result.train_images == 2 * 2 * 4  # 10 samples, batch 4: last partial batch dropped
    assert result.train_time_s == 2.0 and result.eval_time_s == 2.0  # one tick per timed region
    assert len(syncs) == 7  # once at the start; before and after training and after evaluation, per epoch


def test_nan_loss_raises_diverged():
    with pytest.raises(Diverged, match="loss became nan at epoch 1, step 2"):
        train(Scripted([1.0, math.nan]), small_data(), Recipe(epochs=1, batch_size=4), 0, lambda: None)


@needs("torch")
def test_lenet5_learns_digits_in_one_epoch(registries):
    from convbench_torch import plugin
    model = registries.models.get("lenet5")
    native = plugin.native(model, "cpu", {"seed": 0, "threads": 2, "momentum": 0.9, "weight_decay": 2e-4})
    native.set_weights(init_weights(model, 0))
    result = train(native, load_dataset("digits"), Recipe(epochs=1, batch_size=32, lr=0.05), 0, lambda: None)
    assert result.test_accuracy > 0.5, result.history  # chance is 0.1
    assert np.isfinite(result.history[0]["train_loss"])


def test_target_stops_training_and_times_from_first_touch():
    ticks = iter(range(100))
    data = small_data()
    result = train(Scripted([1.0] * 20), data, Recipe(epochs=5, batch_size=4, target=0.5), 0, lambda: None,
                   clock=lambda: float(next(ticks)))
    assert result.epochs_to_target == 1 and len(result.history) == 1
    assert result.time_to_target_s == 4.0   # clock 0 (start) .. 4 (end of the first evaluation)
    assert train(Scripted([1.0] * 20), data, Recipe(epochs=2, batch_size=4, target=0.9), 0,
                 lambda: None).time_to_target_s is None


def test_resume_starts_at_the_given_epoch_with_its_learning_rate():
    model = Scripted([1.0] * 20)
    result = train(model, small_data(), Recipe(epochs=4, batch_size=4), 0, lambda: None, first_epoch=2)
    assert [h["epoch"] for h in result.history] == [3, 4] and model.steps == [pytest.approx(0.01)] * 4


class ScriptedPipeline(Scripted):
    """A PipelinedModel stand-in: records the order of prepare / queue / read calls."""

    def __init__(self, losses):
        super().__init__(losses)
        self.calls: list[str] = []

    def prepare_batch(self, images, labels):
        self.calls.append("prepare")
        return images, labels

    def train_step_async(self, batch, lr):
        self.calls.append("step")
        return self.train_step(*batch, lr)

    def read_losses(self, losses):
        self.calls.append(f"read{len(losses)}")
        return list(losses)


def test_pipelined_steps_queue_ahead_and_read_losses_in_bulk():
    data = load_dataset("synthetic", shape=(1, 2, 2), num_classes=2, seed=0, synthetic_size=(48, 6))
    model = ScriptedPipeline([float(i) for i in range(12)])
    seen = []
    result = train(model, data, Recipe(epochs=1, batch_size=4), 0, lambda: None,
                   on_step=lambda epoch, step, loss: seen.append((step, loss)))
    # batch k+1 is prepared before anything waits on step k; reads lag one step behind the newest
    assert model.calls[:4] == ["prepare", "step", "prepare", "step"]
    assert model.calls.count("step") == 12 and model.calls.count("prepare") == 12
    assert [c for c in model.calls if c.startswith("read")] == ["read8", "read4"]
    assert seen == [(8, 7.0), (12, 11.0)] and result.history[0]["train_loss"] == sum(range(12)) / 12


def test_pipelined_divergence_names_the_step_that_diverged():
    data = load_dataset("synthetic", shape=(1, 2, 2), num_classes=2, seed=0, synthetic_size=(48, 6))
    losses = [1.0] * 12
    losses[4] = math.inf
    with pytest.raises(Diverged, match="loss became inf at epoch 1, step 5$"):
        train(ScriptedPipeline(losses), data, Recipe(epochs=1, batch_size=4), 0, lambda: None)


def test_a_failing_batch_source_is_raised_in_the_loop():
    from harness.worker.pipeline import Prefetcher

    def source():
        yield 1
        raise ValueError("bad batch")
    with Prefetcher(source()) as batches:
        assert next(batches) == 1
        with pytest.raises(ValueError, match="bad batch"):
            next(batches)
    with Prefetcher(iter(range(100)), depth=2) as early:   # stopping early ends the thread
        assert next(early) == 0
    assert not early._thread.is_alive()


class HoldingPipeline(ScriptedPipeline):
    """A PipelinedModel that holds the training set: gathers (and crops) its batches from indices itself."""

    def __init__(self, losses, accept=True):
        super().__init__(losses)
        self.accept = accept
        self.held = None
        self.batches: list[np.ndarray] = []

    def hold_train_set(self, images, labels, pad):
        self.calls.append(f"hold{pad}")
        self.held = (images.copy(), labels.copy())
        return self.accept

    def gather_batch(self, index, crops):
        self.calls.append("gather")
        images, labels = self.held
        x = images[index] if crops is None else crops.apply(images[index])
        self.batches.append(x)
        return x, labels[index]

    def train_step_async(self, batch, lr):
        if "gather" not in self.calls:
            self.batches.append(batch[0])
        return super().train_step_async(batch, lr)


@pytest.mark.parametrize("augment", [False, True])
def test_a_model_holding_the_training_set_gets_the_same_pixels_from_indices(augment):
    """hold_train_set once per run (padded when augmenting), then gather_batch per step: the batches it makes
    are the ones the loop would have handed over, bit for bit (same order, crops and flips)."""
    data = load_dataset("synthetic", shape=(3, 8, 8), num_classes=2, seed=0, synthetic_size=(48, 6))
    holding, host = HoldingPipeline([1.0] * 24), HoldingPipeline([1.0] * 24, accept=False)
    for model in (holding, host):
        train(model, data, Recipe(epochs=2, batch_size=4, augment=augment), 3, lambda: None)
    assert holding.calls.count("hold4" if augment else "hold0") == 1 and holding.calls.count("gather") == 24
    assert "prepare" not in holding.calls
    assert "gather" not in host.calls and host.calls.count("prepare") == 24   # declined: handed over as before
    assert len(holding.batches) == len(host.batches) == 24
    for mine, theirs in zip(holding.batches, host.batches):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("prefetch", [False, True])
def test_batches_are_made_in_a_thread_only_when_asked(prefetch):
    """GPU cells prefetch in a background thread (the host works while the device computes); CPU cells make
    batches inline, since the framework's threads already use every core."""
    import threading
    data = load_dataset("synthetic", shape=(1, 2, 2), num_classes=2, seed=0, synthetic_size=(48, 6))
    threads = []
    model = ScriptedPipeline([1.0] * 12)
    step = model.train_step_async
    model.train_step_async = lambda batch, lr: (threads.append({t.name for t in threading.enumerate()}),
                                                step(batch, lr))[1]
    train(model, data, Recipe(epochs=1, batch_size=4), 0, lambda: None, prefetch=prefetch)
    assert len(threads) == 12
    # the thread may end before the last steps (it has put every batch); during the first it cannot have:
    # 12 batches do not fit a queue of 2
    assert ("convbench-prefetch" in threads[0]) == prefetch
    assert prefetch or not any("convbench-prefetch" in names for names in threads)


def epochs(*accs: float, loss: float = 2.3026) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "test_accuracy": a, "train_loss": loss} for i, a in enumerate(accs)]


@pytest.mark.parametrize("accs, since", [
    ((0.197, 0.264, 0.100, 0.103, 0.100, 0.100), 3),   # torch simple_cnn on an H200, seed 0 (docs/gpu.md)
    ((0.450, 0.792, 0.100, 0.100), 3),                 # seed 3
    ((0.9, 0.5, 0.11, 0.30, 0.10), 5),                 # a brief recovery does not end the collapse
])
def test_a_training_back_at_chance_after_learning_collapsed(accs, since):
    why = collapsed(epochs(*accs), 10)
    assert why is not None and f"from epoch {since} on" in why and "chance 10%" in why and "ln 10 = 2.3026" in why


@pytest.mark.parametrize("accs", [
    (0.1, 0.11, 0.1),            # never learned (random labels): not a collapse
    (0.186, 0.100, 0.519, 0.93),  # torch simple_cnn on this CPU, seed 0: near chance at epoch 2, recovered
    (0.5,),                       # one epoch
    (0.3, 0.125),                 # 1.25 x chance is the line: at it, not a collapse; below it, one
])
def test_what_is_not_a_collapse(accs):
    assert collapsed(epochs(*accs), 10) is None
    assert collapsed(epochs(*accs[:-1], 0.124), 10) is not None or max(accs[:-1], default=0) < 0.2


def test_nan_accuracies_are_skipped_and_chance_follows_the_classes():
    assert collapsed(epochs(0.9, math.nan, 0.02), 100) is None         # 2 % of 100 classes: not back at chance
    assert collapsed(epochs(0.9, math.nan, 0.011), 100) is not None
