"""Does train mode time the framework or the harness? Train mode's images/s against speed mode's train_step.

    python benchmarks/train_vs_speed.py [--frameworks torch,jax] [--models lenet5,resnet32] [--batch-size 128]
                                        [--rounds 3] [--threads N] [--json PATH]

For each framework, in one worker process (the environment convbench's workers get), for each model and for
``--augment`` off and on, interleaved over the rounds:
(a) train mode: ``harness.worker.training.train`` on synthetic data (a fixed number of steps per epoch, several
    epochs; the median epoch's images/s), exactly the loop ``convbench run`` uses, input path included;
(b) speed mode's train_step: one prepared batch, each step synchronised (images/s = batch / median step).
The ratio (a)/(b) is 1 when the input path and the loop cost nothing the framework's own step does not.
It also times the input path alone (gather + augment + the copy to the framework, ms per step, no training).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SHAPE = {"lenet5": (20, 5), "resnet32": (8, 3)}   # model -> (steps per epoch, epochs) of (a)
LR = 1e-3  # speed mode's learning rate: random labels, many steps, nothing diverges


def measure(framework: str, model_name: str, augment: bool, args: argparse.Namespace) -> dict[str, Any]:
    from harness.datasets.batches import train_batches
    from harness.settings import Cell, RunSettings
    from harness.worker.context import setup
    from harness.worker.timing import time_phase
    from harness.worker.training import Recipe, train

    steps, epochs = SHAPE.get(model_name, (10, 3))
    run = RunSettings(dataset="synthetic", threads=args.threads, augment=augment)
    cell = Cell(run_id="bench", name="bench", framework=framework, model=model_name, seed=0, device="cpu",
                batch_size=args.batch_size, run=run)
    ctx = setup(cell, data_size=(steps * args.batch_size, args.batch_size))
    native, data = ctx.native, ctx.data
    recipe = Recipe(epochs=epochs, batch_size=args.batch_size, lr=LR, milestones=(), augment=augment)
    train(native, data, Recipe(epochs=1, batch_size=args.batch_size, lr=LR, milestones=(), augment=augment), 0, ctx.sync)
    x, y = next(train_batches(data.x_train, data.y_train, args.batch_size, 0, 0))
    batch = native.prepare_batch(x, y)
    out: dict[str, Any] = {"train_ips": [], "speed_ips": [], "input_ms": []}
    for _ in range(args.rounds):
        history = train(native, data, recipe, 0, ctx.sync).history
        epoch_s = [b["train_time_s"] - a for a, b in zip([0.0] + [h["train_time_s"] for h in history], history)]
        out["train_ips"].append(steps * args.batch_size / statistics.median(epoch_s))
        timing = time_phase(lambda: native.run_phase("train_step", batch, LR), ctx.sync, 3, steps)
        out["speed_ips"].append(args.batch_size / statistics.median(timing.samples_s))
        start = time.perf_counter()   # the input path alone: batches gathered, augmented and handed over
        for xb, yb in train_batches(data.x_train, data.y_train, args.batch_size, 0, 1, augment):
            native.prepare_batch(xb, yb)
        ctx.sync()
        out["input_ms"].append(1000 * (time.perf_counter() - start) / steps)
    out["ratio"] = statistics.median(out["train_ips"]) / statistics.median(out["speed_ips"])
    return out


def worker(args: argparse.Namespace) -> int:
    result = {}
    for model_name in args.models.split(","):
        for augment in (False, True):
            result[f"{model_name}/{'augment' if augment else 'plain'}"] = measure(args.worker, model_name, augment, args)
    Path(args.worker_out).write_text(json.dumps(result))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", default="torch,tensorflow,paddle,jax")
    parser.add_argument("--models", default="lenet5,resnet32")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    from harness.orchestrator.workers import worker_env
    from harness.plugin_manager import build_registries, get_plugin_manager
    regs = build_registries(get_plugin_manager())
    results: dict[str, Any] = {}
    print("| framework | model | augment | train mode img/s | speed train_step img/s | ratio | input path ms/step |")
    print("|---|---|---|---|---|---|---|")
    for framework in args.frameworks.split(","):
        spec = regs.frameworks.get(framework)
        env = worker_env(spec, args.threads)
        env["NPROC"] = str(args.threads)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            cmd = [sys.executable, __file__, "--worker", framework, "--worker-out", str(out), "--models", args.models,
                   "--batch-size", str(args.batch_size), "--rounds", str(args.rounds), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, env=env)
            if proc.returncode or not out.exists():
                print(f"| {framework} | error: worker exited with {proc.returncode} | | | | | |")
                continue
            results[framework] = json.loads(out.read_text())
        for key, r in results[framework].items():
            model_name, augment = key.split("/")
            print(f"| {framework} | {model_name} | {'yes' if augment == 'augment' else 'no'} | "
                  f"{statistics.median(r['train_ips']):.0f} | {statistics.median(r['speed_ips']):.0f} | "
                  f"{r['ratio']:.3f} | {statistics.median(r['input_ms']):.2f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"argv": sys.argv, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
