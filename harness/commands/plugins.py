"""``convbench plugins``: each plugin, where it comes from, the hooks it implements; each framework's state.
Exits 1 when a plugin failed to load (each one's reason printed), so it doubles as a health check."""
from __future__ import annotations

import argparse

from harness.commands.args import add_interpreter_options
from harness.orchestrator.interpreters import interpreter_info, resolve_pythons
from harness.plugin_manager import build_registries, get_plugin_manager


def add_parser(sub: argparse._SubParsersAction) -> None:
    plugins = sub.add_parser("plugins", help="list plugins, their versions, availability and hooks")
    add_interpreter_options(plugins)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    pm = get_plugin_manager()
    regs = build_registries(pm)
    origins = pm.convbench_origins
    names = list(dict.fromkeys([*origins, *(n for n, p in pm.list_name_plugin() if p is not None)]))
    for name in names:
        origin = origins.get(name)
        where = (f"{origin.distribution} {origin.version}" if origin and origin.distribution
                 else origin.kind if origin and origin.kind else "(registered directly)")
        if origin and origin.disabled:
            print(f"{name}: disabled by CONVBENCH_DISABLE_PLUGINS")
            continue
        if origin and origin.error:
            print(f"{name}: {where}: failed to load: {origin.error}")
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(pm.get_plugin(name)) or [])
        print(f"{name}: {where}" + (f" ({origin.kind})" if origin and origin.kind else ""))
        print(f"  hooks: {', '.join(hooks)}")
    pythons = resolve_pythons(args.python, args.config, regs.frameworks.names())
    for spec in regs.frameworks:
        found = interpreter_info(spec, pythons.get(spec.name))
        build = f" build {found['build']}" if found.get("build") else ""
        where = f" in {found['executable']} (Python {found['python']}, convbench {found['convbench']}{build})"
        state = f"available ({spec.module} {found['version']})" if found["installed"] else f"unavailable: {found['reason']}"
        print(f"framework {spec.name}: {state}{where}")
    return 1 if any(origin.error for origin in origins.values()) else 0
