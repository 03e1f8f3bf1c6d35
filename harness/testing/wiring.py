"""The kit's pytest wiring: its options, the collection of the check modules, the model parametrisation, the
``Kit`` state the checks share and the two session fixtures (``convbench_kit``, ``convbench_native``).
``harness.testing`` registers what is here as the pytest plugin."""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.devices import CPU
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.model.verification import write_inputs
from harness.native import NativeModel
from harness.orchestrator.workers import run_job, worker_env
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import BuildSettings
from harness.worker.protocol import VerifyJob

OPTIONS = {"framework": "framework under test", "models": "comma-separated models (default: all)",
           "reference": "framework whose logits are the reference (default torch)", "threads": "CPU threads",
           "speed-reference": "optional speed check: an importable module with make(model, batch) returning the "
                              "framework's own idiomatic implementation (variants with train_step(), and "
                              "synchronize()); convbench installs none: write your own, or from a source checkout "
                              "put benchmarks/ on PYTHONPATH and name idiomatic.torch_nets (tensorflow_nets, "
                              "paddle_nets, jax_nets)",
           "speed-tolerance": "largest plugin / reference train_step time ratio the speed check accepts (default 1.05)",
           "speed-batch": "batch of the speed check (default 32)"}
CHECKS = ("contract", "training", "capabilities", "layers", "speed")   # the check modules of harness.testing, in order
KIT = pytest.StashKey["Kit"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("convbench", "convbench conformance kit (harness.testing)")
    for name, help_text in OPTIONS.items():
        group.addoption(f"--convbench-{name}", dest=f"convbench_{name.replace('-', '_')}", help=help_text)
        parser.addini(f"convbench_{name.replace('-', '_')}", help_text)


def option(config: pytest.Config, name: str, default: str | None = None) -> str | None:
    """A kit option from the command line, else the ini file, else ``default``."""
    return config.getoption(f"convbench_{name}") or config.getini(f"convbench_{name}") or default


@pytest.hookimpl(tryfirst=True)  # before pytest's own -k/-m deselection
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not option(config, "framework"):
        return
    modules = [importlib.import_module(f"harness.testing.{name}") for name in CHECKS]
    if any(getattr(i, "module", None) in modules for i in items):   # the user named kit files: those only
        return
    Kit.from_config(config)  # an unknown framework or model is a usage error, reported before any test
    for module in modules:
        # explicit node ids: the kit usually lies outside the rootdir (site-packages, another checkout)
        path = Path(module.__file__ or "")
        nodeid = f"harness/testing/{path.name}"
        items.extend(session.genitems(pytest.Module.from_parent(session, path=path, name=nodeid, nodeid=nodeid)))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
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
            models = [m.strip() for m in (option(config, "models") or "").split(",") if m.strip()]
            try:
                config.stash[KIT] = cls(option(config, "framework") or "", models or None,
                                        option(config, "reference", "torch") or "torch",
                                        int(option(config, "threads", str(os.cpu_count() or 1)) or 1))
            except (ConvbenchError, ValueError) as exc:
                raise pytest.UsageError(f"convbench kit: {exc}") from None
        return config.stash[KIT]

    def model(self, name: str) -> ModelDef:
        return self.registries.models.get(name)

    def build(self, model: ModelDef, device: str = CPU.name, **settings: Any) -> NativeModel:
        """The plugin's model through ``convbench_build_model``, with every settings key sent as a worker sends
        them; ``device`` goes to the plugin as given (a plugin must refuse a bad one itself)."""
        full = BuildSettings(**{"momentum": 0.9, "weight_decay": 0.0, "seed": 0, "threads": self.threads, **settings})
        native = self.pm.hook.convbench_build_model(framework=self.framework, model=model, device=device,
                                                    settings=full.to_dict())
        assert native is not None, f"no plugin builds models for framework {self.framework!r}"
        return native

    def build_layer(self, model: ModelDef, layer: Any, device: str = CPU.name, **settings: Any) -> Any:
        """The plugin's cell of one node through ``convbench_build_layer`` (None: the plugin has no layer cells)."""
        full = BuildSettings(**{"momentum": 0.9, "weight_decay": 0.0, "seed": 0, "threads": self.threads, **settings})
        return self.pm.hook.convbench_build_layer(framework=self.framework, model=model, layer=layer, device=device,
                                                  settings=full.to_dict())

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
