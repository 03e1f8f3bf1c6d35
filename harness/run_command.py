"""``convbench run``: validate everything, write the plan, then run it cell by cell into the journal.

``--resume RUN_DIR`` reads the plan back and runs only the cells without an ``ok`` row.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from harness import journal
from harness.datasets import DATASETS, load_dataset
from harness.errors import ConvbenchError
from harness.executors import make_executor
from harness.frameworks import FrameworkSpec
from harness.plugin_manager import Registries, build_registries, get_plugin_manager
from harness.progress import Progress
from harness.recipes import load_recipe_file, resolve
from harness.records import make_row
from harness.registry import unknown_name
from harness.report import comparison_table, write_csv
from harness.rundir import base_meta, new_run_dir, write_json
from harness.runner import Probe, cell_name, probe_framework, run_cell, run_worker, worker_env

DEFAULT_MODELS = ("simple_cnn", "lenet5")
RECIPE_BATCH = 128
DEFAULT_EPOCHS = {"digits": 10, "cifar10": 200, "synthetic": 1}
PLAN = "plan.json"
RUN_DEFAULTS: dict[str, Any] = {"mode": "train", "device": "cpu", "seed": 0, "seeds": 1, "warmup": 10, "steps": 100,
                                "compile": "auto", "precision": "fp32", "layout": "native"}
MATRIX_OPTIONS = ("mode", "warmup", "steps", "compile", "precision", "layout", "device", "frameworks", "models",
                  "dataset", "data_dir", "epochs", "batch_size", "lr", "seed", "threads", "timeout", "oom_retry",
                  "augment", "no_checksum", "recipe", "schedule", "momentum", "weight_decay", "optimizer", "target",
                  "seeds", "resume_from", "executor", "ray_address", "nproc", "devices")


def run_matrix(args: argparse.Namespace, argv: list[str]) -> int:
    regs = build_registries(get_plugin_manager())
    plan = resume_plan(args, regs) if args.resume else new_plan(args, argv, regs)
    return execute(plan, regs)


def new_plan(args: argparse.Namespace, argv: list[str], regs: Registries) -> dict[str, Any]:
    for option, default in RUN_DEFAULTS.items():
        if getattr(args, option) is None:
            setattr(args, option, default)
    if args.dataset is None:
        args.dataset = "synthetic" if args.mode == "speed" else "digits"
    frameworks = [regs.frameworks.get(n).name for n in (args.frameworks or regs.frameworks.names())]
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
    file_values = load_recipe_file(args.recipe) if args.recipe else {}
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "momentum": args.momentum,
                 "weight_decay": args.weight_decay, "schedule": args.schedule, "optimizer": args.optimizer,
                 "target": args.target, "augment": True if args.augment else None}
    recipe = resolve(file_values, overrides, DEFAULT_EPOCHS[args.dataset])
    if args.mode == "speed":
        recipe.update(epochs=None, batch_size=args.batch_size or file_values.get("batch_size"), target=None)
    resume_from = str(Path(args.resume_from).resolve()) if args.resume_from else None
    if resume_from:
        check_resume_checkpoint(resume_from, frameworks, models, recipe)
    settings = {"mode": args.mode, "dataset": args.dataset,
                "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else None, **recipe,
                "seed": args.seed, "threads": args.threads or os.cpu_count() or 1, "device": args.device,
                "no_checksum": args.no_checksum, "timeout": args.timeout, "oom_retry": args.oom_retry,
                "warmup": args.warmup, "steps": args.steps, "compile": args.compile, "precision": args.precision,
                "layout": args.layout, "resume_from": resume_from, "executor": args.executor or "local",
                "ray_address": args.ray_address, **data_parallel_settings(args)}
    run_id, run_dir = new_run_dir(args.output)
    plan = {"run_id": run_id, "run_dir": str(run_dir), "argv": argv, "frameworks": frameworks,
            "models": [m.name for m in models], "seeds": list(range(args.seed, args.seed + args.seeds)),
            "settings": settings}
    write_json(run_dir / PLAN, plan)
    return plan


def resume_plan(args: argparse.Namespace, regs: Registries) -> dict[str, Any]:
    given = [f"--{o.replace('_', '-')}" for o in MATRIX_OPTIONS if getattr(args, o) not in (None, False)]
    if given:
        raise ConvbenchError(f"--resume reuses the run's own settings; drop {', '.join(given)}")
    run_dir = Path(args.resume)
    try:
        plan = json.loads((run_dir / PLAN).read_text())
    except (OSError, ValueError):
        raise ConvbenchError(f"{str(run_dir)!r} is not a convbench run directory (no readable {PLAN})") from None
    plan["run_dir"] = str(run_dir)
    for name in plan["frameworks"]:
        regs.frameworks.get(name)
    for name in plan["models"]:
        regs.models.get(name)
    return plan


def execute(plan: dict[str, Any], regs: Registries) -> int:
    run_dir, settings, run_id = Path(plan["run_dir"]), plan["settings"], plan["run_id"]
    meta = base_meta(run_id, plan["argv"], settings)
    what = (f"{settings['epochs']} epoch(s)" if settings["mode"] == "train"
            else f"speed: {settings['warmup']} burn-in + {settings['steps']} timed steps")
    try:  # the announcement is inside: a signal handled as print returns must still leave a resumable run
        print(f"run {run_id}: {len(plan['frameworks'])} framework(s) x {len(plan['models'])} model(s) on "
              f"{settings['device']}, {settings['dataset']}, {what}, batch {settings['batch_size'] or 'per model'}"
              f" -> {run_dir}", flush=True)
        probes = probe_all(plan, settings, meta, run_dir, regs)
    except KeyboardInterrupt:
        write_json(run_dir / "meta.json", {**meta, "interrupted": True})
        print(f"\ninterrupted before any cell ran. Resume with: convbench run --resume {run_dir}")
        return 130
    executor = None
    interrupted = False
    try:
        previous = journal.latest(run_dir)
        executor = make_executor(settings.get("executor", "local"), settings.get("ray_address"), run_dir)
        for fw in plan["frameworks"]:
            for model in plan["models"]:
                for seed in plan["seeds"]:
                    worlds = (1, settings["world_size"]) if settings.get("world_size", 1) > 1 else (1,)
                    for world in worlds:   # data-parallel cells get a single-device baseline first
                        name, cell, rows = prepare_cell(fw, model, seed, plan, probes[fw], regs, world)
                        if previous.get(name) and all(r["status"] == "ok" for r in previous[name]):
                            print(f"[{name}] ok in an earlier attempt; kept")
                        elif rows is not None:
                            record(run_dir, name, rows)
                        else:
                            executor.submit(name, cell, regs.frameworks.get(fw))
        for name, rows in executor.results():
            record(run_dir, name, add_scaling_efficiency(rows, journal.latest(run_dir)))
    except KeyboardInterrupt:
        if executor is not None:
            executor.cancel()
        interrupted = True
    rows = journal.latest_rows(run_dir)
    write_csv(rows, run_dir / "results.csv")
    meta["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta["interrupted"] = interrupted
    meta["statuses"] = {f"{r['cell']}/{r['phase']}": r["status"] for r in rows}
    write_json(run_dir / "meta.json", meta)
    print()
    print(comparison_table(rows))
    print(f"\nresults: {run_dir / 'results.csv'}")
    if interrupted:
        print(f"interrupted; finished cells are kept. Resume with: convbench run --resume {run_dir}")
        return 130
    return 0 if rows and all(r["status"] == "ok" for r in rows) else 1


def probe_all(plan: dict[str, Any], settings: dict[str, Any], meta: dict[str, Any], run_dir: Path,
              regs: Registries) -> dict[str, Any]:
    """Each framework's probe (in a worker), the CPU GEMM peak for speed runs, and the device check."""
    probes = {name: report_probe(probe_framework(regs.frameworks.get(name), settings["threads"], run_dir / "probe.log"))
              for name in plan["frameworks"]}
    meta["frameworks"] = {name: vars(p) for name, p in probes.items()}
    if settings["mode"] == "speed" and settings["device"] == "cpu" and "cpu_peak_gflops" not in settings:
        settings["cpu_peak_gflops"] = measure_cpu_peak(settings["threads"], run_dir / "probe.log")
        print(f"  cpu fp32 GEMM peak: {settings['cpu_peak_gflops']:.1f} GFLOP/s ({settings['threads']} threads)")
        meta["cpu_peak_gflops"] = settings["cpu_peak_gflops"]
    if settings["device"] != "cpu" and not any(p.available and p.device(settings["device"]) for p in probes.values()):
        write_json(run_dir / "meta.json", meta)
        raise ConvbenchError(f"device {settings['device']!r} not found: no available framework sees it on this machine")
    return probes


