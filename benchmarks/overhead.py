"""Harness overhead: convbench's train_step against a minimal hand-written loop, interleaved.

    python benchmarks/overhead.py --framework torch [--batch-size 128] [--steps 10] [--rounds 60] [--sampler]

Same model (LeNet-5), same weights, same batch, same optimiser. A LeNet step's time on a shared machine drifts
by more from one half-second to the next than the 2 % this judges, so one long round per side cannot resolve
it. Instead: many short rounds, paired, in ABBA order (harness, hand, hand, harness, ...), so drift and order
hit both sides alike; the ratio is the median of the per-pair ratios, with a bootstrap 95 % interval over the
pairs (``paired``). Target: harness / hand-written <= 1.02. Figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paired import abba, paired_ratio, timed  # noqa: E402


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
        # history, so runs disagreed far beyond their own intervals (docs/performance.md).
        from harness.orchestrator.workers import worker_env
        env = worker_env(None, args.threads)
        env["CONVBENCH_OVERHEAD_CHILD"] = "1"
        env["NPROC"] = str(args.threads)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    from harness.model.weights import init_weights
    from harness.plugin_manager import build_registries, get_plugin_manager
    from harness.settings import BuildSettings
    pm = get_plugin_manager()
    model = build_registries(pm).models.get("lenet5")
    weights = init_weights(model, 0)
    rng = np.random.default_rng(0)
    images = rng.random((args.batch_size, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, 10, args.batch_size)

    native = pm.hook.convbench_build_model(framework=args.framework, model=model, device="cpu",
                                           settings=BuildSettings(threads=args.threads).to_dict())
    native.set_weights(weights)
    batch = native.prepare_batch(images, labels)
    harness_step = lambda: native.run_phase("train_step", batch, 1e-3)  # noqa: E731
    hand_step = importlib.import_module(f"handwritten.{args.framework}_lenet").make(weights, images, labels)
    # a hand-written step that dispatches asynchronously (jax) brings its own wait; both kinds of round call both
    hand_sync = getattr(hand_step, "synchronize", lambda: None)

    def sync() -> None:
        pm.hook.convbench_synchronize(framework=args.framework, device="cpu")
        hand_sync()

    for step in (harness_step, hand_step):   # warm-up: tracing, allocator, caches
        for _ in range(10):
            step()
    sampler = None
    if args.sampler:
        from harness.hardware.telemetry import Sampler
        sampler = Sampler().start()
    sides = {"harness": harness_step, "hand-written": hand_step}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(args.rounds):
        for name in abba(list(sides), i):
            times[name].append(timed(sides[name], sync, args.steps))
    harness_times, hand_times = times["harness"], times["hand-written"]
    if sampler is not None:
        readings = sampler.stop()
        print(f"  telemetry sampler on: {readings.samples} samples while timing")
    ratio, low, high = paired_ratio(harness_times, hand_times)
    h, m = statistics.median(harness_times), statistics.median(hand_times)
    print(f"{args.framework} lenet5 batch {args.batch_size}, {args.rounds} ABBA pairs of rounds x {args.steps} steps"
          f"{', sampler on' if args.sampler else ''}")
    from harness.orchestrator.workers import recorded_env
    print(f"  environment (as convbench's workers): {' '.join(f'{k}={v}' for k, v in recorded_env(dict(os.environ)).items())}")
    print(f"  harness train_step : {1000 * h:8.3f} ms/step (median round)")
    print(f"  hand-written loop  : {1000 * m:8.3f} ms/step (median round)")
    print(f"  ratio harness / hand-written = {ratio:.3f} (median of pairs; 95 % interval "
          f"{low:.3f}-{high:.3f}; target <= 1.02)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
