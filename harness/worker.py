"""The per-cell worker process: ``python -m harness.worker cell SPEC.json OUT.json``,
``... probe FRAMEWORK OUT.json`` or ``... verify JOB.json OUT.json``.

It is the only kind of process that imports a deep-learning framework. Progress lines go to the
original stdout; anything the framework prints to stdout is diverted to stderr (the cell's log).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from harness.errors import ConvbenchError

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
    """Returns {"rows": [...], and optionally "history" (per-epoch rows) and "samples" (raw timings)}."""
    if cell["mode"] == "speed":
        from harness.speed_cell import run_speed_cell
        return run_speed_cell(cell, progress)
    from harness.train_cell import run_train_cell
    return run_train_cell(cell, progress)


def main(argv: list[str]) -> int:
    die_with_parent()
    progress = _progress_stream()
    command, target, out_path = argv
    try:
        if command == "probe":
            payload = probe(target)
        elif command == "eval":
            from harness.eval_command import evaluate_job
            with open(target) as fh:
                payload = evaluate_job(json.load(fh), progress)
        elif command == "gemm":
            from harness.peaks import measure_cpu_gemm_gflops
            payload = {"gflops": measure_cpu_gemm_gflops()}
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