def measure_cpu_peak(threads: int, log: Path) -> float | None:
    code, payload = run_worker(["gemm", "-"], worker_env(None, threads), log, 300, lambda line: None)
    return payload.get("gflops") if payload and code == 0 else None


def data_parallel_settings(args: argparse.Namespace) -> dict[str, Any]:
    """--nproc N (CPU processes) or --devices cuda:0,cuda:1 -> world_size and per-rank devices."""
    if args.nproc and args.devices:
        raise ConvbenchError("give --nproc (CPU) or --devices (GPUs), not both")
    if not (args.nproc or args.devices):
        return {"world_size": 1, "devices": None}
    if args.mode == "speed":
        raise ConvbenchError("data-parallel runs (--nproc, --devices) are for train mode")
    if args.executor == "ray":
        raise ConvbenchError("data-parallel cells run with the local executor; drop --executor ray")
    devices = args.devices or ["cpu"] * args.nproc
    bad = [d for d in devices if not re.fullmatch(r"cuda:\d+", d)] if args.devices else []
    if bad:
        raise ConvbenchError(f"--devices takes GPUs as cuda:N, got {', '.join(bad)}; use --nproc N for CPU processes")
    if len(devices) < 2:
        raise ConvbenchError("data-parallel training needs at least 2 devices or processes")
    batch = args.batch_size or RECIPE_BATCH
    if batch % len(devices):
        raise ConvbenchError(f"global batch {batch} does not split evenly over {len(devices)} devices")
    if args.devices:
        args.device = devices[0]
    return {"world_size": len(devices), "devices": devices}


