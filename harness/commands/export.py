"""``convbench export RUN_DIR --to FORMAT``: a finished run in another tool's format or store."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ConvbenchError
from harness.results.export import default_output, pytest_benchmark_json
from harness.results.export_mlflow import DB_NAME, DEFAULT_EXPERIMENT, export_mlflow
from harness.results.rundir import write_json
from harness.results.runs import load_run

HELP = "write a finished run in another tool's format (pytest-benchmark JSON, an MLflow tracking store)"
FORMATS = ("pytest-benchmark", "mlflow")
# the options that belong to one format only
ONLY = {"output": "pytest-benchmark", "tracking_uri": "mlflow", "experiment": "mlflow"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser("export", help=HELP)
    exp.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (results/<run-id>)")
    exp.add_argument("--to", required=True, choices=FORMATS, metavar="FORMAT",
                     help="pytest-benchmark: the JSON pytest-benchmark writes and compares; "
                          "mlflow: one MLflow run per cell in a tracking store")
    exp.add_argument("--output", metavar="FILE",
                     help="pytest-benchmark: where to write it (default: RUN_DIR/pytest-benchmark.json)")
    exp.add_argument("--tracking-uri", metavar="URI",
                     help=f"mlflow: the tracking store (default: $MLFLOW_TRACKING_URI, else sqlite:///RUN_DIR/{DB_NAME})")
    exp.add_argument("--experiment", metavar="NAME",
                     help=f"mlflow: the experiment, created if missing (default: {DEFAULT_EXPERIMENT})")


def run(args: argparse.Namespace, argv: list[str]) -> int:
    for dest, fmt in ONLY.items():
        if getattr(args, dest) is not None and args.to != fmt:
            raise ConvbenchError(f"--{dest.replace('_', '-')} is for --to {fmt} only")
    run = load_run(args.run_dir)
    if args.to == "mlflow":
        done = export_mlflow(run, args.tracking_uri, args.experiment or DEFAULT_EXPERIMENT)
        failed = sum(status != "ok" for _, _, status in done.runs)
        print(f"mlflow: {len(done.runs)} cell(s) of {run.name} ({failed} not ok) -> experiment {done.experiment!r} "
              f"at {done.uri}" + (f" (replacing {done.replaced} run(s) of an earlier export)" if done.replaced else ""))
        for cell, run_id, status in done.runs:
            print(f"  {cell}: {status}, MLflow run {run_id}")
        print(f"view: mlflow ui --backend-store-uri {done.uri}")
        return 0
    out = Path(args.output) if args.output else default_output(run.path, args.to)
    write_json(out, pytest_benchmark_json(run))
    print(f"{args.to}: {out}")
    return 0
