"""The ``convbench`` command line. User errors print one line and exit 2; tracebacks mean bugs."""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from typing import Any, NoReturn, Sequence

from harness.compare_command import alpha_arg, percent_arg
from harness.errors import ConvbenchError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConvbenchError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def device_name(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use cpu, cuda or cuda:N")
    return text


def name_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def build_parser() -> Parser:
    parser = Parser(prog="convbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="train (and time) a matrix of framework x model x device")
    run.add_argument("--mode", choices=("train", "speed"), help="train to accuracy (default) or time the step phases")
    run.add_argument("--frameworks", type=name_list, help="comma-separated; default: every available one")
    run.add_argument("--models", type=name_list, help="comma-separated; default: simple_cnn,lenet5")
    run.add_argument("--device", type=device_name, help="cpu, cuda or cuda:N (default cpu)")
    run.add_argument("--dataset", help="digits (default in train mode), cifar10 or synthetic (default in speed mode)")
    run.add_argument("--data-dir", help="folder holding cifar-10-python.tar.gz or cifar-10-batches-py/")
    run.add_argument("--no-checksum", action="store_true", help="accept CIFAR-10 files whose MD5 differs from the release")
    run.add_argument("--epochs", type=positive_int, help="default: 10 on digits, 200 on cifar10, 1 on synthetic")
    run.add_argument("--batch-size", type=positive_int,
                     help="default 128; in speed mode 32 for 224x224 models, 128 for 32x32 ones")
    run.add_argument("--lr", type=positive_float, help="initial learning rate (x0.1 at half the epochs)")
    run.add_argument("--augment", action="store_true", help="4-pixel pad + random crop + horizontal flip")
    run.add_argument("--recipe", metavar="FILE.toml", help="recipe file; command-line options override it")
    run.add_argument("--schedule", help="lr schedule: step (x0.1 at half the epochs, default), step:E1,E2, constant")
    run.add_argument("--optimizer", choices=("momentum", "sgd"), help="momentum (SGD, momentum 0.9; default) or sgd")
    run.add_argument("--momentum", type=float, help="default 0.9")
    run.add_argument("--weight-decay", type=float, help="L2 weight decay on every parameter (default 2e-4)")
    run.add_argument("--target", type=float, help="stop at this test accuracy (0-1) and report time to reach it")
    run.add_argument("--seeds", type=positive_int, help="repeat each cell with N seeds: --seed, --seed+1, ...")
    run.add_argument("--resume-from", metavar="CHECKPOINT", help="continue training from a portable checkpoint (.npz)")
    run.add_argument("--seed", type=non_negative_int, help="default 0")
    run.add_argument("--threads", type=positive_int, help="CPU threads per worker (default: all cores)")
    run.add_argument("--output", default="results", help="parent of the run directory (default ./results)")
    run.add_argument("--warmup", type=non_negative_int, help="speed mode: burn-in steps after the first (default 10)")
    run.add_argument("--steps", type=positive_int, help="speed mode: timed steps (default 100)")
    run.add_argument("--compile", choices=("auto", "none", "default", "xla"),
                     help="auto (default): each framework's usual path (torch eager, TF tf.function, paddle dygraph); "
                          "none: eager everywhere; default: torch.compile, tf.function, paddle.jit.to_static; "
                          "xla: tf.function(jit_compile=True)")
    run.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="autocast / mixed precision (default fp32)")
    run.add_argument("--layout", choices=("native", "nchw", "nhwc"), help="memory layout (default: each framework's fast one)")
    run.add_argument("--executor", choices=("local", "ray"), help="local (default): cells one after another here; "
                     "ray: each cell a task on a Ray cluster")
    run.add_argument("--ray-address", help="address of an existing Ray cluster (default: start Ray locally)")
    run.add_argument("--nproc", type=positive_int, help="train each cell data-parallel over N CPU processes")
    run.add_argument("--devices", type=name_list, help="train each cell data-parallel over these GPUs (cuda:0,cuda:1)")
    run.add_argument("--timeout", type=positive_float, help="seconds per cell before its worker is killed")
    run.add_argument("--oom-retry", action="store_true", help="on out-of-memory, halve the batch and run the cell again")
    run.add_argument("--resume", metavar="RUN_DIR", help="complete an earlier run: only its missing or failed cells")

    ver = sub.add_parser("verify", help="prove equal parameter counts and equal logits across frameworks")
    ver.add_argument("--frameworks", type=name_list, help="comma-separated; default: every installed one")
    ver.add_argument("--models", type=name_list, help="comma-separated; default: every model")
    ver.add_argument("--seed", type=non_negative_int, default=0)
    ver.add_argument("--threads", type=positive_int, help="CPU threads per worker (default: all cores)")

    ev = sub.add_parser("eval", help="evaluate a portable checkpoint in any framework")
    ev.add_argument("--weights", required=True, help="portable weight file (.npz) from any framework")
    ev.add_argument("--framework", required=True)
    ev.add_argument("--model", required=True)
    ev.add_argument("--dataset", default="digits")
    ev.add_argument("--data-dir")
    ev.add_argument("--no-checksum", action="store_true")
    ev.add_argument("--device", type=device_name, default="cpu")
    ev.add_argument("--batch-size", type=positive_int, default=256)
    ev.add_argument("--threads", type=positive_int)

    lst = sub.add_parser("list", help="list the models with shapes, parameters and FLOPs")
    lst.add_argument("--format", choices=("table", "json"), default="table")

    sub.add_parser("plugins", help="list plugins, their versions, availability and hooks")

    rep = sub.add_parser("report", help="write report.md and PNG plots for a finished run")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (results/<run-id>)")
    rep.add_argument("--output", metavar="DIR", help="folder for report.md and the plots (default: RUN_DIR)")

    comp = sub.add_parser("compare", help="compare run B with run A cell by cell, noise-aware")
    comp.add_argument("run_a", metavar="RUN_A")
    comp.add_argument("run_b", metavar="RUN_B")
    comp.add_argument("--threshold", type=percent_arg, default=5.0, metavar="PCT",
                      help="smallest relative change that counts, e.g. 5 or 5%% (default 5)")
    comp.add_argument("--alpha", type=alpha_arg, default=0.05, help="significance level (default 0.05)")
    comp.add_argument("--fail-on-regression", type=percent_arg, metavar="PCT",
                      help="exit 1 if a cell is significantly slower by more than PCT, or failed only in B")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        signal.signal(signal.SIGTERM, _interrupt)  # every command, `run` included, takes SIGTERM as Ctrl-C
        args = build_parser().parse_args(argv)
        if args.command == "run":
            from harness.run_command import run_matrix
            return run_matrix(args, argv)
        if args.command == "report":
            from harness.report_command import write_report
            print(f"report: {write_report(args.run_dir, args.output)}")
            return 0
        if args.command == "compare":
            from harness.compare_command import compare_runs
            text, code = compare_runs(args.run_a, args.run_b, threshold=args.threshold, alpha=args.alpha,
                                      fail_on=args.fail_on_regression)
            print(text)
            return code
        if args.command == "eval":
            from harness.eval_command import run_eval
            return run_eval(args)
        if args.command == "verify":
            from harness.verify import run_verify
            return run_verify(args.frameworks, args.models, args.seed, args.threads or os.cpu_count() or 1)
        if args.command == "list":
            return list_models(args.format)
        return list_plugins()
    except ConvbenchError as exc:
        print(f"convbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("convbench: interrupted", file=sys.stderr)
        return 130


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def list_models(fmt: str) -> int:
    from harness.plugin_manager import build_registries, get_plugin_manager
    from harness.shapes import summarize
    rows: list[dict[str, Any]] = []
    for model in build_registries(get_plugin_manager()).models:
        s = summarize(model)
        rows.append({"id": model.name, "input_shape": list(model.input_shape), "classes": model.num_classes,
                     "params": s.params, "flops_per_image": s.flops, "description": model.description})
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'id':20s} {'input':>11s} {'classes':>7s} {'params':>13s} {'GFLOPs':>8s}")
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        print(f"{r['id']:20s} {shape:>11s} {r['classes']:>7d} {r['params']:>13,d} {r['flops_per_image'] / 1e9:>8.3f}")
    print("FLOPs: forward pass per image, 2 x multiply-accumulates of conv and linear layers")
    return 0


def list_plugins() -> int:
    from harness.plugin_manager import build_registries, get_plugin_manager
    pm = get_plugin_manager()
    regs = build_registries(pm)
    origins = getattr(pm, "convbench_origins", {})
    names = sorted({n for n, p in pm.list_name_plugin() if p is not None} | set(origins))
    for name in names:
        origin = origins.get(name)
        plugin = pm.get_plugin(name)
        where = f"{origin.distribution} {origin.version}" if origin and origin.distribution else "(registered directly)"
        if origin and origin.disabled:
            print(f"{name}: disabled by CONVBENCH_DISABLE_PLUGINS")
            continue
        if origin and origin.error:
            print(f"{name}: {where}: failed to load: {origin.error}")
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        print(f"{name}: {where}")
        print(f"  hooks: {', '.join(hooks)}")
    for spec in regs.frameworks:
        ok, reason = spec.installed()
        state = f"available ({spec.module} {spec.version()})" if ok else f"unavailable: {reason}"
        print(f"framework {spec.name}: {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