def check_resume_checkpoint(path: str, frameworks: list[str], models: list[Any], recipe: dict[str, Any]) -> None:
    """One clear line now rather than a failed cell later."""
    from harness.weights import check_momentum, check_weights, load_checkpoint
    weights, momentum, meta = load_checkpoint(path)
    if len(models) != 1:
        raise ConvbenchError("--resume-from continues one model; pass exactly one with --models")
    check_weights(models[0], weights, source=f"checkpoint {path!r}")
    if momentum:
        check_momentum(models[0], momentum, source=f"checkpoint {path!r} momentum buffers")
    done = int(meta.get("epoch", 0))
    if recipe["epochs"] is not None and done >= recipe["epochs"]:
        raise ConvbenchError(f"checkpoint {path!r} has {done} epoch(s) already; ask for more with --epochs")


def default_batch(shape: tuple[int, int, int] | list[int], mode: str) -> int:
    return 32 if mode == "speed" and shape[-1] >= 224 else 128


def add_scaling_efficiency(rows: list[dict[str, Any]], done: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """throughput on N devices / (N x throughput of the single-device baseline on the same global batch)."""
    for row in rows:
        world = int(row.get("world_size") or 1)
        if world > 1 and row["status"] == "ok":
            base_name = row["cell"].replace(f"-x{world}", "")
            base = [r for r in done.get(base_name, []) if r["status"] == "ok"]
            if base and base[0].get("images_per_sec"):
                row["scaling_efficiency"] = row["images_per_sec"] / (world * base[0]["images_per_sec"])
    return rows


def record(run_dir: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """The journal first (fsynced), then results.csv rebuilt from it."""
    journal.append(run_dir, name, rows)
    write_csv(journal.latest_rows(run_dir), run_dir / "results.csv")


def report_probe(p: Probe) -> Probe:
    devices = ", ".join(d["name"] for d in p.devices)
    print(f"  {p.framework}: {p.version} ({devices})" if p.available else f"  {p.framework}: unavailable ({p.reason})")
    return p


def prepare_cell(fw: str, model: str, seed: int, plan: dict[str, Any], probe: Probe,
                 regs: Registries, world: int = 1) -> tuple[str, dict[str, Any], list[dict[str, Any]] | None]:
    """(cell name, cell spec, rows if it cannot run: unavailable framework or device)."""
    settings = plan["settings"]
    spec = regs.frameworks.get(fw)
    cell = {"run_id": plan["run_id"], "framework": fw, "framework_version": probe.version, "model": model,
            **settings, "seed": seed, "world_size": world, "dp_mode": spec.data_parallel if world > 1 else None}
    if world == 1:
        cell["devices"] = None
    if cell["batch_size"] is None:
        cell["batch_size"] = default_batch(regs.models.get(model).input_shape, settings["mode"])
    dev = probe.device(settings["device"]) if probe.available else None
    if dev is not None:
        cell["device"] = dev["name"]
        cell["device_name"] = dev.get("description")
    name = cell_name(cell) + (f"-x{world}" if world > 1 else "") + (f"-s{seed}" if len(plan["seeds"]) > 1 else "")
    cell["cell"] = name
    if world > 1:
        cell["per_device_batch"] = cell["batch_size"] // world
    if world > 1 and spec.data_parallel is None:
        return name, cell, [make_row(cell, status="unavailable", error=f"the {fw} plugin has no data-parallel engine")]
    if not probe.available:
        return name, cell, [make_row(cell, status="unavailable", error=probe.reason)]
    if dev is None:
        return name, cell, [make_row(cell, status="unavailable", error=f"{fw} sees no device {settings['device']!r}")]
    return name, cell, None


def run_with_retries(cell: dict[str, Any], spec: FrameworkSpec, cell_dir: Path, name: str,
                     say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Runs a cell in a worker; with --oom-retry, again at half the batch after each out-of-memory."""
    cell["checkpoint"] = str(cell_dir / "checkpoint.npz")
    first_batch = cell["batch_size"]
    while True:
        say(f"[{name}] start (batch {cell['batch_size']})")
        rows = run_cell(cell, spec, cell_dir, cell.get("timeout"), Progress(name))
        for row in rows:
            say(f"[{name}] {row['phase'] or ''} {row['status']}" + (f": {row['error']}" if row["error"] else ""))
        if not any(r["status"] == "oom" for r in rows) or not cell.get("oom_retry") or cell["batch_size"] == 1:
            break
        cell = {**cell, "batch_size": cell["batch_size"] // 2}
        say(f"[{name}] out of memory: retrying with batch {cell['batch_size']}")
    if cell["batch_size"] != first_batch:
        for row in rows:
            row["note"] = f"batch halved from {first_batch} to {cell['batch_size']} after out-of-memory (--oom-retry)"
    return rows

