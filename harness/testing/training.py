"""Training-rule checks: a plugin that fails one trains by another rule than the other frameworks: its step does
not lower the loss or returns the wrong loss, its SGD is not torch's, its batch norm keeps other statistics, its
auxiliary heads or dropout differ, or it computes auxiliary heads at evaluation."""
from __future__ import annotations

import time
from functools import reduce
from typing import Any

import numpy as np

from harness.model.graph import Aux, BatchNorm, Dropout, Flatten, Linear, ModelDef, Seq
from harness.model.shapes import model_summary
from harness.model.verification import TOLERANCE
from harness.model.weights import init_weights
from harness.testing.numerics import relative_error, softmax_ce
from harness.testing.wiring import Kit


def least_cpu_time(call: Any, repeats: int = 7) -> float:
    """The least CPU time (all of this process's threads) of several calls."""
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        call()
        samples.append(time.process_time() - start)
    return min(samples)


def tiny(name: str, shape: tuple[int, int, int], *nodes: Any) -> ModelDef:
    """A small graph built in the test, so the kit can check one rule in isolation."""
    return ModelDef(name, shape, 3, Seq("net", tuple(nodes)))


class TestTraining:
    """The training rules every framework plugin must follow (see docs/plugins.md)."""

    def test_train_step_lowers_loss(self, convbench_kit: Kit) -> None:
        model = convbench_kit.model("lenet5")
        native, rng = convbench_kit.build(model, weight_decay=2e-4), np.random.default_rng(5)
        native.set_weights(init_weights(model, 0))
        images, labels = rng.random((16, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 16)
        before = native.evaluate(images, labels)[0] / len(labels)
        first = native.train_step(images, labels, 0.01)
        assert np.isclose(first, before, rtol=1e-4), "train_step must return the loss before its update"
        second = native.train_step(images, labels, 0.01)
        assert second < first, f"a step did not lower the loss of its batch: {first} -> {second}"

    def test_sgd_matches_torch_rule(self, convbench_kit: Kit) -> None:
        """v = m v + g + wd w; w -= lr v on weights and biases, lr taken per call."""
        model = tiny("kit_softmax", (1, 2, 2), Flatten("flatten"), Linear("fc", 3))
        m, wd = 0.9, 0.01
        native, rng = convbench_kit.build(model, momentum=m, weight_decay=wd), np.random.default_rng(7)
        w = {"fc.weight": rng.standard_normal((3, 4)), "fc.bias": rng.standard_normal(3)}
        native.set_weights({k: v.astype(np.float32) for k, v in w.items()})
        x, y = rng.random((4, 1, 2, 2), dtype=np.float32), np.array([0, 1, 2, 1])
        ref = {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}
        velocity, flat = {k: np.zeros_like(v) for k, v in ref.items()}, x.reshape(4, -1).astype(np.float64)
        for lr in (0.1, 0.05):
            logits = flat @ ref["fc.weight"].T + ref["fc.bias"]
            got, want = native.train_step(x, y, lr), softmax_ce(logits, y).mean()
            assert np.isclose(got, want, rtol=1e-5), f"loss {got} != {want}: the previous SGD update differs"
            p = np.exp(logits - logits.max(1, keepdims=True))
            d = (p / p.sum(1, keepdims=True) - np.eye(3)[y]) / len(y)  # d loss / d logits
            for k, g in (("fc.weight", d.T @ flat), ("fc.bias", d.sum(0))):
                velocity[k] = m * velocity[k] + g + wd * ref[k]
                ref[k] = ref[k] - lr * velocity[k]
        for k, v in native.get_weights().items():
            np.testing.assert_allclose(v, ref[k], rtol=1e-5, atol=1e-6, err_msg=f"{k} after two SGD steps")

    def test_batch_norm_conventions(self, convbench_kit: Kit) -> None:
        """Node eps and momentum; biased variance normalises, unbiased variance updates running_var."""
        model = tiny("kit_bn", (2, 3, 3), BatchNorm("bn", eps=1e-2, momentum=0.3), Flatten("flatten"), Linear("fc", 3))
        native, rng = convbench_kit.build(model), np.random.default_rng(11)
        w = {"bn.weight": rng.uniform(0.5, 1.5, 2), "bn.bias": rng.standard_normal(2), "bn.running_mean":
             rng.standard_normal(2), "bn.running_var": rng.uniform(0.5, 2, 2), "fc.weight":
             rng.standard_normal((3, 18)), "fc.bias": rng.standard_normal(3)}
        w = {k: v.astype(np.float32) for k, v in w.items()}
        native.set_weights(w)
        x, y = rng.standard_normal((4, 2, 3, 3)).astype(np.float32) * 2 + 1, np.array([0, 1, 2, 0])

        def head(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
            z = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-2) * w["bn.weight"][:, None, None]
            return (z + w["bn.bias"][:, None, None]).reshape(4, -1) @ w["fc.weight"].T + w["fc.bias"]
        expected = head(w["bn.running_mean"], w["bn.running_var"])
        assert relative_error(native.forward(x), expected) <= TOLERANCE, "eval mode must use running stats + eps"
        mean, var, loss = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)), native.train_step(x, y, 0.0)
        assert np.isclose(loss, softmax_ce(head(mean, var), y).mean(), rtol=1e-4), "train mode: biased batch variance"
        got = native.get_weights()
        np.testing.assert_allclose(got["bn.running_mean"], 0.7 * w["bn.running_mean"] + 0.3 * mean, rtol=1e-5)
        np.testing.assert_allclose(got["bn.running_var"], 0.7 * w["bn.running_var"] + 0.3 * var * 36 / 35, rtol=1e-5,
                                   err_msg="running_var: (1 - momentum) old + momentum x unbiased batch variance")

    def test_auxiliary_head_and_dropout(self, convbench_kit: Kit) -> None:
        """Aux loss x weight joins the training loss only; dropout is train-only and resampled per step."""
        head = Seq("head", (Linear("fc", 3),))
        model = tiny("kit_aux", (4, 4, 4), Flatten("flatten"), Aux("aux", head, 0.3), Linear("fc", 3))
        native, rng = convbench_kit.build(model), np.random.default_rng(13)
        w = {k: rng.standard_normal(s).astype(np.float32) for k, s in model_summary(model).param_shapes.items()}
        native.set_weights(w)
        x, y = rng.random((4, 4, 4, 4), dtype=np.float32), np.array([0, 1, 2, 0])
        flat = x.reshape(4, -1)
        main, aux = flat @ w["fc.weight"].T + w["fc.bias"], flat @ w["aux.head.fc.weight"].T + w["aux.head.fc.bias"]
        assert relative_error(native.forward(x), main) <= TOLERANCE, "eval logits are the main head's"
        expected = softmax_ce(main, y).mean() + 0.3 * softmax_ce(aux, y).mean()
        assert np.isclose(native.train_step(x, y, 0.0), expected, rtol=1e-4), "loss = main CE + 0.3 x aux CE"
        native = convbench_kit.build(tiny("kit_drop", (4, 4, 4), Flatten("f"), Dropout("drop", 0.5), Linear("fc", 3)))
        native.set_weights({"fc.weight": w["fc.weight"], "fc.bias": w["fc.bias"]})
        assert relative_error(native.forward(x), main) <= TOLERANCE, "dropout must be the identity at eval"
        losses = {round(native.train_step(x, y, 0.0), 6) for _ in range(3)}
        assert len(losses) > 1, "dropout masks must change from step to step"

    def test_auxiliary_heads_are_skipped_at_evaluation(self, convbench_kit: Kit) -> None:
        """forward/evaluate must not compute auxiliary heads (and drop the result): a forward time would then
        count work other frameworks skip. A costly head (dense layers 2048 -> 4096 -> 4096 -> 4096, ~5 GFLOP per
        batch) must cost next to nothing at evaluation: the forward with the head may cost more than the one without
        by less than a third of what numpy's matrix products of the head's sizes cost (a yardstick the plugin cannot
        bend). All on CPU time, the least of several calls, so a busy machine cannot fake or hide it. The yardstick
        is this big because a thread pool waiting on a busy machine adds up to ~16 ms of CPU time to even a tiny
        model's call here: against a fixed 3 ms bound, a plugin computing a 1-GFLOP head passed about one time in
        six."""
        head = (Flatten("flatten"), Linear("wide1", 4096), Linear("wide2", 4096), Linear("wide3", 4096), Linear("fc", 3))
        shape = (8, 16, 16)
        models = [tiny("kit_aux_cost", shape, Aux("aux", Seq("head", head), 0.3), Flatten("flatten"), Linear("fc", 3)),
                  tiny("kit_no_aux", shape, Flatten("flatten"), Linear("fc", 3))]
        rng = np.random.default_rng(19)
        x = rng.random((64, *shape), dtype=np.float32)
        costs = []
        for model in models:
            native = convbench_kit.build(model)
            native.set_weights(init_weights(model, 0))
            native.forward(x)  # tracing / compilation
            costs.append(least_cpu_time(lambda: native.forward(x)))
        with_aux, without = costs
        sizes = (int(np.prod(shape)), 4096, 4096, 4096, 3)
        weights = [rng.random((m, n), dtype=np.float32) for m, n in zip(sizes, sizes[1:])]
        alone = least_cpu_time(lambda: reduce(np.matmul, weights, x.reshape(len(x), -1)))
        assert with_aux - without < alone / 3, (f"forward with an auxiliary head costs {1e3 * with_aux:.1f} ms of CPU, "
                                                f"without {1e3 * without:.1f} ms; numpy's products of the head's sizes "
                                                f"{1e3 * alone:.1f} ms: the head runs at evaluation")

