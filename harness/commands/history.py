"""``convbench history RESULTS_DIR``: every run under a folder as one table, trends, and the runs where cells changed."""
from __future__ import annotations

import argparse

from harness.commands.args import alpha_arg, name_list, percent_arg
from harness.results.history import write_history
from harness.results.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD


def add_parser(sub: argparse._SubParsersAction) -> None:
    hist = sub.add_parser("history", help="every run under a folder: history.csv, history.html, changes between runs")
    hist.add_argument("results_dir", metavar="RESULTS_DIR", help="a folder of run directories (e.g. results/)")
    hist.add_argument("--models", type=name_list, default=[], metavar="M,M",
                      help="only these models (comma-separated; default: every model)")
    hist.add_argument("--frameworks", type=name_list, default=[], metavar="F,F",
                      help="only these frameworks (comma-separated; default: every framework)")
    for alias in ("models", "frameworks"):   # the singular spellings of earlier versions, kept working, not shown
        hist.add_argument(f"--{alias[:-1]}", type=name_list, dest=alias, help=argparse.SUPPRESS)
    hist.add_argument("--output", metavar="DIR", help="folder for history.csv and history.html (default: RESULTS_DIR)")
    hist.add_argument("--threshold", type=percent_arg, default=DEFAULT_THRESHOLD, metavar="PCT",
                      help="smallest relative change that counts, e.g. 5 or 5%% (default 5, as compare)")
    hist.add_argument("--alpha", type=alpha_arg, default=DEFAULT_ALPHA,
                      help="significance level (default 0.05); change points: the false discovery rate across cells")
    hist.add_argument("--baseline", metavar="RUN",
                      help="also compare every run with this one (a run folder, or a run id, under RESULTS_DIR; "
                           "default: none, each change point is then also given against the cell's first run)")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    text, files = write_history(args.results_dir, args.output, models=args.models, frameworks=args.frameworks,
                                threshold=args.threshold, alpha=args.alpha, baseline=args.baseline)
    print(text)
    print("\n".join(f"{f.name}: {f}" for f in files))
    return 0
