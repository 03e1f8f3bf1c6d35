"""``convbench explain`` across processes: each framework's per-layer times in its own worker (``ExplainJob``), on the
device asked for (a GPU worker sees only that GPU), one framework after another, so no two time at once."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.devices import Device, visible_ids
from harness.frameworks import FrameworkSpec
from harness.orchestrator.probes import Probe
from harness.orchestrator.workers import WorkerStartError, recorded_env, run_job, worker_env
from harness.settings import Cell, RunSettings
from harness.worker.protocol import ExplainJob, describe_event, parse_event


@dataclass(frozen=True)
class ExplainRequest:
    """What the command asked for, as every framework's worker runs it."""
    model: str
    phase: str
    depth: int | None
    run: RunSettings          # speed settings: batch size resolved, device, threads, execution switches, sampling
    timeout: float | None = None
    method: str = "cells"     # cells: each node built alone; profiler: the framework's profiler over the network's step


def explain_cell(request: ExplainRequest, spec: FrameworkSpec, probe: Probe, device: Device) -> Cell:
    """The framework's cell as its worker receives it (a GPU worker sees only ``device``, as its cuda:0)."""
    described = (probe.device(device) or {}).get("description")
    return Cell(run_id="explain", name=f"{spec.name}-{request.model}", framework=spec.name, model=request.model,
                run=request.run, framework_version=probe.version, device_name=described,
                visible=(device,) if device.is_gpu else None)


def explain_framework(request: ExplainRequest, spec: FrameworkSpec, probe: Probe, log: Path,
                      python: str | None = None, say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """One framework's payload (``harness.worker.explain_cell``), or ``{"framework", "error"}`` saying why not."""
    device = request.run.device
    if not probe.available:
        return {"framework": spec.name, "error": f"unavailable: {probe.reason}"}
    if probe.device(device) is None:
        return {"framework": spec.name, "error": f"{spec.name} sees {', '.join(d['name'] for d in probe.devices)}, "
                                                 f"not {device}"}
    env = worker_env(spec, request.run.threads)
    if device.is_gpu:
        env["CUDA_VISIBLE_DEVICES"] = visible_ids([device], os.environ.get("CUDA_VISIBLE_DEVICES"))[0]

    def heard(line: str) -> None:
        event = parse_event(line)
        if event is not None and event.get("event") == "phase":
            say(f"{spec.name}: {describe_event(event)}")

    job = ExplainJob(explain_cell(request, spec, probe, device), request.phase, request.depth, request.method)
    try:
        result = run_job(job, env, log, request.timeout, on_line=heard, python=python)
    except WorkerStartError as exc:
        return {"framework": spec.name, "error": str(exc)}
    why = result.failure()
    if why or not isinstance(result.payload, dict) or "layers" not in result.payload:
        return {"framework": spec.name, "error": why or "the worker returned no layers"}
    return {**result.payload, "threads": request.run.threads, "worker_env": recorded_env(env),
            "interpreter": probe.interpreter.get("executable")}
