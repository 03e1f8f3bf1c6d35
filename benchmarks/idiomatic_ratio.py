"""convbench's speed-mode steps against each framework's idiomatic code (benchmarks/idiomatic/), interleaved.

    python benchmarks/idiomatic_ratio.py [--frameworks torch,jax] [--models vgg16,resnet32,googlenet]
        [--batch-size 128] [--steps 10] [--warmup 3] [--rounds 2] [--threads N] [--compile auto] [--json PATH]

One subprocess per installed framework (TensorFlow and Paddle segfault in one process), with the environment
convbench gives its own workers (thread variables set to --threads). In it, per model: convbench's model built
through the plugin manager as benchmarks/overhead.py builds it, and the idiomatic reference with all its
variants; then --rounds rounds per phase (train_step, forward): --warmup steps of each discarded, then --steps
steps of convbench and every variant side by side, one step each in turn, the order alternating from step to
step (ABBA), each timed alone with the device synchronised before both clock readings. The first call of each
(tracing, compilation) is timed apart and reported, never in the statistics.

ratio = the median over paired steps of convbench's step / the best variant's step next to it (the best: the
lowest median), with a bootstrap 95 % interval (``paired``): a shared machine's speed drifts within minutes by
more than the gaps judged here, and drift moves both steps of a pair, so the paired ratio resolves what medians
of separate rounds cannot. The medians themselves are in the second table. (> 1: convbench shows the framework
slower than its users would measure). Exit code 0 only if every framework ran. Figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import idiomatic  # noqa: E402  (imports no framework)
from paired import abba, paired_ratio, timed  # noqa: E402

PHASES = ("train_step", "forward")
RECORDED_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS", "TF_XLA_FLAGS", "NPROC", "LD_PRELOAD")
SPEED_LR = 1e-3  # convbench's speed mode


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", default=None, help="comma-separated (default: every installed one)")
    parser.add_argument("--models", default=",".join(idiomatic.MODELS), help="comma-separated")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="discarded steps before each round's timed ones")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--compile", default="auto",
                        help="convbench's --compile for its side (paddle: default = paddle.jit.to_static)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every measurement as JSON")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)     # internal: run one framework
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    for name in args.models:
        if name not in idiomatic.MODELS:
            parser.error(f"unknown model {name!r}; choose from {', '.join(idiomatic.MODELS)}")
    for name in ("batch_size", "steps", "rounds", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be at least 0")
    return args


# ---- the worker: one framework, in its own process -----------------------------------------------------------

def measure_model(framework: str, model_name: str, args: argparse.Namespace, pm: Any, registries: Any) -> dict[str, Any]:
    from harness.model.weights import init_weights
    from harness.settings import BuildSettings

    model = registries.models.get(model_name)
    settings = BuildSettings(threads=args.threads, compile=args.compile)   # the recipe's momentum and weight decay
    native = pm.hook.convbench_build_model(framework=framework, model=model, device="cpu", settings=settings.to_dict())
    native.set_weights(init_weights(model, 0))
    images, labels = idiomatic.random_batch(args.batch_size, 0)
    batch = native.prepare_batch(images, labels)
    reference = idiomatic.load(framework).make(model_name, args.batch_size)

    def convbench_sync() -> None:
        pm.hook.convbench_synchronize(framework=framework, device="cpu")

    impls: dict[str, tuple[dict[str, Callable[[], Any]], Callable[[], None]]] = {
        "convbench": ({p: (lambda p=p: native.run_phase(p, batch, SPEED_LR)) for p in PHASES}, convbench_sync)}
    for name, variant in reference.variants.items():
        impls[name] = ({"train_step": variant.train_step, "forward": variant.forward}, reference.synchronize)

    out: dict[str, Any] = {"params": {"convbench": native.param_count(), "idiomatic": reference.params}, "impls": {}}
    for name, (steps, sync) in impls.items():
        out["impls"][name] = {p: {"first_step_s": timed(steps[p], sync), "rounds_s": []} for p in PHASES}
    order = list(impls)
    for r in range(args.rounds):
        for phase in PHASES:
            for name in order:
                steps, sync = impls[name]
                for _ in range(args.warmup):
                    steps[phase]()
                sync()
            samples: dict[str, list[float]] = {name: [] for name in order}
            for k in range(args.steps):   # one step of each, side by side, the order alternating (ABBA)
                for name in abba(order, r * args.steps + k):
                    steps, sync = impls[name]
                    samples[name].append(timed(steps[phase], sync))
            for name in order:
                out["impls"][name][phase]["rounds_s"].append(samples[name])
                print(f"  {framework} {model_name} round {r + 1} {name:22s} {phase:10s} "
                      f"{1000 * statistics.median(samples[name]):9.1f} ms", file=sys.stderr, flush=True)
    for entry in out["impls"].values():
        for phase in PHASES:
            pooled = [s for samples in entry[phase]["rounds_s"] for s in samples]
            entry[phase]["median_ms"] = 1000 * statistics.median(pooled)
            entry[phase]["round_medians_ms"] = [1000 * statistics.median(s) for s in entry[phase]["rounds_s"]]
    return out


def worker(args: argparse.Namespace) -> int:
    from harness.plugin_manager import build_registries, get_plugin_manager
    pm = get_plugin_manager()
    registries = build_registries(pm)
    result: dict[str, Any] = {"framework": args.worker, "version": registries.frameworks.get(args.worker).version(),
                              "models": {}}
    for model_name in args.models:
        result["models"][model_name] = measure_model(args.worker, model_name, args, pm, registries)
        gc.collect()  # the previous model's convbench and idiomatic networks, before the next ones are built
    Path(args.worker_out).write_text(json.dumps(result))
    return 0


# ---- the orchestrator: imports no framework -------------------------------------------------------------------

def installed_frameworks() -> dict[str, Any]:
    from harness.plugin_manager import build_registries, get_plugin_manager
    registries = build_registries(get_plugin_manager())
    return {name: registries.frameworks.get(name) for name in registries.frameworks.names()
            if name in idiomatic.MODULES and registries.frameworks.get(name).installed()[0]}


def run_framework(framework: str, spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    from harness.orchestrator.workers import worker_env
    env = worker_env(spec, args.threads)   # the environment convbench's own workers get
    env["NPROC"] = str(args.threads)       # XLA's CPU thread pool (what convbench's jax plugin sets)
    with tempfile.TemporaryDirectory(prefix="idiomatic-") as tmp:
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--worker-out", str(out),
               "--models", ",".join(args.models), "--batch-size", str(args.batch_size), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--rounds", str(args.rounds), "--threads", str(args.threads),
               "--compile", args.compile]
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=None, text=True)
        if proc.returncode != 0 or not out.exists():
            return {"framework": framework, "error": f"worker exited with {proc.returncode}"}
        result = json.loads(out.read_text())
    # what the worker ran under besides the thread settings: allocator and compiler settings, if any
    result["env"] = {k: v for k, v in env.items() if k in RECORDED_ENV or k.startswith(("MALLOC_", "XLA_", "FLAGS_", "KMP_"))}
    return result


def ratio_cell(entry: dict[str, Any], phase: str) -> tuple[str, dict[str, Any]]:
    """convbench against the variant with the lowest median step: the median of their paired steps' ratios."""
    impls = entry["impls"]
    ours = impls["convbench"][phase]["median_ms"]
    variants = {name: v[phase]["median_ms"] for name, v in impls.items() if name != "convbench"}
    best = min(variants, key=variants.__getitem__)
    ratio, low, high = paired_ratio([s for r in impls["convbench"][phase]["rounds_s"] for s in r],
                                    [s for r in impls[best][phase]["rounds_s"] for s in r])
    row = {"ratio": ratio, "interval": [low, high], "ratio_of_medians": ours / variants[best], "convbench_ms": ours,
           "best_variant": best, "best_ms": variants[best]}
    return f"{ratio:.2f} ({low:.2f}-{high:.2f}; {ours:.1f} ms vs {variants[best]:.1f} ms, {best})", row


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> tuple[list[str], list[dict[str, Any]]]:
    lines = [f"batch {args.batch_size}, fp32, CPU, convbench --compile {args.compile}, {args.threads} threads, "
             f"{args.rounds} rounds x {args.steps} paired steps after {args.warmup} warm-up; ratio = convbench / "
             "best idiomatic variant, the median of paired steps' ratios (bootstrap 95 % interval)", "",
             "| framework | model | train_step ratio | forward ratio |", "|---|---|---|---|"]
    rows, details = [], ["", "| framework | model | implementation | train_step ms | forward ms | first train_step s |",
                         "|---|---|---|---|---|---|"]
    for res in results:
        if "error" in res:
            lines.append(f"| {res['framework']} | - | error: {res['error']} | |")
            continue
        for model_name, entry in res["models"].items():
            cells, row = [], {"framework": res["framework"], "version": res["version"], "model": model_name,
                              "params": entry["params"]}
            for phase in PHASES:
                text, row[phase] = ratio_cell(entry, phase)
                cells.append(text)
            ours, theirs = entry["params"]["convbench"], entry["params"]["idiomatic"]
            if ours != theirs:  # a reference that computes something else makes the ratio meaningless
                cells[0] += f" **parameters differ: convbench {ours:,} vs idiomatic {theirs:,}**"
            lines.append(f"| {res['framework']} | {model_name} | {cells[0]} | {cells[1]} |")
            rows.append(row)
            for name, v in entry["impls"].items():
                details.append(f"| {res['framework']} | {model_name} | {name} | {v['train_step']['median_ms']:.1f} | "
                               f"{v['forward']['median_ms']:.1f} | {v['train_step']['first_step_s']:.2f} |")
    return lines + details, rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    available = installed_frameworks()
    wanted = args.frameworks.split(",") if args.frameworks else list(available)
    unknown = [f for f in wanted if f not in available]
    if unknown:
        print(f"not installed or no idiomatic reference: {', '.join(unknown)} "
              f"(available: {', '.join(available) or 'none'})", file=sys.stderr)
        return 2
    started = time.time()
    results = [run_framework(fw, available[fw], args) for fw in wanted]
    lines, rows = report(results, args)
    print("\n".join(lines))
    if args.json:
        meta = {"argv": sys.argv, "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
                "rounds": args.rounds, "threads": args.threads, "compile": args.compile, "cpu_count": os.cpu_count(),
                "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(), "wall_s": time.time() - started}
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows, "results": results}, indent=1))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
