"""The plugin machinery: hookspecs, inline plugins, entry-point loading, disabling, registries."""
from __future__ import annotations

import importlib.metadata
import inspect
import os
import re
import site
import subprocess
import sys
import types
from pathlib import Path

import pytest

import harness
from harness import hookimpl, hookspecs
from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.model.graph import Flatten, Linear, ModelDef, Seq
from harness.plugin_manager import BUILTIN, build_registries, get_plugin_manager
from harness.registry import Registry

BUILTIN_MODELS = build_registries(get_plugin_manager()).models.names()
HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("convbench_")]


def tiny_model(name: str = "tiny") -> ModelDef:
    return ModelDef(name, (1, 2, 2), 3, Seq("net", (Flatten("flatten"), Linear("fc", 3))))


class InlinePlugin:
    @hookimpl
    def convbench_add_models(self, registry):
        registry.add("tiny", tiny_model())

    @hookimpl
    def convbench_add_frameworks(self, registry):
        registry.add("fake", FrameworkSpec("fake", "json", ("convbench",)))


def test_every_hook_has_prefix_and_reference_docstring():
    assert HOOKS, "no hooks found"
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        doc = " ".join((inspect.getdoc(fn) or "").split())
        assert inspect.getdoc(fn).splitlines()[0].endswith("."), f"{name}: one-line summary"
        for param in inspect.signature(fn).parameters:
            assert f":param {param}:" in doc, f"{name}: :param {param}: missing"
        assert ":return:" in doc, f"{name}: :return: missing"
        firstresult = fn.convbench_spec.get("firstresult", False)  # type: ignore[attr-defined]
        assert ("Stops at first non-None result." in doc) == firstresult, name


def test_every_hook_is_exercised_by_a_test():
    import pathlib
    text = "".join(p.read_text() for p in pathlib.Path(__file__).parent.rglob("test_*.py"))
    for name in HOOKS:
        assert re.search(rf"\b{name}\b", text), f"no test calls {name}"


def test_hookimpl_is_importable_from_package_root():
    assert harness.hookimpl is hookimpl


def test_inline_plugin_on_fresh_manager():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(InlinePlugin(), name="inline")
    regs = build_registries(pm)
    assert regs.models.names() == ["tiny"]
    assert regs.frameworks.get("fake").installed() == (True, "")
    assert pm.hook.convbench_build_model(framework="fake", model=tiny_model(), device="cpu", settings={}) is None


def test_duplicate_model_name_raises():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(InlinePlugin(), name="a")
    pm.register(InlinePlugin(), name="b")
    with pytest.raises(ConvbenchError, match="duplicate (model 'tiny'|framework 'fake'): registered by plugin 'a' "
                                             "and again by plugin 'b'"):
        build_registries(pm)


def test_unknown_name_lists_known_and_suggests():
    reg: Registry[int] = Registry("model")
    for n in ("vgg16", "vgg19", "lenet5"):
        reg.add(n, 0)
    with pytest.raises(ConvbenchError, match=r"unknown model 'lenet' \(did you mean 'lenet5'\?\); known: lenet5, vgg16, vgg19"):
        reg.get("lenet")


class FakeDist:
    version = "9.9"
    metadata = {"Name": "convbench-fake"}


class FakeEntryPoint:
    def __init__(self, name: str, module: str):
        self.name, self.module, self.dist = name, module, FakeDist()

    def load(self):
        return importlib.import_module(self.module)


@pytest.fixture
def fake_entry_points(monkeypatch):
    good = types.ModuleType("convbench_fake_plugin")
    good.convbench_add_models = hookimpl(lambda registry: registry.add("tiny", tiny_model()))
    monkeypatch.setitem(sys.modules, "convbench_fake_plugin", good)
    eps = [FakeEntryPoint("fake", "convbench_fake_plugin"), FakeEntryPoint("broken", "convbench_no_such_module")]

    def entry_points(group=None, **kw):
        return eps if group == "convbench" else []
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return eps


def test_entry_points_load_and_broken_plugin_is_reported(fake_entry_points):
    pm = get_plugin_manager()
    assert pm.has_plugin("fake")
    assert build_registries(pm).models.names() == [*BUILTIN_MODELS, "tiny"]
    origins = pm.convbench_origins
    assert origins["fake"].distribution == "convbench-fake" and origins["fake"].version == "9.9"
    assert origins["fake"].kind == "entry point"
    assert "ModuleNotFoundError" in origins["broken"].error


def test_disable_env_blocks_plugin(fake_entry_points, monkeypatch):
    monkeypatch.setenv("CONVBENCH_DISABLE_PLUGINS", "fake, paddle")
    pm = get_plugin_manager()
    assert not pm.has_plugin("fake") and pm.is_blocked("fake") and not pm.has_plugin("paddle")
    assert build_registries(pm).models.names() == BUILTIN_MODELS
    assert "paddle" not in build_registries(pm).frameworks
    assert pm.convbench_origins["fake"].disabled and pm.convbench_origins["paddle"].disabled


def test_builtin_plugins_need_no_packaging_metadata(monkeypatch):
    """The built-ins come from one tuple in code (pytest's default_plugins), not from entry points."""
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None, **kw: [])
    pm = get_plugin_manager()
    assert [name for name, _ in BUILTIN] == ["models", "cpu", "torch", "tensorflow", "paddle"]
    for name, _ in BUILTIN:
        assert pm.has_plugin(name) and pm.convbench_origins[name].kind == "built-in", name
    assert build_registries(pm).frameworks.names() == ["torch", "tensorflow", "paddle"]
    assert not {ep.name for ep in importlib.metadata.entry_points(group="convbench")} & {"torch", "models"}


def installed_copy() -> bool:
    """Whether convbench's plugins are installed as a copy in site-packages (tox's environments), not editable."""
    return any((Path(folder) / "convbench_torch" / "__init__.py").is_file() for folder in site.getsitepackages())


def test_a_source_checkout_works_before_it_is_installed(tmp_path):
    """Without the installed package's import hooks, from the repository root: harness from the working
    directory, the framework plugins from plugins/ beside it."""
    root = Path(harness.__file__).resolve().parent.parent
    if installed_copy():
        pytest.skip("convbench is installed as a copy (not editable), whose plugins come first on sys.path: "
                    "this checks a checkout that is not installed, or installed editable")
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            "sys.path_importer_cache.clear(); import harness, harness.plugin_manager as m; "
            "regs = m.build_registries(m.get_plugin_manager()); import convbench_torch; "
            "print(harness.__file__, convbench_torch.__file__, regs.frameworks.names()[:3])")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"{root}/harness/__init__.py {root}/plugins/convbench_torch/__init__.py" in out.stdout
    assert "['torch', 'tensorflow', 'paddle']" in out.stdout


def test_cpu_device_hooks_answer_for_cpu_only():
    pm = get_plugin_manager()
    assert pm.hook.convbench_synchronize(framework="anything", device="cpu") is True
    assert pm.hook.convbench_peak_memory_mb(framework="anything", device="cpu", reset=False) > 10
    assert pm.hook.convbench_synchronize(framework="anything", device="cuda:0") is None
