"""The worker process: ``python -m harness.worker JOB.json OUT.json`` (see ``protocol``).

JOB.json holds one typed job (a cell, a probe, an evaluation, ...), run by ``jobs.run``. Progress lines go to
the original stdout; anything the framework prints to stdout is diverted to stderr (the worker's log).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import TextIO

from harness.errors import ConvbenchError
from harness.worker import jobs
from harness.worker.protocol import EXIT_EXCEPTION, EXIT_OK, EXIT_USER_ERROR, read_job

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


def main(argv: list[str]) -> int:
    die_with_parent()
    progress = _progress_stream()
    job_path, out_path = argv
    try:
        payload, code = jobs.run(read_job(job_path), progress), EXIT_OK
    except ConvbenchError as exc:
        payload, code = {"error": str(exc), "kind": "user"}, EXIT_USER_ERROR
    except BaseException as exc:  # a bug, or a framework failure: keep the traceback for the log
        traceback.print_exc()
        message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        payload, code = {"error": message, "kind": "exception"}, EXIT_EXCEPTION
        if is_out_of_memory(exc):
            payload["status_hint"] = "oom"
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, default=float)
    os.replace(tmp, out_path)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
