"""Harness overhead: convbench's train_step against a minimal hand-written loop, interleaved.

    python benchmarks/overhead.py --framework torch [--batch-size 128] [--steps 50] [--rounds 7]

Same model (LeNet-5), same weights, same batch, same optimiser. Rounds alternate harness / hand-written
so drift on a shared machine hits both; the ratio is of the medians of per-round mean step times.
Target: harness / hand-written <= 1.02.
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", default="torch", choices=("torch", "tensorflow", "paddle", "jax"))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--sampler", action="store_true",
                        help="run convbench's telemetry sampler (harness/hardware/telemetry.py) beside the steps, as "
                             "it runs beside every cell, at its interval")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(args.threads)

    from harness.model.weights import init_weights
    from harness.plugin_manager import build_registries, get_plugin_manager
    pm = get_plugin_manager()
    model = build_registries(pm).models.get("lenet5")
    weights = init_weights(model, 0)
    rng = np.random.default_rng(0)
    images = rng.random((args.batch_size, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, args.batch_size)

    native = pm.hook.convbench_build_model(framework=args.framework, model=model, device="cpu",
                                           settings={"seed": 0, "threads": args.threads, "momentum": 0.9,
                                                     "weight_decay": 2e-4})
    native.set_weights(weights)
    batch = native.prepare_batch(images, labels)
    harness_step = lambda: native.run_phase("train_step", batch, 1e-3)  # noqa: E731
    hand_step = importlib.import_module(f"handwritten.{args.framework}_lenet").make(weights, images, labels)
    # a hand-written step that dispatches asynchronously (jax) brings its own wait; both kinds of round call both
    hand_sync = getattr(hand_step, "synchronize", lambda: None)

    def sync() -> None:
        pm.hook.convbench_synchronize(framework=args.framework, device="cpu")
        hand_sync()

    def timed(step) -> float:
        sync()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        sync()
        return (time.perf_counter() - start) / args.steps

    for step in (harness_step, hand_step):   # warm-up: tracing, allocator, caches
        for _ in range(10):
            step()
    sampler = None
    if args.sampler:
        from harness.hardware.telemetry import Sampler
        sampler = Sampler().start()
    harness_times, hand_times = [], []
    for _ in range(args.rounds):
        harness_times.append(timed(harness_step))
        hand_times.append(timed(hand_step))
    if sampler is not None:
        readings = sampler.stop()
        print(f"  telemetry sampler on: {readings.samples} samples while timing")
    h, m = statistics.median(harness_times), statistics.median(hand_times)
    print(f"{args.framework} lenet5 batch {args.batch_size}, {args.rounds} interleaved rounds x {args.steps} steps")
    print(f"  harness train_step : {1000 * h:8.3f} ms/step (rounds: {', '.join(f'{1000 * t:.2f}' for t in harness_times)})")
    print(f"  hand-written loop  : {1000 * m:8.3f} ms/step (rounds: {', '.join(f'{1000 * t:.2f}' for t in hand_times)})")
    print(f"  ratio harness / hand-written = {h / m:.3f} (target <= 1.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
