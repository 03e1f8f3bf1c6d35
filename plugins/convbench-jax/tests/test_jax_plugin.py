"""JAX-specific checks the conformance kit does not make (it runs as well: see conftest.py)."""
from __future__ import annotations

import numpy as np
import pytest

from harness.errors import ConvbenchError
from harness.model.graph import Dropout, Flatten, Linear, ModelDef, Seq
from harness.model.weights import init_weights
from harness.plugin_manager import build_registries, get_plugin_manager

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
