"""``convbench verify``: equal parameter counts and equal logits of every model in every pair of frameworks."""
from __future__ import annotations

import argparse

from harness.commands.args import add_interpreter_options, names_once, non_negative_int, positive_int
from harness.model.verification import table
from harness.orchestrator.interpreters import resolve_pythons
from harness.orchestrator.verify import usable_frameworks, verify
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import default_threads


def add_parser(sub: argparse._SubParsersAction) -> None:
    ver = sub.add_parser("verify", help="prove equal parameter counts and equal logits across frameworks")
    ver.add_argument("--frameworks", type=names_once,
                     help="comma-separated; default: every installed one (and any given a --python)")
    ver.add_argument("--models", type=names_once, help="comma-separated; default: every model")
    ver.add_argument("--seed", type=non_negative_int, default=0,
                     help="seed of the shared weights and inputs every framework computes logits of (default 0)")
    ver.add_argument("--threads", type=positive_int, help="CPU threads per worker (default: all cores)")
    add_interpreter_options(ver)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Exits 0 when every model agrees in every framework pair, 1 otherwise."""
    regs = build_registries(get_plugin_manager())
    pythons = resolve_pythons(args.python, args.config, regs.frameworks.names())
    specs = usable_frameworks([regs.frameworks.get(n) for n in (args.frameworks or regs.frameworks.names())],
                              explicit=bool(args.frameworks), pythons=pythons)
    models = [regs.models.get(n) for n in (args.models or regs.models.names())]
    agreements = verify(specs, models, args.seed, args.threads or default_threads(), pythons)
    print(table(agreements, [s.name for s in specs]))
    return 0 if all(c.ok for c in agreements) else 1
