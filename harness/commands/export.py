"""``convbench export RUN_DIR --to FORMAT``: a finished run in another tool's format."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.results.export import default_output, pytest_benchmark_json
from harness.results.rundir import write_json
from harness.results.runs import load_run

HELP = "write a finished run in another tool's format (pytest-benchmark JSON)"
FORMATS = ("pytest-benchmark",)


def add_parser(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser("export", help=HELP)
    exp.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (results/<run-id>)")
    exp.add_argument("--to", required=True, choices=FORMATS, metavar="FORMAT",
                     help="pytest-benchmark: the JSON pytest-benchmark writes and compares")
    exp.add_argument("--output", metavar="FILE", help="where to write it (default: RUN_DIR/pytest-benchmark.json)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    run = load_run(args.run_dir)
    out = Path(args.output) if args.output else default_output(run.path, args.to)
    write_json(out, pytest_benchmark_json(run))
    print(f"{args.to}: {out}")
    return 0
