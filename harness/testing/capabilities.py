"""Checks of the optional capabilities: each is skipped, with the reason, where a plugin's model lacks it; a plugin
that fails one has it but breaks it: momentum buffers that do not continue a run, pipelined, NHWC or held batches
that train otherwise than handed-over ones, or an execution setting that runs wrong instead of being refused."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.datasets.batches import PAD, Crops
from harness.errors import ConvbenchError
from harness.model.verification import TOLERANCE, verification_weights
from harness.model.weights import init_weights, trainable_shapes
from harness.testing.numerics import relative_error
from harness.testing.wiring import Kit

SETTINGS = [("compile", "none"), ("layout", "nchw"), ("layout", "nhwc"), ("precision", "bf16"), ("precision", "fp16")]
HALF_TOLERANCE = 5e-2  # bf16/fp16 logits


def twin_lenets(kit: Kit, methods: tuple[str, ...], n_batches: int, missing: str) -> tuple[Any, Any, list[Any]]:
    """Two LeNet-5s with the same weights and ``n_batches`` random batches of 16; skips with ``missing`` when
    the plugin's model lacks one of the optional ``methods``."""
    model = kit.model("lenet5")
    first = kit.build(model, momentum=0.9, weight_decay=2e-4)
    if not all(callable(getattr(first, m, None)) for m in methods):
        pytest.skip(f"{kit.framework} {missing}")
    second = kit.build(model, momentum=0.9, weight_decay=2e-4)
    rng = np.random.default_rng(23)
    batches = [(rng.random((16, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 16)) for _ in range(n_batches)]
    for native in (first, second):
        native.set_weights(init_weights(model, 0))
    return first, second, batches


class TestCapabilities:
    """The optional capabilities of a framework plugin (see docs/plugins.md), checked where the plugin has them."""

    def test_momentum_buffers(self, convbench_kit: Kit) -> None:
        """Optional ResumableModel: after one step the buffers are (w0 - w1) / lr in the portable layout, and
        loading weights and buffers into a fresh model continues the run exactly (what --resume-from needs)."""
        model = convbench_kit.model("lenet5")
        first = convbench_kit.build(model, momentum=0.9, weight_decay=2e-4)
        if not (hasattr(first, "get_momentum") and hasattr(first, "set_momentum")):
            pytest.skip(f"{convbench_kit.framework} has no get_momentum/set_momentum: resumed runs restart momentum at zero")
        rng, lr = np.random.default_rng(11), 0.5
        first.set_weights(init_weights(model, 0))
        start = first.get_momentum()
        assert {k: v.shape for k, v in start.items()} == trainable_shapes(model), "one buffer per trainable parameter"
        assert not any(v.any() for v in start.values()), "momentum buffers must start at zero"
        batches = [(rng.random((16, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 16)) for _ in range(2)]
        before = first.get_weights()
        first.train_step(*batches[0], lr)
        after, momentum = first.get_weights(), first.get_momentum()
        for key, value in momentum.items():
            want = (before[key].astype(np.float64) - after[key]) / lr
            np.testing.assert_allclose(value, want, rtol=0, atol=1e-3 * np.abs(want).max() + 1e-6,
                                       err_msg=f"momentum of {key} after one step (layout?)")
        second = convbench_kit.build(model, momentum=0.9, weight_decay=2e-4)
        second.set_weights(after)
        second.set_momentum(momentum)
        assert np.isclose(second.train_step(*batches[1], lr), first.train_step(*batches[1], lr), rtol=1e-6)
        continued = second.get_weights()
        for key, value in first.get_weights().items():
            np.testing.assert_allclose(continued[key], value, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{key}: a model given the weights and momentum did not continue the run")

    def test_pipelined_steps_equal_train_step(self, convbench_kit: Kit) -> None:
        """Optional PipelinedModel: prepare_batch + train_step_async + read_losses train exactly as train_step
        does (same losses, same weights), whatever the order in which losses are read."""
        first, second, batches = twin_lenets(
            convbench_kit, ("prepare_batch", "train_step_async", "read_losses"), 3,
            "has no train_step_async/read_losses: train mode waits for every step")
        expected = [first.train_step(x, y, lr) for (x, y), lr in zip(batches, (0.1, 0.1, 0.05))]
        queued = [second.train_step_async(second.prepare_batch(x, y), lr) for (x, y), lr in zip(batches, (0.1, 0.1, 0.05))]
        got = second.read_losses(queued[:2]) + second.read_losses(queued[2:])
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg="losses of the pipelined steps")
        for key, value in first.get_weights().items():
            np.testing.assert_allclose(second.get_weights()[key], value, rtol=1e-6, atol=1e-7, err_msg=key)

    def test_nhwc_batches_equal_nchw_batches(self, convbench_kit: Kit) -> None:
        """Optional prepare_nhwc_batch: a channels-last batch trains exactly as the same batch through
        prepare_batch (same losses, same weights)."""
        first, second, batches = twin_lenets(
            convbench_kit, ("prepare_batch", "train_step_async", "read_losses", "prepare_nhwc_batch"), 2,
            "takes NCHW batches only (no prepare_nhwc_batch)")
        expected = first.read_losses([first.train_step_async(first.prepare_batch(x, y), 0.1) for x, y in batches])
        got = second.read_losses([second.train_step_async(
            second.prepare_nhwc_batch(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), y), 0.1) for x, y in batches])
        np.testing.assert_array_equal(got, expected, err_msg="losses of NHWC and NCHW batches")
        for key, value in first.get_weights().items():
            np.testing.assert_array_equal(second.get_weights()[key], value, err_msg=key)

    def test_held_batches_equal_host_batches(self, convbench_kit: Kit) -> None:
        """Optional hold_train_set + gather_batch: batches the model gathers (and crops and flips) from the
        training set it holds train exactly as the same pixels gathered and augmented in numpy and handed over
        (same losses, same weights), with crops and without. A model may hold only unaugmented sets on this
        device (it declines the padded one when its own crop is the slower there): then without crops only."""
        first, second, _ = twin_lenets(
            convbench_kit, ("prepare_batch", "train_step_async", "read_losses", "hold_train_set", "gather_batch"),
            0, "does not hold the training set (batches are handed over from the host)")
        rng = np.random.default_rng(29)
        x, y = rng.random((48, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 48)
        nhwc = callable(getattr(first, "prepare_nhwc_batch", None))
        held = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if nhwc else x
        plan = [(rng.permutation(48)[:16], Crops.draw(rng, 16)), (rng.permutation(48)[:16], None),
                (rng.permutation(48)[:16], Crops.draw(rng, 16))]
        if not second.hold_train_set(held, y, PAD):
            if not second.hold_train_set(held, y, 0):
                pytest.skip(f"{convbench_kit.framework} declined to hold the training set")
            plan = [(idx, None) for idx, _ in plan]
        host = []
        for idx, crops in plan:
            images = x[idx] if crops is None else crops.apply(x[idx])
            batch = (first.prepare_nhwc_batch(np.ascontiguousarray(images.transpose(0, 2, 3, 1)), y[idx]) if nhwc
                     else first.prepare_batch(images, y[idx]))
            host.append(first.train_step_async(batch, 0.1))
        expected = first.read_losses(host)
        got = second.read_losses([second.train_step_async(second.gather_batch(idx, crops), 0.1) for idx, crops in plan])
        np.testing.assert_array_equal(got, expected, err_msg="losses of held and handed-over batches")
        for key, value in first.get_weights().items():
            np.testing.assert_array_equal(second.get_weights()[key], value, err_msg=key)

    @pytest.mark.parametrize("key, value", SETTINGS, ids=[f"{k}={v}" for k, v in SETTINGS])
    def test_execution_setting(self, convbench_kit: Kit, key: str, value: str) -> None:
        """A setting works (logits as in fp32, a finite step) or is refused with a one-line ConvbenchError."""
        model = convbench_kit.model("lenet5")
        try:
            native = convbench_kit.build(model, **{key: value})
        except ConvbenchError as exc:
            assert "\n" not in str(exc), "user errors are one line"
            pytest.skip(f"{convbench_kit.framework} refuses {key}={value}: {exc}")
        plain, weights = convbench_kit.build(model), verification_weights(model, 2)
        native.set_weights(weights)
        plain.set_weights(weights)
        x = np.random.default_rng(17).random((4, 3, 32, 32), dtype=np.float32)
        limit = HALF_TOLERANCE if value in ("bf16", "fp16") else TOLERANCE
        assert relative_error(native.forward(x), plain.forward(x)) <= limit
        assert np.isfinite(native.train_step(x, np.arange(4), 1e-3))
        info = getattr(native, "execution_info", dict)()
        if key in ("precision", "layout") and key in info:
            assert info[key] == value, f"execution_info reports {key}={info[key]!r}, asked for {value!r}"
