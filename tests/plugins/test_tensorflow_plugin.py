"""The tensorflow plugin computes the same networks as the torch reference.

Weights are ``harness.model.verification.verification_weights`` (the seeded initialisation with biases and
batch-norm parameters and statistics randomised, so batch norm is not an identity). For every
registered model, and a small "zoo" net that uses every node type of the graph: parameter count, an
exact weight round trip, and eval logits against torch's for the same weights and input. For the
dropout-free nets, SGD steps against torch's (loss, weights, BN running stats). Torch runs in one
subprocess for the whole file, started first, so the two frameworks never share a process.
"""
from __future__ import annotations

import importlib.util
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConvbenchError
from harness.model import graph as g
from harness.model.shapes import model_summary
from harness.model.verification import verification_weights
from harness.plugin_manager import build_registries, get_plugin_manager

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("torch") is None,
    reason="needs tensorflow, and torch for the reference")

REPO = Path(__file__).resolve().parents[2]
SEED = 7
SETTINGS = {"momentum": 0.9, "weight_decay": 5e-4, "seed": SEED, "threads": 2}
TRAIN_LRS = (0.05, 0.02)  # two steps, so the momentum buffer is exercised too
# Train-step parity needs nets without dropout. A ReLU input within rounding error of 0 may fall on the
# other side in the other framework and reroute a gradient. In the shallow nets (STRICT) fp32 drift is
# ~1e-7 relative, so the batch is the first candidate whose ReLU inputs all stay MIN_RELU_MARGIN from 0
# in torch, and every weight must match to 1e-5. In resnet32 (31 conv + BN layers, batch 2) drift grows
# to ~1e-5 relative by stage 3 and such flips happen for most batches (seen: -2.2e-6 in torch, +1.4e-6
# in tf); there the forward quantities (loss, running stats) must match tightly and each weight
# tensor's update to 10% (measured: ~5e-5 without a flip, up to 5e-2 with one).
STRICT = ("lenet5", "simple_cnn", "zoo")
DEEP = ("resnet32",)
MIN_RELU_MARGIN = 2e-6
CANDIDATES = 8


def zoo() -> g.ModelDef:
    """Every node type but Dropout, with padded/ceil pools (one window dropped), both LRN window
    parities, both residual shortcut kinds, 2-D and 4-D batch norm and two aux heads."""
    def seq(name: str, *nodes: g.Node) -> g.Seq:
        return g.Seq(name, tuple(nodes))
    body = seq("net",
               seq("stem", g.Conv("conv", 8, 3, 1, 1, bias=False), g.BatchNorm("bn", 1e-3, 0.3), g.ReLU("relu")),
               g.LRN("lrn5", 5, 1e-2, 0.75, 2.0),
               g.MaxPool("pool", 3, 2, 1, ceil_mode=True),                        # 12 -> 7
               g.Concat("mix", (seq("a", g.Conv("conv", 4, 1)),
                                seq("b", g.MaxPool("pool", 3, 1, 1), g.Conv("conv", 4, 3, 1, 1)))),
               g.LRN("lrn4", 4, 1e-2, 0.5, 1.0),
               g.Aux("aux1", seq("head", g.AvgPool("pool", 3, 2), g.Flatten("flatten"), g.Linear("fc", 10)), 0.3),
               g.Aux("aux2", seq("head", g.GlobalAvgPool("gap"), g.Linear("fc", 10)), 0.5),
               g.Residual("res1", seq("body", g.Conv("conv", 8, 3, 1, 1), g.BatchNorm("bn")), seq("shortcut")),
               g.ReLU("relu1"),
               g.MaxPool("pool2", 2, 2, 1, ceil_mode=True),                       # 7 -> 4 (last window dropped)
               g.Residual("res2", seq("body", g.Conv("conv", 8, 3, 2, 1), g.BatchNorm("bn")),
                          seq("shortcut", g.Conv("proj", 8, 1, 2, 0, bias=False))),  # 4 -> 2
               seq("head", g.Flatten("flatten"), g.Linear("fc1", 16), g.BatchNorm("bn1"), g.ReLU("relu"),
                   g.Linear("fc2", 10, bias=False)))
    return g.ModelDef("zoo", (3, 12, 12), 10, body)


