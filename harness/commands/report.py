"""``convbench report RUN_DIR``: report.md, PNG plots and the self-contained report.html of a finished run."""
from __future__ import annotations

import argparse

from harness.results.report import write_report
from harness.results.report_html import write_html


def add_parser(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="write report.md, PNG plots and report.html for a finished run")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (results/<run-id>)")
    rep.add_argument("--output", metavar="DIR", help="folder for the report and the plots (default: RUN_DIR)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    print(f"report: {write_report(args.run_dir, args.output)}")
    print(f"html: {write_html(args.run_dir, args.output)}")
    return 0
