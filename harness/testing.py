"""Conformance kit: a pytest plugin that checks a framework plugin against convbench's contract.

Enable it with ``pytest -p harness.testing --convbench-framework NAME [--convbench-models a,b]
[--convbench-reference torch]``, or with ``pytest_plugins = ["harness.testing"]`` in a top-level conftest.py
plus ``convbench_framework = NAME`` in the ini file. When a framework is named, the plugin collects the
``TestConformance`` class of this module into the session (before ``-k``/``-m`` selection), so its checks run
as ordinary pytest tests. The framework under test runs in the pytest process; the reference framework's
logits come from a verify job in a worker process (frameworks must not share a process).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.datasets.batches import PAD, Crops
from harness.errors import ConvbenchError
from harness.model.graph import Aux, BatchNorm, Dropout, Flatten, Linear, ModelDef, Seq
from harness.model.shapes import model_summary
from harness.model.verification import BATCH, TOLERANCE, verification_weights, write_inputs
from harness.model.weights import init_weights, trainable_shapes
from harness.native import PHASES, NativeModel
from harness.orchestrator.workers import run_job, worker_env
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.worker.protocol import VerifyJob

OPTIONS = {"framework": "framework under test", "models": "comma-separated models (default: all)",
           "reference": "framework whose logits are the reference (default torch)", "threads": "CPU threads",
           "speed-reference": "optional speed check: an importable module with make(model, batch) giving the "
                              "framework's own idiomatic implementation (see benchmarks/idiomatic)",
           "speed-tolerance": "largest plugin / reference train_step time ratio the speed check accepts (default 1.05)",
           "speed-batch": "batch of the speed check (default 32)"}
SETTINGS = [("compile", "none"), ("layout", "nchw"), ("layout", "nhwc"), ("precision", "bf16"), ("precision", "fp16")]
HALF_TOLERANCE, KIT_ID, KIT = 5e-2, "harness/testing.py", pytest.StashKey["Kit"]()  # 5e-2: bf16/fp16 logits


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("convbench", "convbench conformance kit (harness.testing)")
    for name, help_text in OPTIONS.items():
        group.addoption(f"--convbench-{name}", dest=f"convbench_{name.replace('-', '_')}", help=help_text)
        parser.addini(f"convbench_{name.replace('-', '_')}", help_text)


def _option(config: pytest.Config, name: str, default: str | None = None) -> str | None:
    return config.getoption(f"convbench_{name}") or config.getini(f"convbench_{name}") or default


@pytest.hookimpl(tryfirst=True)  # before pytest's own -k/-m deselection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _option(config, "framework") or any(getattr(i, "module", None) is sys.modules[__name__] for i in items):
        return
    Kit.from_config(config)  # an unknown framework or model is a usage error, reported before any test
    # an explicit node id: this file usually lies outside the rootdir (site-packages, another checkout)
    module = pytest.Module.from_parent(session, path=Path(__file__), name=KIT_ID, nodeid=KIT_ID)
    items.extend(session.genitems(module))


# specname: a module-level ``pytest_generate_tests`` would run a second time when this module is collected
@pytest.hookimpl(specname="pytest_generate_tests")
def pytest_convbench_parametrize(metafunc: pytest.Metafunc) -> None:
    if "convbench_model" in metafunc.fixturenames:  # session scope: one model's tests together, one model alive
        metafunc.parametrize("convbench_model", Kit.from_config(metafunc.config).models, scope="session")


class Kit:
    """State shared by the checks: the plugin manager, the options, the reference logits (computed once)."""

    folder: Path | None  # the shared weights, inputs and reference logits
    _reference: dict[str, Any] | None

    def __init__(self, framework: str, models: list[str] | None, reference: str, threads: int) -> None:
        self.pm, self.folder, self._reference = get_plugin_manager(), None, None
        self.registries = build_registries(self.pm)
        self.spec = self.registries.frameworks.get(framework)   # ConvbenchError names the known ones
        self.reference_spec = self.registries.frameworks.get(reference)
        self.framework, self.reference, self.threads = framework, reference, threads
        self.models = [self.registries.models.get(m).name for m in (models or self.registries.models.names())]

    @classmethod
    def from_config(cls, config: pytest.Config) -> "Kit":
        if KIT not in config.stash:
            models = [m.strip() for m in (_option(config, "models") or "").split(",") if m.strip()]
            try:
                config.stash[KIT] = cls(_option(config, "framework") or "", models or None,
                                        _option(config, "reference", "torch") or "torch",
                                        int(_option(config, "threads", str(os.cpu_count() or 1)) or 1))
            except (ConvbenchError, ValueError) as exc:
                raise pytest.UsageError(f"convbench kit: {exc}") from None
        return config.stash[KIT]

    def model(self, name: str) -> ModelDef:
        return self.registries.models.get(name)

    def build(self, model: ModelDef, device: str = "cpu", **settings: Any) -> NativeModel:
        full = {"momentum": 0.9, "weight_decay": 0.0, "seed": 0, "threads": self.threads, **settings}
        native = self.pm.hook.convbench_build_model(framework=self.framework, model=model, device=device, settings=full)
        assert native is not None, f"no plugin builds models for framework {self.framework!r}"
        return native

    def inputs(self, tmp_factory: pytest.TempPathFactory) -> Path:
        """The verify command's shared weights and input batches, one pair per model, written once."""
        if self.folder is None:
            self.folder = tmp_factory.mktemp("convbench-kit")
            write_inputs([self.model(m) for m in self.models], self.folder, seed=0)
        return self.folder

    def reference_logits(self, name: str, tmp_factory: pytest.TempPathFactory) -> np.ndarray:
        if self.reference == self.framework:
            pytest.skip(f"{self.framework} is its own reference; pass --convbench-reference OTHER")
        installed, why = self.reference_spec.installed()
        if not installed:
            pytest.skip(f"reference framework {self.reference} is unavailable: {why}")
        folder = self.inputs(tmp_factory)
        if self._reference is None:
            self._reference = self._run_reference(folder)
        entry = self._reference.get(name, {"error": "no result"})
        if "error" in entry:
            pytest.fail(f"reference {self.reference} failed on {name}: {entry['error']}", pytrace=False)
        return np.load(folder / f"{name}.{self.reference}.logits.npy")

    def _run_reference(self, folder: Path) -> dict[str, Any]:
        """Every model's reference logits from one verify job in a worker, as convbench verify computes them."""
        job = VerifyJob(self.reference, tuple(self.models), str(folder), self.threads)
        result = run_job(job, worker_env(self.reference_spec, self.threads), folder / "reference.log")
        why = result.failure(lines=10)
        if why:
            return {m: {"error": f"reference worker failed: {why}"} for m in self.models}
        return result.payload or {}


