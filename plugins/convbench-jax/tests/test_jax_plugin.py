"""JAX-specific checks the conformance kit does not make (it runs as well: see conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConvbenchError
from harness.model.graph import BatchNorm, Conv, Dropout, Flatten, Linear, ModelDef, ReLU, Seq
from harness.model.layers import layer_spec
from harness.model.weights import init_weights
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.testing.numerics import relative_error

PM = get_plugin_manager()
LENET = build_registries(PM).models.get("lenet5")
SETTINGS = {"momentum": 0.9, "weight_decay": 2e-4, "seed": 0, "threads": 2}


def build(model: ModelDef = LENET, **extra):
    native = PM.hook.convbench_build_model(framework="jax", model=model, device="cpu", settings={**SETTINGS, **extra})
    native.set_weights(init_weights(model, 0))
    return native


def batch(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("mode, resolved", [("auto", "jax.jit"), ("default", "jax.jit"), ("xla", "jax.jit"),
                                            ("none", "eager")])
def test_compile_modes_resolve(mode: str, resolved: str):
    info = PM.hook.convbench_build_model(framework="jax", model=LENET, device="cpu",
                                         settings={**SETTINGS, "compile": mode}).execution_info()
    assert info["compile"] == resolved and info["layout"] == "nhwc" and info["precision"] == "fp32"


def test_fp16_needs_a_gpu():
    with pytest.raises(ConvbenchError, match="needs a GPU"):
        build(precision="fp16")


def test_new_learning_rate_does_not_retrace():
    native = build()
    x, y = batch()
    for lr in (0.1, 0.05, 0.01):
        native.train_step(x, y, lr)
    assert native._train._cache_size() == 1


def test_weights_are_copies_that_steps_leave_alone():
    weights = init_weights(LENET, 0)
    native = build()
    native.set_weights(weights)
    before = native.get_weights()
    native.train_step(*batch(), 0.1)
    for key, value in init_weights(LENET, 0).items():
        np.testing.assert_array_equal(weights[key], value)
        np.testing.assert_array_equal(before[key], value)
        assert before[key].flags.writeable


def test_layouts_train_identically():
    x, y = batch()
    after = []
    for layout in ("nhwc", "nchw"):
        native = build(layout=layout)
        native.train_step(x, y, 0.05)
        after.append(native.get_weights())
    for key, value in after[0].items():
        np.testing.assert_allclose(value, after[1][key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_dropout_masks_follow_the_seed():
    model = ModelDef("drop", (3, 32, 32), 10, Seq("net", (Flatten("f"), Dropout("d", 0.5), Linear("fc", 10))))
    x, y = batch()
    natives = [build(model, seed=s) for s in (0, 0, 1)]
    runs = [[native.train_step(x, y, 0.0) for _ in range(2)] for native in natives]
    assert runs[0] == runs[1] and runs[0] != runs[2] and runs[0][0] != runs[0][1]


def test_synchronize_waits_for_dispatched_phases():
    from convbench_jax import device
    native = build()
    prepared = native.prepare_batch(*batch())
    for phase in ("forward", "forward_backward", "train_step"):
        native.run_phase(phase, prepared, 1e-3)
    assert device._PENDING
    assert PM.hook.convbench_synchronize(framework="jax", device="cpu") is True
    assert not device._PENDING
    with pytest.raises(ValueError, match="unknown phase"):
        native.run_phase("backward", prepared, 1e-3)


def test_cpu_peak_memory_is_left_to_the_builtin_plugin():
    import convbench_jax
    assert convbench_jax.plugin.convbench_peak_memory_mb(framework="jax", device="cpu", reset=False) is None
    assert PM.hook.convbench_peak_memory_mb(framework="jax", device="cpu", reset=False) > 0


def test_no_drain_inside_a_timed_window(monkeypatch):
    """A pipelined window queues --steps (100) steps between two synchronisations; the pending list drained every
    32 (three waits inside the window) where no other framework waits at all. Chained steps keep only their latest
    output (it is ready only when all before it are), independent forwards all of theirs, far above a window."""
    from convbench_jax import device
    native = build()
    prepared = native.prepare_batch(*batch())
    real, drains = device.synchronize, []
    real()
    monkeypatch.setattr(device, "synchronize", lambda: drains.append(1) or real())
    for phase in ("train_step", "forward_backward", "forward"):
        for _ in range(100):
            native.run_phase(phase, prepared, 1e-3)
        assert not drains, phase
        real()   # the window's end


# layer cells (convbench explain): what the kit's checks (chaining, a Linear cell's SGD rule) leave to the plugin
BLOCKY = ModelDef("blocky", (3, 32, 32), 3, Seq("net", (
    Seq("block", (Conv("conv", 4, 3, padding=1), BatchNorm("bn"), ReLU("relu"))),
    Flatten("flatten"), Dropout("drop", 0.5), Linear("fc", 3))))


def layer_cell(path: str, **extra):
    spec = layer_spec(BLOCKY, path)
    layer = PM.hook.convbench_build_layer(framework="jax", model=BLOCKY, layer=spec, device="cpu",
                                          settings={**SETTINGS, **extra})
    layer.set_weights(spec.weights(init_weights(BLOCKY, 0)))
    return spec, layer


def test_block_cell_threads_statistics_as_the_network():
    """The first block's train_step (lr 0) moves the running statistics as the network's step does on the same
    images; forward_backward leaves them, as the network's does. NCHW and bf16 cells take the same NCHW arrays."""
    x, y = batch(4)
    native = build(BLOCKY)
    native.train_step(x, y, 0.0)
    expected = native.get_weights()
    spec, layer = layer_cell("block")
    before = layer.forward(x)
    prepared = layer.prepare(x, np.ones((4, *spec.output_shape), np.float32))
    layer.run_phase("forward_backward", prepared, 0.0)
    np.testing.assert_array_equal(layer.forward(x), before)
    layer.run_phase("train_step", prepared, 0.0)
    for key in ("block.bn.running_mean", "block.bn.running_var"):
        np.testing.assert_allclose(np.asarray(layer.stats[key]), expected[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert relative_error(layer_cell("block", layout="nchw")[1].forward(x), before) <= 1e-5
    assert relative_error(layer_cell("block", precision="bf16")[1].forward(x), before) <= 3e-2


def test_linear_cell_returns_its_input_gradient_and_is_tracked():
    """The input's gradient is an output of the jitted step (so XLA computes it): g @ W; a new learning rate does not
    retrace; synchronize waits for the cell's steps; wrong weights are one clear error."""
    from convbench_jax import device
    spec, layer = layer_cell("fc")
    w, rng = init_weights(BLOCKY, 0), np.random.default_rng(1)
    x = rng.standard_normal((4, *spec.input_shape), dtype=np.float32)
    g = rng.standard_normal((4, 3), dtype=np.float32)
    prepared = layer.prepare(x, g)
    layer.run_phase("forward_backward", prepared, 0.1)
    out, _, gx = layer._last
    assert relative_error(np.asarray(out), x @ w["fc.weight"].T + w["fc.bias"]) <= 1e-5
    assert relative_error(np.asarray(gx), g @ w["fc.weight"]) <= 1e-5
    for lr in (0.1, 0.05):
        layer.run_phase("train_step", prepared, lr)
    assert layer._train._cache_size() == 1
    assert any(stream.startswith("layer fc") for stream in device._PENDING)
    assert PM.hook.convbench_synchronize(framework="jax", device="cpu") is True
    assert not device._PENDING
    with pytest.raises(ConvbenchError, match="do not match"):
        layer.set_weights({"fc.weight": w["fc.weight"]})
    with pytest.raises(ValueError, match="unknown phase"):
        layer.run_phase("backward", prepared, 0.1)


def test_dropout_cell_draws_a_mask_per_step():
    """A dropout cell's training phases draw a fresh mask each step (the key threaded as the network's step
    threads it): its input gradient is the output gradient, dropped or doubled."""
    spec, layer = layer_cell("drop")
    x, g = np.ones((4, *spec.input_shape), np.float32), np.ones((4, *spec.output_shape), np.float32)
    prepared, masks = layer.prepare(x, g), []
    for _ in range(2):
        layer.run_phase("forward_backward", prepared, 0.1)
        masks.append(np.asarray(layer._last[2]))
    assert set(np.unique(masks)) == {0.0, 2.0} and not np.array_equal(*masks)
    np.testing.assert_array_equal(layer.forward(x), x)
