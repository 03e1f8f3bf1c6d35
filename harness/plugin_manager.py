"""The single place that assembles the plugin manager and the registries built from it.

Order (as pytest and tox do it): hookspecs; plugins blocked by $CONVBENCH_DISABLE_PLUGINS; the built-in
plugins from ``BUILTIN`` (no packaging metadata needed, so a source checkout works before it is installed);
third-party plugins from the ``convbench`` entry-point group; modules named in $CONVBENCH_PLUGINS; then
``check_pending``. A plugin that fails to import is reported (``convbench plugins``) and skipped.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import pluggy

from harness import PROJECT, __version__, hookspecs
from harness.frameworks import FrameworkSpec
from harness.model.graph import ModelDef
from harness.registry import Registry

DISABLE_ENV = "CONVBENCH_DISABLE_PLUGINS"
EXTRA_ENV = "CONVBENCH_PLUGINS"
# name -> "module" or "module:attribute" (an object whose methods are hook implementations)
BUILTIN = (
    ("models", "harness.model.networks"),
    ("cpu", "harness.hardware.cpu"),
    ("torch", "convbench_torch:plugin"),
    ("tensorflow", "convbench_tensorflow:plugin"),
    ("paddle", "convbench_paddle:plugin"),
)
# in a source checkout the framework plugins live in plugins/ beside harness/ (installed, they are top-level)
SOURCE_PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


@dataclass
class PluginOrigin:
    """Where a plugin came from: its distribution and version, or why it failed to load."""
    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    disabled: bool = False
    kind: str = ""          # "built-in", "entry point" or "$CONVBENCH_PLUGINS"


@dataclass
class LoadReport:
    origins: dict[str, PluginOrigin] = field(default_factory=dict)


def disabled_names() -> list[str]:
    return [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]


def load_object(target: str) -> Any:
    """``module`` or ``module:attribute`` -> the module or the attribute."""
    module_name, _, attribute = target.partition(":")
    if importlib.util.find_spec(module_name.split(".")[0]) is None and (SOURCE_PLUGINS / module_name).is_dir():
        sys.path.append(str(SOURCE_PLUGINS))
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def get_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """Hookspecs added, disabled plugins blocked, built-ins and third-party plugins registered (unless
    ``load_entrypoints`` is False: a bare manager for tests), then ``check_pending``."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    report = LoadReport()
    pm.convbench_origins = report.origins  # type: ignore[attr-defined]
    for name in disabled_names():
        pm.set_blocked(name)
        report.origins[name] = PluginOrigin(name, disabled=True)
    if load_entrypoints:
        for name, target in BUILTIN:
            _register(pm, report, PluginOrigin(name, PROJECT, __version__, kind="built-in"), partial(load_object, target))
        for ep in importlib.metadata.entry_points(group=PROJECT):
            dist = getattr(ep, "dist", None)
            origin = PluginOrigin(ep.name, dist.metadata["Name"] if dist else None, dist.version if dist else None,
                                  kind="entry point")
            _register(pm, report, origin, ep.load)
        for target in filter(None, (m.strip() for m in os.environ.get(EXTRA_ENV, "").split(","))):
            _register(pm, report, PluginOrigin(target, kind=f"${EXTRA_ENV}"), partial(load_object, target))
    pm.check_pending()
    return pm


def _register(pm: pluggy.PluginManager, report: LoadReport, origin: PluginOrigin, load: Callable[[], Any]) -> None:
    """Loads and registers one plugin; a failure is kept in the report, never raised (one broken plugin
    must not take the others down). Blocked or already registered names are left alone."""
    if pm.is_blocked(origin.name) or pm.has_plugin(origin.name):
        return
    try:
        pm.register(load(), name=origin.name)
    except Exception as exc:
        origin.error = f"{type(exc).__name__}: {exc}"
    report.origins[origin.name] = origin


@dataclass
class Registries:
    frameworks: Registry[FrameworkSpec]
    models: Registry[ModelDef]


def build_registries(pm: pluggy.PluginManager) -> Registries:
    """Frameworks and models in plugin registration order (built-ins first), not pluggy's last-first call order,
    so tables list torch, tensorflow, paddle, then third-party frameworks."""
    regs = Registries(Registry("framework"), Registry("model"))
    for impl in pm.hook.convbench_add_frameworks.get_hookimpls():
        impl.function(registry=regs.frameworks)
    for impl in pm.hook.convbench_add_models.get_hookimpls():
        impl.function(registry=regs.models)
    return regs
