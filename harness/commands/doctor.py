"""``convbench doctor``: the first command on a new machine. Per framework, in its own worker: the device is
seen, synchronisation waits, the peak-memory counter resets, the TF32 and autotune switches take effect and the
fp32 arithmetic matches them, logits on the device equal the CPU's, the framework's GPU is NVML's, the harness's
clock agrees with the device's, achieved FLOP/s lie under the peak and above a floor, three train-mode steps and a
20-step speed cell run; with two GPUs, a two-rank data-parallel run. Exit 0 only if every check that applies passed."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.commands.args import add_interpreter_options, device_arg, names_once, positive_int
from harness.devices import Device
from harness.errors import ConvbenchError
from harness.orchestrator.doctor import run_doctor
from harness.orchestrator.interpreters import resolve_pythons
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.results.table import text_table
from harness.settings import default_threads


def add_parser(sub: argparse._SubParsersAction) -> None:
    doc = sub.add_parser("doctor", help="check that every framework measures this machine correctly")
    doc.add_argument("--device", type=device_arg, help="cpu, cuda or cuda:N (default: the first GPU seen, else cpu)")
    doc.add_argument("--frameworks", type=names_once,
                     help="comma-separated; default: every installed one (and any given a --python)")
    doc.add_argument("--threads", type=positive_int, help="CPU threads per worker (default: all cores)")
    add_interpreter_options(doc)


def say_device(device: Device) -> None:
    print(f"[doctor] checking on {device}: per framework two workers (TF32 and autotune on, then off)"
          f"{', each a minute or more on a GPU' if device.is_gpu else ''}", file=sys.stderr, flush=True)


def say_line(c: dict[str, Any]) -> None:
    """One check as it comes, on stderr: the table on stdout waits for the last worker."""
    switches = f" ({c['switches']})" if c["switches"] else ""
    print(f"[doctor] {c['framework']}{switches} {c['name']}: {c['status']}: {c['detail']}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    regs = build_registries(get_plugin_manager())
    specs = [regs.frameworks.get(n) for n in (args.frameworks or regs.frameworks.names())]
    pythons = resolve_pythons(args.python, args.config, regs.frameworks.names())
    if args.frameworks:
        for spec in specs:
            installed, reason = (True, "") if spec.name in pythons else spec.installed()
            if not installed:
                raise ConvbenchError(f"framework {spec.name} is unavailable: {reason}")
    with tempfile.TemporaryDirectory(prefix="convbench-doctor-") as tmp:
        device, lines = run_doctor(specs, args.device, args.threads or default_threads(), Path(tmp) / "probe.log",
                                   pythons, on_device=say_device, on_line=say_line)
    print(f"convbench doctor on {device}")
    print(text_table(["framework", "switches", "check", "result", "measured"],
                     [[c["framework"], c["switches"] or "-", c["name"], c["status"], c["detail"]] for c in lines]))
    passed = sum(c["status"] == "ok" for c in lines)
    failed = [c for c in lines if c["status"] == "FAIL"]
    skipped = sum(c["status"] == "n/a" for c in lines)
    verdict = "PASS" if passed and not failed else "FAIL"
    print(f"\nverdict: {verdict}: {passed} checks passed, {len(failed)} failed, {skipped} not applicable on {device}")
    return 0 if verdict == "PASS" else 1
