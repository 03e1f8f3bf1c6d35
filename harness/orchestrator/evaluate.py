"""``convbench eval`` across processes: a portable checkpoint evaluated in a worker of the chosen framework."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.orchestrator.workers import run_worker, worker_env


def evaluate_in_worker(spec: FrameworkSpec, job: dict[str, Any], python: str | None = None) -> dict[str, Any]:
    """The worker's payload ({test_accuracy, test_loss, images}); ConvbenchError with the worker's reason."""
    installed, reason = (True, "") if python else spec.installed()
    if not installed:
        raise ConvbenchError(f"framework {spec.name} is unavailable: {reason}")
    with tempfile.TemporaryDirectory(prefix="convbench-eval-") as tmp:
        path = Path(tmp) / "job.json"
        path.write_text(json.dumps(job))
        code, payload = run_worker(["eval", str(path)], worker_env(spec, job["threads"]), Path(tmp) / "worker.log",
                                   None, print, python)
        log = (Path(tmp) / "worker.log").read_text(errors="replace")
    if code != 0 or payload is None or "error" in payload:
        why = (payload or {}).get("error") or log.strip().splitlines()[-1:]
        raise ConvbenchError(f"evaluation failed: {why}")
    return payload
