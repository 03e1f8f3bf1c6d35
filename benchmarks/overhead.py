"""Harness overhead: convbench's train_step against a minimal hand-written loop, interleaved.

    python benchmarks/overhead.py --framework torch [--batch-size 128] [--steps 10] [--rounds 60] [--sampler]

Same model (LeNet-5), same weights, same batch, same optimiser. On a 2-core VM a LeNet step's time drifts by
+-20 % from one half-second to the next, so one long round per side cannot resolve 2 %. Instead: many short
rounds, paired, in ABBA order (harness, hand, hand, harness, ...), so drift and order hit both sides alike;
the ratio is the median of the per-pair ratios, with a bootstrap 95 % interval over the pairs.
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
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--rounds", type=int, default=60, help="pairs of rounds (one harness, one hand-written)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--sampler", action="store_true",
                        help="run convbench's telemetry sampler (harness/hardware/telemetry.py) beside the steps, as "
                             "it runs beside every cell, at its interval")
    args = parser.parse_args()
    if os.environ.get("CONVBENCH_OVERHEAD_CHILD") != "1":
        # the environment convbench's own workers get (threads, glibc allocator settings), which glibc and the
        # thread pools read at start-up, so the measurement runs in a fresh interpreter. Without the allocator
        # settings every step faults in fresh pages for its activations, and how many depends on the process's
        # history: the ratio scattered 0.66-1.17 between runs, with narrow intervals inside each.
        from harness.orchestrator.workers import worker_env
        env = worker_env(None, args.threads)
        env["CONVBENCH_OVERHEAD_CHILD"] = "1"
        env["NPROC"] = str(args.threads)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

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
    for i in range(args.rounds):
        if i % 2 == 0:
            harness_times.append(timed(harness_step))
            hand_times.append(timed(hand_step))
        else:
            hand_times.append(timed(hand_step))
            harness_times.append(timed(harness_step))
    if sampler is not None:
        readings = sampler.stop()
        print(f"  telemetry sampler on: {readings.samples} samples while timing")
    ratios = np.array(harness_times) / np.array(hand_times)
    low, high = bootstrap_median(ratios, rng)
    h, m = statistics.median(harness_times), statistics.median(hand_times)
    print(f"{args.framework} lenet5 batch {args.batch_size}, {args.rounds} ABBA pairs of rounds x {args.steps} steps"
          f"{', sampler on' if args.sampler else ''}")
    from harness.orchestrator.workers import recorded_env
    print(f"  environment (as convbench's workers): {' '.join(f'{k}={v}' for k, v in recorded_env(dict(os.environ)).items())}")
    print(f"  harness train_step : {1000 * h:8.3f} ms/step (median round)")
    print(f"  hand-written loop  : {1000 * m:8.3f} ms/step (median round)")
    print(f"  ratio harness / hand-written = {statistics.median(ratios):.3f} (median of pairs; 95 % interval "
          f"{low:.3f}-{high:.3f}; target <= 1.02)")
    return 0


def bootstrap_median(values: np.ndarray, rng: np.random.Generator, draws: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of the median."""
    medians = np.median(rng.choice(values, size=(draws, len(values)), replace=True), axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


if __name__ == "__main__":
    sys.exit(main())
