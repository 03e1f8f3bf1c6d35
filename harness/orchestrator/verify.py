"""``convbench verify`` across processes: each framework computes the shared inputs' logits in its own worker."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.model.graph import ModelDef
from harness.model.verification import Comparison, compare, write_inputs
from harness.orchestrator.workers import run_worker, worker_env


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
           pythons: dict[str, str]) -> list[Comparison]:
    """Every model's logits in every framework (one worker each), compared pairwise."""
    names = [s.name for s in specs]
    with tempfile.TemporaryDirectory(prefix="convbench-verify-") as tmp:
        folder = Path(tmp)
        write_inputs(models, folder, seed)
        results: dict[str, dict[str, Any]] = {}
        for spec in specs:
            job = folder / f"{spec.name}.job.json"
            job.write_text(json.dumps({"framework": spec.name, "models": [m.name for m in models], "folder": tmp,
                                       "threads": threads}))
            print(f"computing logits in {spec.name} ...", flush=True)
            code, payload = run_worker(["verify", str(job)], worker_env(spec, threads), folder / "worker.log", None,
                                       lambda line: None, pythons.get(spec.name))
            if payload is None or "error" in payload and code != 0:
                log = (folder / "worker.log").read_text(errors="replace").strip().splitlines()[-3:]
                why = (payload or {}).get("error") or " | ".join(log)
                payload = {m.name: {"error": f"worker failed: {why}"} for m in models}
            results[spec.name] = payload
        return [compare(m, names, results, folder) for m in models]
