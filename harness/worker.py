"""The per-cell worker process: ``python -m harness.worker cell SPEC.json OUT.json``,
``... probe FRAMEWORK OUT.json`` or ``... verify JOB.json OUT.json``.

It is the only kind of process that imports a deep-learning framework. Progress lines go to the
original stdout; anything the framework prints to stdout is diverted to stderr (the cell's log).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from harness.errors import ConvbenchError
from harness.records import make_row


OOM_NAMES = ("OutOfMemoryError", "ResourceExhaustedError", "MemoryError")


def is_out_of_memory(exc: BaseException) -> bool:
    """Torch's OutOfMemoryError / 'out of memory' RuntimeError, TF's ResourceExhaustedError, MemoryError."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & set(OOM_NAMES)) or "out of memory" in str(exc).lower()


def die_with_parent() -> None:
    """Linux: the kernel kills this worker if the orchestrator dies (even by kill -9)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    parent = os.environ.get("CONVBENCH_PARENT_PID")
    if parent and int(parent) != os.getppid():  # the orchestrator died before prctl took hold
        os._exit(137)


def _progress_stream() -> TextIO:
    saved = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(saved, "w", buffering=1)


def probe(framework: str) -> dict[str, Any]:
    from harness.plugin_manager import build_registries, get_plugin_manager
    pm = get_plugin_manager()
    regs = build_registries(pm)
    spec = regs.frameworks.get(framework)
    devices = pm.hook.convbench_discover_devices(framework=framework)
    if devices is None:
        raise ConvbenchError(f"no plugin discovers devices for {framework!r}")
    return {"framework": framework, "version": spec.version(), "devices": [d.to_dict() for d in devices]}


def run_cell(cell: dict[str, Any], progress: TextIO) -> dict[str, Any]:
    from harness.datasets import load_dataset
    from harness.plugin_manager import build_registries, get_plugin_manager
    from harness.shapes import summarize
    from harness.training import Diverged, Recipe, train
    from harness.weights import init_weights, save_weights

    started = time.perf_counter()
    pm = get_plugin_manager()
    regs = build_registries(pm)
    model = regs.models.get(cell["model"])
    summary = summarize(model)
    fw, device = cell["framework"], cell["device"]
    data = load_dataset(cell["dataset"], data_dir=cell.get("data_dir"), shape=model.input_shape,
                        num_classes=model.num_classes, seed=cell["seed"],
                        checksums_off=cell.get("no_checksum", False))
    if data.shape != tuple(model.input_shape):
        raise ConvbenchError(f"model {model.name} takes {model.input_shape}, dataset {data.name} gives {data.shape}")
    recipe = Recipe(epochs=cell["epochs"], batch_size=cell["batch_size"], lr=cell["lr"], momentum=cell["momentum"],
                    weight_decay=cell["weight_decay"], augment=cell.get("augment", False))
    settings = {"momentum": recipe.momentum, "weight_decay": recipe.weight_decay, "seed": cell["seed"],
                "threads": cell["threads"]}
    native = pm.hook.convbench_build_model(framework=fw, model=model, device=device, settings=settings)
    if native is None:
        raise ConvbenchError(f"no plugin builds models for framework {fw!r}")
    native.set_weights(init_weights(model, cell["seed"]))
    pm.hook.convbench_peak_memory_mb(framework=fw, device=device, reset=True)

    def sync() -> None:
        pm.hook.convbench_synchronize(framework=fw, device=device)

    def on_epoch(row: dict[str, float]) -> None:
        print(f"epoch {row['epoch']}/{recipe.epochs} loss {row['train_loss']:.4f} "
              f"test_acc {row['test_accuracy']:.4f} lr {row['lr']:g} train {row['train_time_s']:.1f}s", file=progress)

    common = {"params": native.param_count(), "flops_per_image": summary.flops,
              "framework_version": cell.get("framework_version")}
    try:
        result = train(native, data, recipe, cell["seed"], sync, on_epoch)
    except Diverged as exc:
        return make_row(cell, status="diverged", error=str(exc), **common)
    peak = pm.hook.convbench_peak_memory_mb(framework=fw, device=device, reset=False)
    if cell.get("checkpoint"):
        save_weights(cell["checkpoint"], native.get_weights(), model=model.name, framework=fw)
    last = result.history[-1] if result.history else {}
    row = make_row(cell, status="ok", error="", test_accuracy=result.test_accuracy,
                   test_loss=last.get("test_loss"), train_loss=last.get("train_loss"),
                   train_time_s=result.train_time_s, eval_time_s=result.eval_time_s,
                   images_per_sec=result.train_images / result.train_time_s if result.train_time_s else math.nan,
                   peak_mem_mb=peak, wall_time_s=time.perf_counter() - started, **common)
    row["history"] = result.history
    return row


def main(argv: list[str]) -> int:
    die_with_parent()
    progress = _progress_stream()
    command, target, out_path = argv
    try:
        if command == "probe":
            payload = probe(target)
        elif command == "verify":
            from harness.verify import compute_logits
            with open(target) as fh:
                job = json.load(fh)
            payload = compute_logits(job["framework"], job["models"], Path(job["folder"]), job["threads"])
        else:
            with open(target) as fh:
                payload = run_cell(json.load(fh), progress)
        code = 0
    except ConvbenchError as exc:
        payload, code = {"error": str(exc), "kind": "user"}, 3
    except BaseException as exc:  # a bug, or a framework failure: keep the traceback for the log
        traceback.print_exc()
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        payload, code = {"error": message, "kind": "exception"}, 4
        if is_out_of_memory(exc):
            payload["status_hint"] = "oom"
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, default=float)
    os.replace(tmp, out_path)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
