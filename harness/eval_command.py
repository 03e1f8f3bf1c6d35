"""``convbench eval``: a portable checkpoint evaluated in any framework, in its own worker."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TextIO

from harness.errors import ConvbenchError


def run_eval(args: argparse.Namespace) -> int:
    from harness.plugin_manager import build_registries, get_plugin_manager
    from harness.runner import run_worker, worker_env
    from harness.weights import check_weights, load_weights
    regs = build_registries(get_plugin_manager())
    spec = regs.frameworks.get(args.framework)
    model = regs.models.get(args.model)
    installed, reason = spec.installed()
    if not installed:
        raise ConvbenchError(f"framework {spec.name} is unavailable: {reason}")
    weights, meta = load_weights(args.weights)
    check_weights(model, weights, source=f"weight file {args.weights!r}")
    threads = args.threads or os.cpu_count() or 1
    job = {"framework": spec.name, "model": model.name, "weights": str(Path(args.weights).resolve()),
           "dataset": args.dataset, "data_dir": args.data_dir, "no_checksum": args.no_checksum,
           "device": args.device, "batch_size": args.batch_size, "threads": threads}
    with tempfile.TemporaryDirectory(prefix="convbench-eval-") as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(job))
        code, payload = run_worker(["eval", str(path)], worker_env(spec, threads), Path(tmp) / "worker.log", None,
                                   print)
        log = (Path(tmp) / "worker.log").read_text(errors="replace")
    if code != 0 or payload is None or "error" in payload:
        why = (payload or {}).get("error") or log.strip().splitlines()[-1:]
        raise ConvbenchError(f"evaluation failed: {why}")
    trained = f" (trained in {meta['framework']}, epoch {meta.get('epoch', '?')})" if "framework" in meta else ""
    print(f"{model.name} in {spec.name} on {args.dataset}{trained}: test accuracy {payload['test_accuracy']:.4f}, "
          f"test loss {payload['test_loss']:.4f} over {payload['images']} images")
    return 0


def evaluate_job(job: dict[str, Any], progress: TextIO) -> dict[str, Any]:
    """Worker side."""
    from harness.cell import setup
    from harness.training import evaluate
    from harness.weights import load_weights
    cell = {**job, "seed": 0, "momentum": 0.9, "weight_decay": 0.0}
    ctx = setup(cell)
    ctx.native.set_weights(load_weights(job["weights"])[0])
    loss, acc = evaluate(ctx.native, ctx.data, job["batch_size"])
    return {"test_accuracy": acc, "test_loss": loss, "images": len(ctx.data.y_test)}
