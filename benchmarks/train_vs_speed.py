"""Does train mode time the framework or the harness? Train mode's images/s against speed mode's train_step.

    python benchmarks/train_vs_speed.py [--frameworks torch,jax] [--models lenet5,resnet32] [--batch-size 128]
                                        [--rounds 16] [--threads N] [--steps N] [--prefetch|--no-prefetch]
                                        [--device cpu|cuda|cuda:N] [--json PATH] [--blocks 5 --cycles 150]

For each framework, in one worker process (the environment convbench's workers get), for each model and for
``--augment`` off and on, in ABBA-ordered pairs of rounds:
(a) train mode: one epoch of ``harness.worker.training.train`` on synthetic data (20 steps of lenet5, 8 of
    resnet32), exactly the loop ``convbench run`` uses, its own clock (train_time_s), input path included;
(b) speed mode's train_step on one prepared batch, both of speed mode's figures: the window (steps back to back,
    a throughput like an epoch's time: the ratio judged) and the median synchronised step (ratio_latency).
The ratio (a)/(b) of images/s is 1 when the input path and the loop cost nothing the framework's own step does
not. Step times on a shared machine drift within seconds by more than the gap judged, so the ratio is the median
of the pairs' ratios with a bootstrap 95 % interval (``paired``). It also times the input path alone (gather +
augment + the hand-over to the framework, ms per step, no training; for a model that holds the training set, the
host's part: the indices' hand-over, the gather being inside its step), and the ceiling: (c) the epoch's own
batches made before the clock and stepped through back to back, the loop minus all input work; (c)/(b) below 1 is
what fresh data costs a step that speed mode's one cache-warm batch does not pay, which no input path can remove.
``--prefetch`` / ``--no-prefetch``: train mode makes its numpy batches in a background thread, or inline, to
re-measure that choice; by default as ``convbench run`` does: in a thread on a GPU, inline on the CPU.
``--device cuda:N``: on that GPU, its worker seeing only it (CUDA_VISIBLE_DEVICES), as a run's GPU cell.

``--blocks N`` judges in short blocks instead of whole epochs: each cycle runs, in a fresh random order, N steps
of train mode (the loop's own ``run_epoch`` fed the input path's next N batches), of speed mode's window, of its
synchronised steps, of the ceiling, and N batches of the input path alone: short blocks paired many times give
far narrower intervals than whole epochs, which drift within themselves. Figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import abba, paired_ratio, shuffled, timed  # noqa: E402

SHAPE = {"lenet5": 20, "resnet32": 8}   # model -> steps per epoch of (a), and per speed round of (b)
LR = 1e-3  # speed mode's learning rate: random labels, many steps, nothing diverges


def drain(batches: Iterator[Any], n: int | None = None) -> None:
    """Makes (and hands over) the next ``n`` batches of ``batches``, or all of them, keeping none."""
    collections.deque(itertools.islice(batches, n), maxlen=0)


def measure(framework: str, model_name: str, augment: bool, args: argparse.Namespace) -> dict[str, Any]:
    from harness.datasets.batches import train_batches
    from harness.worker.context import setup
    from harness.worker.pipeline import input_path
    from harness.worker.timing import time_phase
    from harness.worker.training import Recipe, train

    steps = args.steps or SHAPE.get(model_name, 10)
    cell = bench_cell(framework, model_name, args, augment=augment)
    ctx = setup(cell, data_size=(steps * args.batch_size, args.batch_size))
    native, data = ctx.native, ctx.data
    args.prefetch = default_prefetch(args.prefetch, ctx.device)
    recipe = Recipe(epochs=1, batch_size=args.batch_size, lr=LR, milestones=(), augment=augment)
    if not args.blocks:   # blocks warm themselves up, one untimed block of each side
        train(native, data, recipe, 0, ctx.sync)   # warm-up: tracing, allocator, the evaluation's function
    x, y = next(train_batches(data.x_train, data.y_train, args.batch_size, 0, 0))
    batch = native.prepare_batch(x, y)
    path = input_path(native, data.x_train, data.y_train, augment)

    def batches(epoch: int) -> Any:   # the loop's input path: what train() makes on a CPU
        return path.model_batches(native, data.y_train, args.batch_size, 0, epoch, augment)

    epoch_batches = list(batches(0))
    out: dict[str, Any] = {"train_ms": [], "speed_ms": [], "window_ms": [], "ceiling_ms": [], "input_ms": [],
                           "input_path": path.describe(native)}

    def train_round() -> None:   # one epoch of train mode: its own clock, per step
        out["train_ms"].append(1000 * train(native, data, recipe, 0, ctx.sync, prefetch=args.prefetch).train_time_s
                               / steps)

    def speed_round() -> None:   # speed mode's train_step on one prepared batch: both of its figures
        step = lambda: native.run_phase("train_step", batch, LR)   # noqa: E731
        timing = time_phase(step, ctx.sync, 2, steps)
        out["speed_ms"].append(1000 * statistics.median(timing.samples_s))   # latency: the median step
        out["window_ms"].append(1000 * timed(step, ctx.sync, steps))   # throughput: speed mode's window

    def ceiling_round() -> None:   # the loop with every batch made beforehand: no input work at all
        ceiling = lambda: native.read_losses([native.train_step_async(b, LR) for b in epoch_batches])  # noqa: E731
        out["ceiling_ms"].append(1000 * timed(ceiling, ctx.sync) / steps)

    if args.blocks:
        blocks(native, data, path, augment, batch, epoch_batches, out, ctx.sync, args)
    else:
        for i in range(args.rounds):   # ABBA: drift and order hit both sides alike
            for side in abba((train_round, speed_round, ceiling_round), i):
                side()
            # the input path alone, as the loop runs it: gathered, augmented, handed over
            out["input_ms"].append(1000 * timed(lambda: drain(batches(1)), ctx.sync) / steps)
    for name, speed, against in (("ratio", "window_ms", "train_ms"), ("ratio_latency", "speed_ms", "train_ms"),
                                 ("ceiling", "window_ms", "ceiling_ms")):
        # images/s of train mode / of speed mode = speed mode's time / train mode's, pair by pair
        ratio, low, high = paired_ratio(out[speed], out[against])
        out[name], out[name + "_interval"] = ratio, [low, high]
    return out


def default_prefetch(asked: bool | None, device: Any) -> bool:
    """``--prefetch``/``--no-prefetch`` if given, else train_cell's choice: batches made ahead in a thread on a GPU."""
    return device.is_gpu if asked is None else asked


