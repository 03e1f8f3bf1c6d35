"""``convbench compare RUN_A RUN_B``: run B against run A cell by cell, noise-aware."""
from __future__ import annotations

import argparse

from harness.commands.args import alpha_arg, percent_arg
from harness.results.comparison import compare_runs
from harness.results.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD


def add_parser(sub: argparse._SubParsersAction) -> None:
    comp = sub.add_parser("compare", help="compare run B with run A cell by cell, noise-aware")
    comp.add_argument("run_a", metavar="RUN_A", help="the baseline run directory")
    comp.add_argument("run_b", metavar="RUN_B", help="the run directory compared with it")
    comp.add_argument("--threshold", type=percent_arg, default=DEFAULT_THRESHOLD, metavar="PCT",
                      help="smallest relative change that counts, e.g. 5 or 5%% (default 5)")
    comp.add_argument("--alpha", type=alpha_arg, default=DEFAULT_ALPHA, help="significance level (default 0.05)")
    comp.add_argument("--fail-on-regression", type=percent_arg, metavar="PCT",
                      help="exit 1 if a cell is significantly slower by more than PCT, or failed only in B "
                           "(default: no gate, exit 0)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    text, code = compare_runs(args.run_a, args.run_b, threshold=args.threshold, alpha=args.alpha,
                              fail_on=args.fail_on_regression)
    print(text)
    return code
