"""The single place that assembles the plugin manager and the registries built from it.

Order (as pytest and tox do it): hookspecs; plugins blocked by $CONVBENCH_DISABLE_PLUGINS; the built-in
plugins from ``BUILTIN`` (no packaging metadata needed, so a source checkout works before it is installed);
third-party plugins from the ``convbench`` entry-point group; modules named in $CONVBENCH_PLUGINS; then
``check_pending``. A plugin that fails to import, that pluggy refuses (a misspelt ``convbench_*`` hook, an
argument the hook does not have) or whose registry hook raises is reported (``convbench plugins``, and when a
framework of its name is asked for) and skipped; the other plugins and every command still work.
"""
from __future__ import annotations

import difflib
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
from harness.errors import ConvbenchError
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
        plugin = load()
        pm.register(plugin, name=origin.name)
    except Exception as exc:
        origin.error = one_line(f"{type(exc).__name__}: {exc}")
        if pm.has_plugin(origin.name):  # an older pluggy may leave it half registered
            pm.unregister(name=origin.name)
    else:
        if unknown := unknown_hooks(pm, plugin):
            pm.unregister(plugin)   # check_pending would refuse it, and with it every command
            origin.error = "; ".join(unknown)
    report.origins[origin.name] = origin


def one_line(text: str) -> str:
    return " ".join(text.split())


def unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """What pluggy's ``check_pending`` would refuse in ``plugin``: each hook implementation no hookspec declares,
    as "unknown hook 'convbench_add_model' (did you mean 'convbench_add_models'?)"."""
    specs = [name for name, caller in vars(pm.hook).items() if not name.startswith("_") and caller.has_spec()]
    out = []
    for caller in pm.get_hookcallers(plugin) or []:
        if not caller.has_spec() and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls()):
            close = difflib.get_close_matches(caller.name, specs, n=1)
            out.append(f"unknown hook {caller.name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return out


def describe(pm: pluggy.PluginManager, name: str) -> str:
    """"plugin 'torch' (built-in)", "plugin 'jax' (entry point of convbench-jax 0.1.0)": where a plugin came from."""
    origin = getattr(pm, "convbench_origins", {}).get(name)
    if origin is None or not origin.kind:
        return f"plugin {name!r}"
    dist = f" of {origin.distribution} {origin.version}" if origin.distribution and origin.kind == "entry point" else ""
    return f"plugin {name!r} ({origin.kind}{dist})"


@dataclass
class Registries:
    frameworks: Registry[FrameworkSpec]
    models: Registry[ModelDef]


def build_registries(pm: pluggy.PluginManager) -> Registries:
    """Frameworks and models in plugin registration order (built-ins first), not pluggy's last-first call order,
    so tables list torch, tensorflow, paddle, then third-party frameworks.

    A name two plugins register is a one-line error naming both. A plugin whose hook raises is reported like one
    that failed to import (its entries withdrawn, the plugin unregistered). A framework whose plugin of the same
    name failed to load or is disabled answers ``get`` with that reason instead of "unknown"."""
    regs = Registries(Registry("framework"), Registry("model"))
    origins: dict[str, PluginOrigin] = getattr(pm, "convbench_origins", {})
    for hook, registry in ((pm.hook.convbench_add_frameworks, regs.frameworks), (pm.hook.convbench_add_models, regs.models)):
        for impl in hook.get_hookimpls():
            registry.contributor = describe(pm, impl.plugin_name)
            try:
                impl.function(registry=registry)
            except ConvbenchError:
                raise
            except Exception as exc:
                for reg in (regs.frameworks, regs.models):
                    reg.withdraw(registry.contributor)
                origin = origins.setdefault(impl.plugin_name, PluginOrigin(impl.plugin_name))
                origin.error = one_line(f"{hook.name} raised {type(exc).__name__}: {exc}")
                pm.unregister(impl.plugin)
            finally:
                registry.contributor = None
    broken = [name for name, origin in origins.items() if origin.error]
    for registry in (regs.frameworks, regs.models):
        registry.broken = broken
    for name, origin in origins.items():
        if name not in regs.frameworks and (origin.error or origin.disabled):
            regs.frameworks.unavailable[name] = (f"its plugin failed to load: {origin.error}" if origin.error
                                                 else f"its plugin is disabled by {DISABLE_ENV}")
    return regs
