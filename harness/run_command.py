"""``convbench run``: validate everything, then run the matrix cell by cell into a new run directory."""
from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

from harness.datasets import DATASETS, load_dataset
from harness.errors import ConvbenchError
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.records import make_row
from harness.registry import unknown_name
from harness.report import comparison_table, write_csv
from harness.runner import Probe, cell_name, probe_framework, run_cell
from harness.rundir import base_meta, new_run_dir, write_json

DEFAULT_MODELS = ("simple_cnn", "lenet5")
DEFAULT_EPOCHS = {"digits": 10, "cifar10": 200, "synthetic": 1}


def run_matrix(args: argparse.Namespace, argv: list[str]) -> int:
    pm = get_plugin_manager()
    regs = build_registries(pm)
    frameworks = [regs.frameworks.get(n) for n in (args.frameworks or regs.frameworks.names())]
    models = [regs.models.get(n) for n in (args.models or DEFAULT_MODELS)]
    if args.dataset not in DATASETS:
        raise ConvbenchError(unknown_name("dataset", args.dataset, DATASETS))
    if args.dataset != "synthetic":
        data = load_dataset(args.dataset, data_dir=args.data_dir, checksums_off=args.no_checksum)
        for m in models:
            if tuple(m.input_shape) != data.shape or m.num_classes != data.num_classes:
                raise ConvbenchError(f"model {m.name} takes {'x'.join(map(str, m.input_shape))} images and "
                                     f"{m.num_classes} classes; dataset {args.dataset} has "
                                     f"{'x'.join(map(str, data.shape))} and {data.num_classes}: use --dataset synthetic")
    epochs = args.epochs or DEFAULT_EPOCHS[args.dataset]
    threads = args.threads or os.cpu_count() or 1
    run_id, run_dir = new_run_dir(args.output)
    settings = {"dataset": args.dataset, "data_dir": args.data_dir, "epochs": epochs, "batch_size": args.batch_size,
                "lr": args.lr, "momentum": 0.9, "weight_decay": 2e-4, "augment": args.augment, "seed": args.seed,
                "threads": threads, "device": args.device, "no_checksum": args.no_checksum}
    meta = base_meta(run_id, argv, settings)
    print(f"run {run_id}: {len(frameworks)} framework(s) x {len(models)} model(s) on {args.device}, "
          f"{args.dataset}, {epochs} epoch(s), batch {args.batch_size} -> {run_dir}")

    probes: dict[str, Probe] = {}
    for spec in frameworks:
        probes[spec.name] = p = probe_framework(spec, threads, run_dir / "probe.log")
        devices = ", ".join(d["name"] for d in p.devices)
        print(f"  {spec.name}: {p.version} ({devices})" if p.available else f"  {spec.name}: unavailable ({p.reason})")
    meta["frameworks"] = {name: vars(p) for name, p in probes.items()}
    if args.device != "cpu" and not any(p.available and p.device(args.device) for p in probes.values()):
        write_json(run_dir / "meta.json", meta)
        raise ConvbenchError(f"device {args.device!r} not found: no available framework sees it on this machine")

    rows: list[dict[str, Any]] = []
    for spec in frameworks:
        probe = probes[spec.name]
        for model in models:
            cell = {"run_id": run_id, "framework": spec.name, "framework_version": probe.version, "model": model.name,
                    "mode": "train", **settings}
            dev = probe.device(args.device) if probe.available else None
            if not probe.available:
                row = make_row(cell, status="unavailable", error=probe.reason)
            elif dev is None:
                row = make_row(cell, status="unavailable", error=f"{spec.name} sees no device {args.device!r}")
            else:
                cell["device"] = dev["name"]
                name = cell_name(cell)
                cell["checkpoint"] = str(run_dir / "cells" / name / "final.npz")
                print(f"[{name}] start")
                row = run_cell(cell, spec, run_dir / "cells" / name, lambda line, n=name: print(f"[{n}] {line}", flush=True))
                row["device_name"] = dev.get("description")
                print(f"[{name}] {row['status']}" + (f": {row['error']}" if row["error"] else ""))
            rows.append(row)
            write_csv(rows, run_dir / "results.csv")
    meta["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta["statuses"] = {r["cell"]: r["status"] for r in rows}
    write_json(run_dir / "meta.json", meta)
    print()
    print(comparison_table(rows))
    print(f"\nresults: {run_dir / 'results.csv'}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1
