"""``convbench eval``: a portable checkpoint (from any framework) evaluated in any framework."""
from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.args import add_interpreter_options, device_arg, positive_int
from harness.devices import CPU
from harness.model.weights import check_weights, load_weights
from harness.orchestrator.evaluate import evaluate_in_worker
from harness.orchestrator.interpreters import resolve_pythons
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import EVAL_BATCH, default_threads
from harness.worker.protocol import EvalJob


def add_parser(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate a portable checkpoint in any framework")
    ev.add_argument("--weights", required=True, metavar="FILE.npz",
                    help="portable weight file (.npz) from any framework (a run's cells/<cell>/checkpoint.npz)")
    ev.add_argument("--framework", required=True, help="the framework to evaluate in (any, not only the one that trained)")
    ev.add_argument("--model", required=True, help="the model the weights belong to (convbench list names them)")
    ev.add_argument("--dataset", default="digits", help="test split to evaluate on: digits (default), cifar10 or synthetic")
    ev.add_argument("--data-dir", metavar="DIR",
                    help="folder holding CIFAR-10 (default: $CONVBENCH_DATA, else ~/.cache/convbench, where a missing "
                         "CIFAR-10 is downloaded)")
    ev.add_argument("--no-checksum", action="store_true", help="accept CIFAR-10 files whose MD5 differs from the release")
    ev.add_argument("--device", type=device_arg, default=CPU, help="cpu, cuda or cuda:N (default cpu)")
    ev.add_argument("--batch-size", type=positive_int, default=EVAL_BATCH, help=f"evaluation batch (default {EVAL_BATCH})")
    ev.add_argument("--threads", type=positive_int, help="CPU threads of the worker (default: all cores)")
    add_interpreter_options(ev)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    regs = build_registries(get_plugin_manager())
    spec = regs.frameworks.get(args.framework)
    model = regs.models.get(args.model)
    weights, meta = load_weights(args.weights)
    check_weights(model, weights, source=f"weight file {args.weights!r}")
    job = EvalJob(framework=spec.name, model=model.name, weights=str(Path(args.weights).resolve()),
                  dataset=args.dataset, data_dir=args.data_dir, no_checksum=args.no_checksum, device=args.device,
                  batch_size=args.batch_size, threads=args.threads or default_threads())
    result = evaluate_in_worker(spec, job, resolve_pythons(args.python, args.config, regs.frameworks.names()).get(spec.name))
    trained = f" (trained in {meta['framework']}, epoch {meta.get('epoch', '?')})" if "framework" in meta else ""
    print(f"{model.name} in {spec.name} on {args.dataset}{trained}: test accuracy {result['test_accuracy']:.4f}, "
          f"test loss {result['test_loss']:.4f} over {result['images']} images")
    return 0