@pytest.fixture(scope="session")
def convbench_kit(request: pytest.FixtureRequest) -> Kit:
    kit = Kit.from_config(request.config)
    installed, why = kit.spec.installed()
    assert installed, f"framework {kit.framework} is not installed: {why}"
    return kit


@pytest.fixture(scope="session")
def convbench_native(convbench_kit: Kit, convbench_model: str) -> NativeModel:
    """The model under test, built once per model on cpu (each check loads the weights it needs)."""
    return convbench_kit.build(convbench_kit.model(convbench_model))


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """verify's measure: max|a - b| / max(max|a|, max|b|)."""
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), 1e-12)
    return float(np.abs(a - b).max()) / scale


def softmax_ce(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]


def tiny(name: str, shape: tuple[int, int, int], *nodes: Any) -> ModelDef:
    """A small graph built in the test, so the kit can check one rule in isolation."""
    return ModelDef(name, shape, 3, Seq("net", tuple(nodes)))


class TestConformance:
    """The checks every framework plugin must pass (see docs/plugins.md)."""

    def test_framework_registered(self, convbench_kit: Kit) -> None:
        devices = convbench_kit.pm.hook.convbench_discover_devices(framework=convbench_kit.framework)
        assert devices and devices[0].name == "cpu", f"devices must be a list with cpu first, got {devices}"
        assert all(d.name == "cpu" or d.name.split(":")[0] in convbench_kit.spec.device_kinds for d in devices)

    def test_parameter_count(self, convbench_kit: Kit, convbench_model: str, convbench_native: NativeModel) -> None:
        assert convbench_native.param_count() == model_summary(convbench_kit.model(convbench_model)).params

    def test_weights_round_trip(self, convbench_kit: Kit, convbench_model: str, convbench_native: NativeModel) -> None:
        model = convbench_kit.model(convbench_model)
        weights = verification_weights(model, 1)
        convbench_native.set_weights(weights)
        back = convbench_native.get_weights()
        assert sorted(back) == sorted(weights), "get_weights must return exactly the portable keys"
        for key, value in weights.items():
            assert back[key].shape == value.shape and back[key].dtype == np.float32, key
            np.testing.assert_array_equal(back[key], value, err_msg=key)
        key = next(iter(weights))
        for broken in ({k: v for k, v in weights.items() if k != key}, {**weights, key: weights[key][..., :1]}):
            pytest.raises(Exception, convbench_native.set_weights, broken)

    def test_logits_match_reference(self, convbench_kit: Kit, convbench_model: str, convbench_native: NativeModel,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
        expected = convbench_kit.reference_logits(convbench_model, tmp_path_factory)
        folder = convbench_kit.inputs(tmp_path_factory)
        with np.load(folder / f"{convbench_model}.weights.npz") as data:
            convbench_native.set_weights({k: data[k] for k in data.files})
        logits = convbench_native.forward(np.load(folder / f"{convbench_model}.input.npy"))
        assert logits.shape == expected.shape and logits.dtype == np.float32
        error = relative_error(logits, expected)
        assert error <= TOLERANCE, f"logits differ from {convbench_kit.reference} by {error:.1e} > {TOLERANCE:g}"

    def test_timing_phases(self, convbench_kit: Kit, convbench_model: str, convbench_native: NativeModel) -> None:
        model, rng = convbench_kit.model(convbench_model), np.random.default_rng(3)
        convbench_native.set_weights(init_weights(model, 0))
        images = rng.random((BATCH, *model.input_shape), dtype=np.float32)
        batch = convbench_native.prepare_batch(images, rng.integers(0, model.num_classes, BATCH))
        for phase in PHASES:
            convbench_native.run_phase(phase, batch, 1e-3)
        hook, fw = convbench_kit.pm.hook, convbench_kit.framework
        assert hook.convbench_synchronize(framework=fw, device="cpu") is True
        assert isinstance(hook.convbench_peak_memory_mb(framework=fw, device="cpu", reset=False), float)

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

    @staticmethod
    def _twin_lenets(kit: Kit, methods: tuple[str, ...], n_batches: int, missing: str) -> tuple[Any, Any, list[Any]]:
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

    def test_pipelined_steps_equal_train_step(self, convbench_kit: Kit) -> None:
        """Optional PipelinedModel: prepare_batch + train_step_async + read_losses train exactly as train_step
        does (same losses, same weights), whatever the order in which losses are read."""
        first, second, batches = self._twin_lenets(
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
        first, second, batches = self._twin_lenets(
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
        first, second, _ = self._twin_lenets(
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
        count work other frameworks skip. A costly head (a 2048 x 4096 dense layer, ~1 GFLOP per batch) must
        cost next to nothing at evaluation. Compared on CPU time, the least of several calls, so a busy machine
        cannot fake or hide it."""
        heavy = Seq("head", (Flatten("flatten"), Linear("wide", 4096), Linear("fc", 3)))
        shape = (8, 16, 16)
        models = [tiny("kit_aux_cost", shape, Aux("aux", heavy, 0.3), Flatten("flatten"), Linear("fc", 3)),
                  tiny("kit_no_aux", shape, Flatten("flatten"), Linear("fc", 3))]
        x = np.random.default_rng(19).random((64, *shape), dtype=np.float32)
        costs = []
        for model in models:
            native = convbench_kit.build(model)
            native.set_weights(init_weights(model, 0))
            native.forward(x)  # tracing / compilation
            samples = []
            for _ in range(7):
                start = time.process_time()
                native.forward(x)
                samples.append(time.process_time() - start)
            costs.append(min(samples))
        with_aux, without = costs
        assert with_aux <= 3 * without + 0.003, (f"forward with an auxiliary head costs {1e3 * with_aux:.1f} ms of CPU, "
                                                 f"without {1e3 * without:.1f} ms: the head runs at evaluation")

    def test_train_step_speed_against_reference(self, convbench_kit: Kit, convbench_model: str,
                                                convbench_native: NativeModel, request: pytest.FixtureRequest) -> None:
        """Optional (--convbench-speed-reference MODULE): the plugin's speed-mode train_step against the framework's
        own idiomatic implementation of the same network on this machine, interleaved, median of the steps; the
        plugin may be at most --convbench-speed-tolerance (1.05) times slower."""
        config = request.config
        target = _option(config, "speed_reference")
        if not target:
            pytest.skip("optional speed check: pass --convbench-speed-reference MODULE (e.g. idiomatic.torch_nets)")
        import importlib
        import statistics
        tolerance = float(_option(config, "speed_tolerance", "1.05") or 1.05)
        batch_size = int(_option(config, "speed_batch", "32") or 32)
        try:
            reference = importlib.import_module(target).make(convbench_model, batch_size)
        except (KeyError, ValueError) as exc:
            pytest.skip(f"{target} has no implementation of {convbench_model}: {exc}")
        model, rng = convbench_kit.model(convbench_model), np.random.default_rng(29)
        convbench_native.set_weights(init_weights(model, 0))
        batch = convbench_native.prepare_batch(rng.random((batch_size, *model.input_shape), dtype=np.float32),
                                               rng.integers(0, model.num_classes, batch_size))
        hook, fw = convbench_kit.pm.hook, convbench_kit.framework
        ours = (lambda: convbench_native.run_phase("train_step", batch, 1e-3),
                lambda: hook.convbench_synchronize(framework=fw, device="cpu"))
        theirs = [(v.train_step, reference.synchronize) for v in reference.variants.values()]

        def median_s(step: Any, sync: Any, n: int = 5) -> list[float]:
            step(), sync()   # tracing / compilation
            samples = []
            for _ in range(n):
                start = time.perf_counter()
                step()
                sync()
                samples.append(time.perf_counter() - start)
            return samples
        mine, best = [], [[] for _ in theirs]
        for _ in range(3):   # interleaved rounds, so a busy moment hits both
            mine += median_s(*ours)
            for pooled, (step, sync) in zip(best, theirs):
                pooled += median_s(step, sync)
        ratio = statistics.median(mine) / min(statistics.median(p) for p in best)
        assert ratio <= tolerance, (f"{fw} {convbench_model} train_step is {ratio:.2f}x the idiomatic reference's "
                                    f"({target}); tolerance {tolerance:g}")

    @pytest.mark.parametrize("device", ["cuda:99", "tpu"])
    def test_bad_device_is_a_user_error(self, convbench_kit: Kit, device: str) -> None:
        with pytest.raises(ConvbenchError) as info:
            convbench_kit.build(convbench_kit.model("lenet5"), device=device)
        assert "\n" not in str(info.value), "user errors are one line"

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