def bench_cell(framework: str, model_name: str, args: argparse.Namespace, augment: bool = False) -> Any:
    """The cell measured, on ``--device`` as a run's cell would be: a GPU cell's worker sees only its GPU (the
    orchestrator side's ``gpu_visibility`` gives the worker's CUDA_VISIBLE_DEVICES), where it is cuda:0."""
    from harness.devices import parse_device
    from harness.settings import Cell, RunSettings

    device = parse_device(args.device)
    run = RunSettings(dataset="synthetic", threads=args.threads, augment=augment, batch_size=args.batch_size,
                      device=device)
    cell = Cell(run_id="bench", name="bench", framework=framework, model=model_name, run=run)
    return cell.replace(visible=(device,)) if device.is_gpu else cell


def blocks(native: Any, data: Any, path: Any, augment: bool, batch: Any, epoch_batches: list[Any], out: dict[str, Any],
           sync: Any, args: argparse.Namespace) -> None:
    """``--blocks N``: the five sides in short blocks of N steps, ``--cycles`` times, each cycle in a fresh
    random order. Train mode's block is the loop's own ``run_epoch`` fed N batches of the input path's endless
    stream (epoch after epoch, as train() would draw them), with its own synchronised clock around it."""
    from harness.worker.timing import time_phase
    from harness.worker.training import run_epoch

    n = args.blocks

    def stream(handed_over: bool) -> Any:   # epoch after epoch: what train() feeds run_epoch, or the model's batches
        for epoch in itertools.count(1):
            if handed_over:
                yield from path.model_batches(native, data.y_train, args.batch_size, 0, epoch, augment)
            else:
                yield from path.loop_batches(native, data.y_train, args.batch_size, 0, epoch, augment)

    source, inputs, made = stream(False), stream(True), itertools.cycle(epoch_batches)

    def train_steps() -> None:   # what train() does with an epoch's batches, on N of them
        with path.feeding(itertools.islice(source, n), args.prefetch) as fed:
            run_epoch(native, fed, LR, 0, lambda *a: None, path.layout, prepared=path.held)

    def train_block() -> None:
        out["train_ms"].append(1000 * timed(train_steps, sync) / n)

    step = lambda: native.run_phase("train_step", batch, LR)   # noqa: E731

    def window_block() -> None:
        out["window_ms"].append(1000 * timed(step, sync, n))

    def latency_block() -> None:
        out["speed_ms"].append(1000 * statistics.median(time_phase(step, sync, 0, n).samples_s))

    def ceiling_block() -> None:
        ceiling = lambda: native.read_losses([native.train_step_async(next(made), LR) for _ in range(n)])  # noqa: E731
        out["ceiling_ms"].append(1000 * timed(ceiling, sync) / n)

    def input_block() -> None:   # the input path alone: N batches made and handed over, no step
        out["input_ms"].append(1000 * timed(lambda: drain(inputs, n), sync) / n)

    sides = [train_block, window_block, latency_block, ceiling_block, input_block]
    for side in sides:   # one untimed block each: the stream's first batches, the functions' first calls
        side()
    for key in ("train_ms", "speed_ms", "window_ms", "ceiling_ms", "input_ms"):
        out[key].clear()
    for cycle in shuffled(sides, args.cycles):
        for side in cycle:
            side()


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
    parser.add_argument("--rounds", type=int, default=16, help="ABBA pairs: one train epoch, one speed round")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=0,
                        help="steps per train-mode epoch and per speed round (default: 20 for lenet5, 8 for resnet32)")
    parser.add_argument("--prefetch", action=argparse.BooleanOptionalAction, default=None,
                        help="make train mode's batches in a background thread, or inline (default: as convbench "
                             "run does, in a thread on a GPU, inline on the CPU)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--blocks", type=int, default=0,
                        help="judge in short interleaved blocks of this many steps instead of whole epochs "
                             "(e.g. 5: far narrower intervals on a noisy machine; docs/performance.md)")
    parser.add_argument("--cycles", type=int, default=150, help="with --blocks: how many cycles of the sides")
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    from harness.orchestrator.cells import gpu_visibility
    from harness.orchestrator.workers import worker_env
    from harness.plugin_manager import build_registries, get_plugin_manager
    regs = build_registries(get_plugin_manager())
    results: dict[str, Any] = {}
    print("| framework | model | augment | train mode img/s | speed train_step img/s: window / median step "
          "| ratio to window (95 % interval) | ratio to median step | ceiling: prepared batches, to window "
          "| input path ms/step | input path |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for framework in args.frameworks.split(","):
        spec = regs.frameworks.get(framework)
        env = worker_env(spec, args.threads)
        env["NPROC"] = str(args.threads)
        env.update(gpu_visibility(bench_cell(framework, "lenet5", args))[1])   # a GPU cell sees only its GPU
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.json"
            cmd = ([sys.executable, __file__, "--worker", framework, "--worker-out", str(out), "--models", args.models,
                   "--batch-size", str(args.batch_size), "--rounds", str(args.rounds), "--threads", str(args.threads),
                   "--steps", str(args.steps), "--blocks", str(args.blocks), "--cycles", str(args.cycles),
                   "--device", args.device]
                   + ([] if args.prefetch is None else ["--prefetch" if args.prefetch else "--no-prefetch"]))
            proc = subprocess.run(cmd, env=env)
            if proc.returncode or not out.exists():
                print(f"| {framework} | error: worker exited with {proc.returncode} | | | | | | | | |")
                continue
            results[framework] = json.loads(out.read_text())
        for key, r in results[framework].items():
            model_name, augment = key.split("/")
            print(f"| {framework} | {model_name} | {'yes' if augment == 'augment' else 'no'} | "
                  f"{args.batch_size / statistics.median(r['train_ms']) * 1000:.0f} | "
                  f"{args.batch_size / statistics.median(r['window_ms']) * 1000:.0f} / "
                  f"{args.batch_size / statistics.median(r['speed_ms']) * 1000:.0f} | "
                  f"{r['ratio']:.3f} ({r['ratio_interval'][0]:.3f}-{r['ratio_interval'][1]:.3f}) | "
                  f"{r['ratio_latency']:.3f} ({r['ratio_latency_interval'][0]:.3f}-"
                  f"{r['ratio_latency_interval'][1]:.3f}) | "
                  f"{r['ceiling']:.3f} ({r['ceiling_interval'][0]:.3f}-{r['ceiling_interval'][1]:.3f}) | "
                  f"{statistics.median(r['input_ms']):.2f} | {r['input_path']} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"argv": sys.argv, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
