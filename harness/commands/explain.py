"""``convbench explain``: why one framework is slower than another on a network: every layer (or block, ``--depth``)
of the model's shared graph built alone by each framework's plugin and timed as speed mode times a step, beside the
network's own step; the unattributed remainder per framework; the layers that explain most of each difference.
Writes explain.json (every figure and raw sample), explain.csv and report.html to a new folder (docs/explain.md)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.atomic import write_atomic
from harness.commands.args import (
    add_interpreter_options,
    device_arg,
    fraction_pct_arg,
    names_once,
    non_negative_int,
    on_off,
    one_of,
    positive_float,
    positive_int,
)
from harness.devices import CPU
from harness.errors import ConvbenchError
from harness.model.layers import layer_specs
from harness.native import PHASES
from harness.orchestrator.explain import ExplainRequest, explain_framework
from harness.orchestrator.interpreters import resolve_pythons
from harness.orchestrator.probes import probe_framework
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.results import explain as results
from harness.results.rundir import new_run_dir
from harness.settings import RunSettings, default_batch, default_threads

MAX_TIME, MIN_STEPS, TARGET = 2.0, 10, 0.02   # per series: each node's forward and phase, and the network's


def add_parser(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser("explain", help="per-layer time of a network in every framework: where a difference comes from")
    ex.add_argument("--model", required=True, help="the network (convbench list models)")
    ex.add_argument("--frameworks", type=names_once,
                    help="comma-separated; default: every installed one (and any given a --python)")
    ex.add_argument("--device", type=device_arg, help="cpu (default), cuda or cuda:N")
    ex.add_argument("--phase", type=one_of(*PHASES), default="train_step", metavar="|".join(PHASES),
                    help="forward, forward_backward or train_step (default); each node's forward is timed too")
    ex.add_argument("--depth", type=positive_int, metavar="N",
                    help="time the nodes N levels below the network's body (1: its blocks); default: every layer")
    ex.add_argument("--method", type=one_of("cells", "profiler"), default="cells", metavar="cells|profiler",
                    help="cells (default): each node built alone by the plugin and timed; profiler: the framework's "
                         "profiler over the network's own step, its ops mapped to layers (torch, JAX)")
    ex.add_argument("--batch-size", type=positive_int, metavar="N",
                    help="default: speed mode's (128, or 32 for 224x224 models)")
    ex.add_argument("--threads", type=positive_int, help="CPU threads per worker (default: all cores)")
    ex.add_argument("--max-time", type=positive_float, metavar="SECONDS", default=MAX_TIME,
                    help=f"wall seconds per series: each node's forward and phase (default {MAX_TIME:g})")
    ex.add_argument("--min-steps", type=positive_int, metavar="N", default=MIN_STEPS,
                    help=f"samples before a series may stop (default {MIN_STEPS})")
    ex.add_argument("--precision-target", type=fraction_pct_arg, metavar="PCT", default=TARGET,
                    help=f"stop a series once its median's 95 %% interval is within PCT %% of it (default {100 * TARGET:g}%%, "
                         f"a fraction of {TARGET:g})")
    ex.add_argument("--compile", type=one_of("auto", "none", "default", "xla"), default="auto", metavar="MODE",
                    help="auto (default), none, default or xla, as in convbench run")
    ex.add_argument("--precision", type=one_of("fp32", "bf16", "fp16"), default="fp32", metavar="fp32|bf16|fp16",
                    help="as in convbench run (default fp32)")
    ex.add_argument("--layout", type=one_of("native", "nchw", "nhwc"), default="native", metavar="native|nchw|nhwc",
                    help="as in convbench run (default native)")
    ex.add_argument("--tf32", type=on_off, default=True, metavar="on|off", help="default on")
    ex.add_argument("--autotune", type=on_off, default=True, metavar="on|off", help="default on")
    ex.add_argument("--seed", type=non_negative_int, default=0, help="weights and inputs (default 0)")
    ex.add_argument("--timeout", type=positive_float, metavar="SECONDS", help="per framework (default: none)")
    ex.add_argument("--output", metavar="DIR", help="parent of the new folder (default ./results/explain)")
    add_interpreter_options(ex)


def say(text: str) -> None:
    print(f"[explain] {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    regs = build_registries(get_plugin_manager())
    model = regs.models.get(args.model)
    specs = layer_specs(model, args.depth)
    names = args.frameworks or regs.frameworks.names()
    frameworks = [regs.frameworks.get(n) for n in names]
    pythons = resolve_pythons(args.python, args.config, regs.frameworks.names())
    if args.frameworks:
        for spec in frameworks:
            installed, reason = (True, "") if spec.name in pythons else spec.installed()
            if not installed:
                raise ConvbenchError(f"framework {spec.name} is unavailable: {reason}")
    else:
        frameworks = [s for s in frameworks if s.name in pythons or s.installed()[0]]
        if not frameworks:
            raise ConvbenchError("no framework is installed (pip install 'convbench[torch]', for one)")
    device = args.device or CPU
    threads = args.threads or default_threads()
    batch = args.batch_size or default_batch(model.input_shape, "speed")
    settings = RunSettings(mode="speed", dataset="synthetic", epochs=None, batch_size=batch, device=device,
                           threads=threads, compile=args.compile, precision=args.precision, layout=args.layout,
                           tf32=args.tf32, autotune=args.autotune, seed=args.seed, max_time=args.max_time,
                           min_steps=args.min_steps, precision_target=args.precision_target)
    request = ExplainRequest(model.name, args.phase, args.depth, settings, args.timeout, args.method)
    with tempfile.TemporaryDirectory(prefix="convbench-explain-") as tmp:
        probes = {spec.name: probe_framework(spec, threads, Path(tmp) / "probe.log", pythons.get(spec.name))
                  for spec in frameworks}
    if not any(p.available and p.device(device) for p in probes.values()):   # before any folder is made
        seen = "; ".join(f"{n} sees {', '.join(d['name'] for d in p.devices)}" if p.available else f"{n}: {p.reason}"
                         for n, p in probes.items())
        raise ConvbenchError(f"device {device.name!r} not found by any framework asked for ({seen})")
    _, folder = new_run_dir(Path(args.output) if args.output else Path("results") / "explain")
    say(f"{model.name} {args.phase} on {device}, batch {batch}: {len(specs)} "
        f"{'layers' if args.depth is None else f'nodes at depth {args.depth}'} per framework, "
        f"up to {args.max_time:g} s per series; writing {folder}")
    payloads: list[dict[str, Any]] = []
    for spec in frameworks:
        log = folder / f"{spec.name}.log"
        payload = explain_framework(request, spec, probes[spec.name], log, pythons.get(spec.name), say)
        if "error" in payload:
            say(f"{spec.name}: not timed: {payload['error']}")
        payloads.append(payload)
        save(folder, model.name, args.phase, payloads)   # each framework's result kept as it comes
    ex = results.load(payloads, model.name, args.phase)
    how = {"cells": "layer cells: each node built alone", "profiler": "the profiler over the network's step"}
    print(f"convbench explain: {model.name} {args.phase} on {device}, batch {batch} ({how[args.method]})")
    if ex.payloads:
        print(results.table(ex))
        print()
        for line in [*results.remainder_lines(ex), *results.summaries(ex), *results.unstable(ex)]:
            print(line)
    for fw, why in ex.failed.items():
        print(f"{fw}: not timed: {why}")
    written = write_outputs(folder, ex)
    print(f"\nwritten: {', '.join(str(p) for p in written)}")
    return 1 if ex.failed else 0


def save(folder: Path, model: str, phase: str, payloads: list[dict[str, Any]]) -> Path:
    path = folder / "explain.json"
    write_atomic(path, json.dumps({"model": model, "phase": phase, "frameworks": payloads}, indent=1, default=float))
    return path


def write_outputs(folder: Path, ex: results.Explained) -> list[Path]:
    """explain.json, and with a timed framework explain.csv and report.html (without plotly: a note instead)."""
    written = [folder / "explain.json"]
    if not ex.payloads:
        return written
    results.write_csv(ex, folder / "explain.csv")
    written.append(folder / "explain.csv")
    try:
        from harness.results.explain_html import write_html
        written.append(write_html(ex, folder / "report.html"))
    except ImportError as exc:
        print(f"report.html not written: {exc.name} is not installed (pip install 'convbench[report]')")
    return written
