"""The single place that assembles the plugin manager and the registries built from it."""
from __future__ import annotations

import os
from dataclasses import dataclass

import pluggy

from harness import PROJECT, hookspecs
from harness.frameworks import FrameworkSpec
from harness.graph import ModelDef
from harness.registry import Registry

DISABLE_ENV = "CONVBENCH_DISABLE_PLUGINS"


def get_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """Hookspecs added, plugins named in $CONVBENCH_DISABLE_PLUGINS blocked, the ``convbench``
    entry-point group loaded (built-in plugins come through it too), then ``check_pending``."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in os.environ.get(DISABLE_ENV, "").split(","))):
        pm.set_blocked(name)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(PROJECT)
    pm.check_pending()
    return pm


@dataclass
class Registries:
    frameworks: Registry[FrameworkSpec]
    models: Registry[ModelDef]


def build_registries(pm: pluggy.PluginManager) -> Registries:
    regs = Registries(Registry("framework"), Registry("model"))
    pm.hook.convbench_add_frameworks(registry=regs.frameworks)
    pm.hook.convbench_add_models(registry=regs.models)
    return regs
