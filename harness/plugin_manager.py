"""The single place that assembles the plugin manager and the registries built from it."""
from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field

import pluggy

from harness import PROJECT, hookspecs
from harness.frameworks import FrameworkSpec
from harness.graph import ModelDef
from harness.registry import Registry

DISABLE_ENV = "CONVBENCH_DISABLE_PLUGINS"
EXTRA_ENV = "CONVBENCH_PLUGINS"


@dataclass
class PluginOrigin:
    """Where a plugin came from: its distribution and version, or why it failed to load."""
    name: str
    distribution: str | None = None
    version: str | None = None
    error: str | None = None
    disabled: bool = False


@dataclass
class LoadReport:
    origins: dict[str, PluginOrigin] = field(default_factory=dict)


def disabled_names() -> list[str]:
    return [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]


def get_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """Hookspecs added, plugins named in $CONVBENCH_DISABLE_PLUGINS blocked, the ``convbench``
    entry-point group loaded (built-in plugins come through it too), then ``check_pending``.

    A plugin whose module fails to import is skipped and its error kept in ``pm.convbench_origins``
    (``convbench plugins`` shows it), so one broken plugin never stops the others.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    report = LoadReport()
    pm.convbench_origins = report.origins  # type: ignore[attr-defined]
    for name in disabled_names():
        pm.set_blocked(name)
        report.origins[name] = PluginOrigin(name, disabled=True)
    if load_entrypoints:
        load_entrypoints_into(pm, report)
        load_env_plugins(pm, report)
    pm.check_pending()
    return pm


def load_entrypoints_into(pm: pluggy.PluginManager, report: LoadReport) -> None:
    for ep in importlib.metadata.entry_points(group=PROJECT):
        if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
            continue
        dist = getattr(ep, "dist", None)
        origin = PluginOrigin(ep.name, dist.metadata["Name"] if dist else None, dist.version if dist else None)
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take the others down
            origin.error = f"{type(exc).__name__}: {exc}"
        else:
            pm.register(plugin, name=ep.name)
        report.origins[ep.name] = origin


def load_env_plugins(pm: pluggy.PluginManager, report: LoadReport) -> None:
    """Modules named in $CONVBENCH_PLUGINS (comma-separated), like ``pytest -p``: a plugin used
    without installing it. Workers inherit the variable, so the plugin is loaded there too."""
    import importlib
    for module in filter(None, (m.strip() for m in os.environ.get(EXTRA_ENV, "").split(","))):
        if pm.is_blocked(module) or pm.has_plugin(module):
            continue
        origin = PluginOrigin(module)
        try:
            pm.register(importlib.import_module(module), name=module)
        except Exception as exc:
            origin.error = f"{type(exc).__name__}: {exc}"
        report.origins[module] = origin


@dataclass
class Registries:
    frameworks: Registry[FrameworkSpec]
    models: Registry[ModelDef]


def build_registries(pm: pluggy.PluginManager) -> Registries:
    regs = Registries(Registry("framework"), Registry("model"))
    pm.hook.convbench_add_frameworks(registry=regs.frameworks)
    pm.hook.convbench_add_models(registry=regs.models)
    return regs
