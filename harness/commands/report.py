"""``convbench report RUN_DIR``: report.md and PNG plots of a finished run."""
from __future__ import annotations

import argparse

from harness.results.report import write_report


def add_parser(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="write report.md and PNG plots for a finished run")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (results/<run-id>)")
    rep.add_argument("--output", metavar="DIR", help="folder for report.md and the plots (default: RUN_DIR)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    print(f"report: {write_report(args.run_dir, args.output)}")
    return 0
