"""``convbench eval`` across processes: a portable checkpoint evaluated in a worker of the chosen framework."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.orchestrator.workers import run_job, worker_env
from harness.worker.protocol import EvalJob


def evaluate_in_worker(spec: FrameworkSpec, job: EvalJob, python: str | None = None) -> dict[str, Any]:
    """The worker's payload ({test_accuracy, test_loss, images}); ConvbenchError with the worker's reason."""
    installed, reason = (True, "") if python else spec.installed()
    if not installed:
        raise ConvbenchError(f"framework {spec.name} is unavailable: {reason}")
    with tempfile.TemporaryDirectory(prefix="convbench-eval-") as tmp:
        result = run_job(job, worker_env(spec, job.threads), Path(tmp) / "worker.log", on_line=print, python=python)
        why = result.failure(lines=1)
    if why:
        raise ConvbenchError(f"evaluation failed: {why}")
    assert result.payload is not None
    return result.payload
