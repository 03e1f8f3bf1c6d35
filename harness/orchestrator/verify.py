"""``convbench verify`` across processes: each framework computes the shared inputs' logits in its own worker."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.model.graph import ModelDef
from harness.model.verification import Agreement, agreement, write_inputs
from harness.orchestrator.workers import run_job, worker_env
from harness.worker.protocol import VerifyJob


def usable_frameworks(specs: list[FrameworkSpec], explicit: bool, pythons: dict[str, str]) -> list[FrameworkSpec]:
    """The installed ones (a framework with its own interpreter is checked there, by its worker); an explicitly
    named framework that is not installed is a user error."""
    usable = []
    for spec in specs:
        installed, reason = (True, "") if spec.name in pythons else spec.installed()
        if installed:
            usable.append(spec)
        elif explicit:
            raise ConvbenchError(f"framework {spec.name} is unavailable: {reason}")
        else:
            print(f"skipping {spec.name}: {reason}")
    if not usable:
        raise ConvbenchError("no framework is available to verify")
    return usable


def verify(specs: list[FrameworkSpec], models: list[ModelDef], seed: int, threads: int,
           pythons: dict[str, str]) -> list[Agreement]:
    """Every model's logits in every framework (one worker each), compared pairwise."""
    names = [s.name for s in specs]
    with tempfile.TemporaryDirectory(prefix="convbench-verify-") as tmp:
        folder = Path(tmp)
        write_inputs(models, folder, seed)
        results: dict[str, dict[str, Any]] = {}
        for spec in specs:
            print(f"computing logits in {spec.name} ...", flush=True)
            job = VerifyJob(spec.name, tuple(m.name for m in models), tmp, threads)
            result = run_job(job, worker_env(spec, threads), folder / "worker.log", python=pythons.get(spec.name))
            why = result.failure(lines=3)
            results[spec.name] = ({m.name: {"error": f"worker failed: {why}"} for m in models} if why
                                  else result.payload or {})
        return [agreement(m, names, results, folder) for m in models]