REGISTRY = build_registries(get_plugin_manager()).models
MODELS = {m.name: m for m in REGISTRY} | {"zoo": zoo()}


def batch(model: g.ModelDef, seed: int = SEED, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    n = n or (2 if model.input_shape[1] >= 128 else 8)
    rng = np.random.default_rng(seed)
    return rng.random((n, *model.input_shape), dtype=np.float32), rng.integers(0, model.num_classes, n)


def train_candidates(model: g.ModelDef) -> list[tuple[np.ndarray, np.ndarray]]:
    if model.name in DEEP:
        return [batch(model, 102, n=2)]
    return [batch(model, 100 + c, n=8) for c in range(CANDIDATES)] if model.name in STRICT else []


TORCH_SCRIPT = r"""
import pickle, sys
import numpy as np
import torch
from harness.model.verification import verification_weights
from convbench_torch import plugin

def fresh(job):
    native = plugin.native(job["model"], "cpu", job["settings"])
    native.set_weights(verification_weights(job["model"], job["seed"]))
    return native

def relu_margin(native):
    # smallest nonzero |ReLU input| seen from now on
    box = [np.inf]
    def hook(module, inputs, output):
        a = inputs[0].detach().abs()
        a = a[a > 0]
        if a.numel():
            box[0] = min(box[0], float(a.min()))
    for module in native.net.modules():
        if isinstance(module, torch.nn.ReLU):
            module.register_forward_hook(hook)
    return box

with open(sys.argv[1], "rb") as fh:
    jobs = pickle.load(fh)
out = {}
for job in jobs:
    key = job["key"]
    out[key + "/logits"] = fresh(job).forward(job["images"])
    best = None  # (margin, candidate, results): the first candidate over min_margin, else the widest
    for c, (images, labels) in enumerate(job["train_batches"]):
        native = fresh(job)
        margin = relu_margin(native)
        steps = {}
        for i, lr in enumerate(job["lrs"]):
            steps[f"{key}/loss{i}"] = np.float64(native.train_step(images, labels, lr))
            steps.update({f"{key}/step{i}/{k}": v for k, v in native.get_weights().items()})
        if best is None or margin[0] > best[0]:
            best = (margin[0], c, steps)
        if margin[0] >= job["min_margin"]:
            break
    if best is not None:
        out.update(best[2])
        out[key + "/batch"], out[key + "/margin"] = np.int64(best[1]), np.float64(best[0])
np.savez(sys.argv[2], **out)
"""


@pytest.fixture(scope="session", autouse=True)
def torch_reference(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Starts the torch subprocess for every model at the beginning, so it runs beside the tf tests."""
    work = tmp_path_factory.mktemp("torch_ref")
    jobs = []
    for name, model in MODELS.items():
        images, _ = batch(model)
        jobs.append({"key": name, "model": model, "settings": {**SETTINGS, "threads": 1}, "seed": SEED,
                     "images": images, "lrs": TRAIN_LRS if name in STRICT else TRAIN_LRS[:1],
                     "min_margin": MIN_RELU_MARGIN, "train_batches": train_candidates(model)})
    with open(work / "jobs.pkl", "wb") as fh:
        pickle.dump(jobs, fh)
    proc = subprocess.Popen([sys.executable, "-c", TORCH_SCRIPT, str(work / "jobs.pkl"), str(work / "out.npz")],
                            cwd=REPO)
    yield proc, work / "out.npz"
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def torch_results(torch_reference) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Torch's logits (and train steps), once its subprocess is done."""
    proc, out = torch_reference
    assert proc.wait(timeout=600) == 0, "the torch reference subprocess failed"
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def build(model: g.ModelDef, weights: dict[str, np.ndarray] | None = None, device: str = "cpu",
          **extra: object):  # type: ignore[no-untyped-def]
    from convbench_tensorflow import plugin
    native = plugin.native(model, device, {**SETTINGS, **extra})
    native.set_weights(verification_weights(model, SEED) if weights is None else weights)
    return native


@pytest.fixture(scope="module", params=list(MODELS))
def built(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """(definition, TF model, the seeded portable weights loaded into it); one model alive at a time."""
    model = MODELS[request.param]
    weights = verification_weights(model, SEED)
    return model, build(model, weights), weights


def test_param_count_matches_definition(built) -> None:  # type: ignore[no-untyped-def]
    model, native, _ = built
    assert native.param_count() == model_summary(model).params


def test_weights_round_trip_exactly(built) -> None:  # type: ignore[no-untyped-def]
    model, native, expected = built
    got = native.get_weights()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key].dtype == np.float32 and got[key].flags.c_contiguous
        assert np.array_equal(got[key], value), key


def test_eval_logits_match_torch(built, torch_results) -> None:  # type: ignore[no-untyped-def]
    model, native, _ = built
    images, labels = batch(model)
    ref = torch_results[model.name + "/logits"]
    logits = native.forward(images)
    assert logits.shape == ref.shape == (len(images), model.num_classes)
    diff = float(np.abs(logits - ref).max())
    print(f"{model.name}: max|tf - torch| = {diff:.3g}, max|torch| = {np.abs(ref).max():.3g}")
    assert diff <= 1e-4 * max(1.0, float(np.abs(ref).max()))
    ce, hits = native.evaluate(images, labels)
    z = ref - ref.max(axis=1, keepdims=True)
    ref_ce = float(-(z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(axis=1))).sum())
    assert ce == pytest.approx(ref_ce, rel=1e-4, abs=1e-4)
    assert hits == int((ref.argmax(axis=1) == labels).sum())


@pytest.mark.parametrize("name", STRICT)
def test_train_steps_match_torch(name: str, torch_results) -> None:  # type: ignore[no-untyped-def]
    model = MODELS[name]
    native = build(model)
    chosen, margin = int(torch_results[f"{name}/batch"]), float(torch_results[f"{name}/margin"])
    print(f"{name}: train batch candidate {chosen}, min |ReLU input| {margin:.2g}")
    images, labels = train_candidates(model)[chosen]
    worst = 0.0
    for i, lr in enumerate(TRAIN_LRS):
        loss = native.train_step(images, labels, lr)
        assert loss == pytest.approx(float(torch_results[f"{name}/loss{i}"]), rel=1e-5, abs=1e-6)
        for key, value in native.get_weights().items():
            ref = torch_results[f"{name}/step{i}/{key}"]
            scale = max(1.0, float(np.abs(ref).max()))
            np.testing.assert_allclose(value, ref, rtol=0, atol=1e-5 * scale, err_msg=f"{name} step {i + 1}: {key} "
                                       f"(min |ReLU input| in torch: {margin:.2g})")
            worst = max(worst, float(np.abs(value - ref).max()) / scale)
    print(f"{name}: worst max|w_tf - w_torch| / max(1, max|w|) over two steps = {worst:.2g}")
    assert native.tracing_counts()["train_step"] == 1  # the 2nd call, at another lr, did not retrace


@pytest.mark.parametrize("name", DEEP)
def test_deep_net_train_step_matches_torch(name: str, torch_results) -> None:  # type: ignore[no-untyped-def]
    model = MODELS[name]
    native = build(model)
    before = native.get_weights()
    images, labels = train_candidates(model)[0]
    loss = native.train_step(images, labels, TRAIN_LRS[0])
    assert loss == pytest.approx(float(torch_results[f"{name}/loss0"]), rel=1e-5)
    worst = 0.0
    for key, value in native.get_weights().items():
        ref = torch_results[f"{name}/step0/{key}"]
        if key.endswith(("running_mean", "running_var")):
            np.testing.assert_allclose(value, ref, rtol=0, atol=1e-5 * max(1.0, float(np.abs(ref).max())), err_msg=key)
        else:
            rel = float(np.linalg.norm(value - ref) / max(np.linalg.norm(ref - before[key]), 1e-12))
            assert rel <= 0.1, f"{key}: update differs from torch's by {rel:.2g} of its size"
            worst = max(worst, rel)
    print(f"{name}: worst |update_tf - update_torch| / |update_torch| = {worst:.2g}")


def test_run_phases_do_not_retrace_and_only_train_step_updates() -> None:
    model = MODELS["zoo"]
    native = build(model)
    prepared = native.prepare_batch(*batch(model))
    before = native.get_weights()
    for _ in range(2):
        native.run_phase("forward", prepared, 0.1)
        native.run_phase("forward_backward", prepared, 0.1)
    for key, value in native.get_weights().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    native.run_phase("train_step", prepared, 0.1)
    native.run_phase("train_step", prepared, 0.01)
    assert not np.array_equal(native.get_weights()["stem.conv.weight"], before["stem.conv.weight"])
    assert native.tracing_counts() == {"forward": 1, "forward_backward": 1, "train_step": 1, "evaluate": 0}
    with pytest.raises(ValueError, match="unknown phase"):
        native.run_phase("backward", prepared, 0.1)


def test_held_crops_are_numpy_crops_though_the_cpu_declines_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU the model declines a padded training set (numpy's crop is the faster there) and holds an
    unpadded one; its in-graph crop, which GPU cells run, still trains exactly as numpy's crops handed over
    (the kit's check, with the crop allowed on the CPU)."""
    from convbench_tensorflow.model import TFModel

    from harness.testing import Kit
    from harness.testing.capabilities import TestCapabilities
    native = build(MODELS["lenet5"])
    x, y = np.zeros((4, 32, 32, 3), np.float32), np.zeros(4, np.int64)
    assert not native.hold_train_set(x, y, 4)
    assert native.hold_train_set(x, y, 0)
    monkeypatch.setattr(TFModel, "hold_crops_on_cpu", True)
    assert build(MODELS["lenet5"]).hold_train_set(x, y, 4)
    TestCapabilities().test_held_batches_equal_host_batches(Kit("tensorflow", ["lenet5"], "tensorflow", 2))


def test_a_set_held_anew_replaces_the_old_in_the_step() -> None:
    """The held step captures its set's variables (two arguments a call, not five): after a second set of the
    same shapes is held, a held batch trains exactly as that set's batch handed over, never as the first set's,
    with no new trace; a set of other shapes gets a step of its own."""
    model = MODELS["lenet5"]
    first, y = batch(model, n=8)
    second = np.ascontiguousarray(first[::-1])
    index = np.array([1, 6, 3], np.int64)
    expected = build(model).train_step(second[index], y[index], 0.05)
    held = build(model)
    for images in (first, second):
        assert held.hold_train_set(np.ascontiguousarray(images.transpose(0, 2, 3, 1)), y, 0)
    got = held.read_losses([held.train_step_async(held.gather_batch(index, None), 0.05)])[0]
    stale = build(model).train_step(first[index], y[index], 0.05)
    assert got == expected != stale
    step = held.held.step
    assert held.hold_train_set(np.ascontiguousarray(first.transpose(0, 2, 3, 1)), y, 0)
    held.read_losses([held.train_step_async(held.gather_batch(index, None), 0.05)])
    assert held.held.step is step and step.experimental_get_tracing_count() == 1
    assert held.hold_train_set(np.ascontiguousarray(first[:6].transpose(0, 2, 3, 1)), y[:6], 0)
    assert held.held.step is not step
    index = np.array([5, 0], np.int64)
    expected = build(model, held.get_weights()).train_step(first[index], y[index], 0.05)   # a loss: before the update
    assert held.read_losses([held.train_step_async(held.gather_batch(index, None), 0.05)]) == [expected]


@pytest.mark.parametrize("mode", ["xla", "none"])
def test_xla_and_eager_match_graph_mode(mode: str) -> None:
    model = MODELS["zoo"]
    images, labels = batch(model)
    plain, other = build(model), build(model, compile=mode)
    assert plain.execution_info()["compile"] == "tf.function"
    assert other.execution_info()["compile"] == {"xla": "xla", "none": "eager"}[mode]
    np.testing.assert_allclose(other.forward(images), plain.forward(images), rtol=0, atol=1e-4)
    for lr in TRAIN_LRS:
        assert other.train_step(images, labels, lr) == pytest.approx(plain.train_step(images, labels, lr), rel=1e-5)
    got, ref = other.get_weights(), plain.get_weights()
    for key in ("stem.conv.weight", "stem.bn.running_var", "head.fc2.weight"):
        np.testing.assert_allclose(got[key], ref[key], rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_stays_close_to_fp32(precision: str) -> None:
    model = MODELS["zoo"]
    images, labels = batch(model)
    low, full = build(model, precision=precision), build(model)
    ref = full.forward(images)
    assert low.forward(images).dtype == np.float32
    tol = (5e-2 if precision == "bf16" else 5e-3) * max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(low.forward(images), ref, rtol=0, atol=tol)
    before = low.get_weights()["stem.conv.weight"]
    for step in range(20):  # fp16, like torch's GradScaler: an overflowing step is skipped, the scale halved
        scale = float(low.scaler.scale.numpy()) if low.scaler is not None else None
        loss = low.train_step(images, labels, 0.05)
        if step == 0:
            assert loss == pytest.approx(full.train_step(images, labels, 0.05), rel=0.05)
        if not np.array_equal(low.get_weights()["stem.conv.weight"], before):
            break
        assert scale is not None and float(low.scaler.scale.numpy()) == scale / 2
    weights = low.get_weights()
    assert not np.array_equal(weights["stem.conv.weight"], before)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in weights.values())  # fp32 master weights


def chain_net() -> g.ModelDef:
    """Batch norm in both shapes, and a flat activation the network keeps in NHWC order across two cells (the
    Flatten, a ReLU and the Linear that reads it: ``layers.flat_order``)."""
    def seq(name: str, *nodes: g.Node) -> g.Seq:
        return g.Seq(name, tuple(nodes))
    body = seq("net", seq("stem", g.Conv("conv", 4, 3, 1, 1, bias=False), g.BatchNorm("bn"), g.ReLU("relu")),
               g.MaxPool("pool", 2, 2), g.Flatten("flatten"), g.ReLU("relu"), g.Linear("fc1", 16), g.BatchNorm("bn1"),
               g.ReLU("relu1"), g.Linear("fc2", 10))
    return g.ModelDef("chain", (3, 8, 8), 10, body)


@pytest.mark.parametrize("mode, depth", [("auto", None), ("xla", 1), ("none", None)])
def test_layer_cells_backward_chains_to_the_network_step(mode: str, depth: int | None) -> None:
    """Chained on their native tensors (the output of one the input of the next, the input gradient of one the
    output gradient of the one before), the cells' forward_backward steps give the network's gradients, and their
    train steps its weights and batch-norm statistics after a step, under each compile mode."""
    import tensorflow as tf
    from convbench_tensorflow import plugin

    from harness.model.layers import layer_specs
    model = chain_net()
    weights = verification_weights(model, SEED)
    images, labels = batch(model)
    native = build(model, weights, compile=mode)
    _, grads = native.steps.grads(*native.prepare_batch(images, labels))
    def trainable(net):  # type: ignore[no-untyped-def]
        return [(key, p) for key, p in net.params.items() if p.var.trainable]
    expected = {key: p.to_portable(grad.numpy()) for (key, p), grad in zip(trainable(native.net), grads)}
    cells = []
    for spec in layer_specs(model, depth):
        cell = plugin.native_layer(model, spec, "cpu", {**SETTINGS, "compile": mode})
        cell.set_weights(spec.weights(weights))
        cells.append(cell)
    # the flat activation crosses the cells' boundaries in the network's NHWC order, with no transpose anywhere
    assert [(c.layer.path, c.reads, c.writes) for c in cells if c.reads or c.writes] == [
        ("flatten", None, (4, 4, 4)), ("relu", (4, 4, 4), (4, 4, 4)), ("fc1", (4, 4, 4), None)]
    n = len(images)
    inputs = [cells[0].prepare(images, np.zeros((n, *cells[0].layer.output_shape), np.float32)).x]
    for cell in cells:   # the training-mode forward, by the timed step itself (a zero output gradient)
        zero = cell.prepare(np.zeros((n, *cell.layer.input_shape), np.float32),
                            np.zeros((n, *cell.layer.output_shape), np.float32)).grad
        inputs.append(cell.grads_step(inputs[-1], zero)[0])
    logits = inputs.pop().numpy()
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    grad = tf.constant((softmax - np.eye(10, dtype=np.float32)[labels]) / len(labels))
    for cell, x in zip(reversed(cells), reversed(inputs)):   # backward, last cell first
        _, cell_grads = cell.grads_step(x, grad)
        for (key, p), value in zip(trainable(cell.net), cell_grads):
            np.testing.assert_allclose(p.to_portable(value.numpy()), expected[key], rtol=0,
                                       atol=1e-5 * max(1.0, float(np.abs(expected[key]).max())), err_msg=key)
        cell.train_step(x, grad, cell.lr(0.05))
        grad = cell_grads[-1] if cell.layer.input_grad else None
    native.train_step(images, labels, 0.05)
    after = native.get_weights()
    for cell in cells:
        for key, p in cell.net.params.items():
            np.testing.assert_allclose(p.to_portable(p.var.numpy()), after[key], rtol=0, atol=1e-5, err_msg=key)
        assert cell.tracing_counts() == ({"forward": 0, "forward_backward": 0, "train_step": 0} if mode == "none" else
                                         {"forward": 0, "forward_backward": 1, "train_step": 1})


def test_lrn_matches_torch_formula_for_odd_and_even_sizes() -> None:
    import tensorflow as tf
    from convbench_tensorflow.layers import LRN, Context
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 7)).astype(np.float32)  # NHWC
    for size in (1, 2, 4, 5):
        node = g.LRN("lrn", size, 0.3, 0.75, 1.5)
        sq = np.pad(x**2, [(0, 0)] * 3 + [(size // 2, (size - 1) // 2)])
        sums = sum(sq[..., i:i + 7] for i in range(size))
        expected = x / (node.k + node.alpha / size * sums) ** node.beta
        got = LRN(node, (7, 3, 3))(tf.constant(x), Context(False, False)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=f"size {size}")


def test_dropout_is_inverted_and_train_only() -> None:
    import tensorflow as tf
    from convbench_tensorflow.layers import Context, Dropout
    layer = Dropout(g.Dropout("drop", 0.25), tf.random.Generator.from_seed(0))
    x = tf.ones([1000, 10])
    y = layer(x, Context(True, False)).numpy()
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    assert layer(x, Context(False, False)) is x


@pytest.mark.parametrize("settings, message", [
    ({"precision": "fp8"}, "unknown precision 'fp8'; known: bf16, fp16, fp32"),
    ({"compile": "inductor"}, "unknown compile mode 'inductor'; known: auto, default, none, xla"),
    ({"layout": "nchw"}, "tensorflow has no layout 'nchw'; use one of native, nhwc"),
])
def test_bad_settings_are_user_errors(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConvbenchError, match=message):
        build(MODELS["lenet5"], **settings)


def test_execution_info_records_how_the_cell_runs() -> None:
    info = build(MODELS["lenet5"], precision="bf16", compile="auto", layout="native").execution_info()
    assert isinstance(info.pop("deterministic"), bool)
    assert info == {"world_size": 1, "precision": "bf16", "compile": "tf.function", "layout": "nhwc", "tf32": False,
                    "autotune": None}


@pytest.mark.parametrize("device, message", [("cuda:3", "is not available: tensorflow sees"),
                                             ("tpu", "unknown device 'tpu'; use cpu, cuda or cuda:N")])
def test_absent_devices_are_user_errors(device: str, message: str) -> None:
    import tensorflow as tf
    if device.startswith("cuda") and len(tf.config.list_physical_devices("GPU")) > 3:
        pytest.skip("this machine has a cuda:3")
    with pytest.raises(ConvbenchError, match=message):
        build(MODELS["lenet5"], device=device)


def test_hooks_through_the_plugin_manager() -> None:
    pm = get_plugin_manager()
    regs = build_registries(pm)
    assert regs.frameworks.get("tensorflow").module == "tensorflow"
    devices = pm.hook.convbench_discover_devices(framework="tensorflow")
    assert devices[0].name == "cpu" and all(d.name.startswith("cuda:") for d in devices[1:])
    native = pm.hook.convbench_build_model(framework="tensorflow", model=MODELS["lenet5"], device="cpu",
                                           settings=SETTINGS)
    assert native.param_count() == 62006
    # cpu is left to the built-in cpu plugin
    assert pm.hook.convbench_synchronize(framework="tensorflow", device="cpu") is True
    assert pm.hook.convbench_peak_memory_mb(framework="tensorflow", device="cpu", reset=False) > 0


def test_plugin_import_does_not_import_tensorflow() -> None:
    code = "import sys, convbench_tensorflow; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
