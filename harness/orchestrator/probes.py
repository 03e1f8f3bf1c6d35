"""Before any cell: what each framework is (version, devices), asked of a short-lived worker per framework."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.devices import Device
from harness.frameworks import FrameworkSpec
from harness.orchestrator import interpreters
from harness.orchestrator.workers import WorkerStartError, run_job, worker_env
from harness.worker.protocol import GemmJob, ProbeJob


@dataclass
class Probe:
    framework: str
    available: bool
    reason: str = ""
    version: str | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)   # CUDA runtime, cuDNN, NCCL as the framework reports them
    interpreter: dict[str, Any] = field(default_factory=dict)  # the workers' Python: executable, version, convbench
    bad_interpreter: bool = False   # the framework's --python is unusable (a user error when it was asked for)

    def device(self, device: Device) -> dict[str, Any] | None:
        """The probed device (its name and description), or None if the framework does not see it."""
        return next((d for d in self.devices if d["name"] == device.name), None)


def probe_framework(spec: FrameworkSpec, threads: int, log: Path, python: str | None = None) -> Probe:
    """The framework as its workers will see it, in its own interpreter when it has one (``--python``)."""
    if python is None:
        installed, reason = spec.installed()
        if not installed:
            return Probe(spec.name, False, reason)
    elif why := interpreters.problem(python):
        return Probe(spec.name, False, f"--python {spec.name}={python}: {why}", bad_interpreter=True)
    start = log.stat().st_size if log.exists() else 0
    try:
        result = run_job(ProbeJob(spec.name), worker_env(spec, threads), log, 300, python=python)
    except WorkerStartError as exc:   # e.g. not a program the system can run (a file without #!): ENOEXEC
        where = f"--python {spec.name}={python}: " if python is not None else ""
        return Probe(spec.name, False, f"{where}{exc}", bad_interpreter=python is not None)
    code, payload = result.code, result.payload
    if python is not None and (why := interpreter_problem(python, code, payload, log, start)):
        return Probe(spec.name, False, f"--python {spec.name}={python}: {why}", bad_interpreter=True)
    if code != 0 or payload is None:
        why = (payload or {}).get("error") or f"probe exited with code {code}; see {log}"
        return Probe(spec.name, False, f"import failed: {why}")
    facts = {k: v for k, v in payload.get("interpreter", {}).items() if k != "build_files"}  # meta.json keeps the hash
    return Probe(spec.name, True, "", payload.get("version"), payload.get("devices", []), payload.get("runtime", {}),
                 facts)


def interpreter_problem(python: str, code: int | None, payload: dict[str, Any] | None, log: Path, start: int) -> str | None:
    """Why a framework's own interpreter cannot run convbench's workers: not a Python, no convbench, another
    convbench version or build. None when it can (the framework itself may still fail to import: a normal probe
    result)."""
    facts = (payload or {}).get("interpreter", {})
    if facts.get("convbench") is not None:
        return interpreters.mismatch(facts)
    text = log.read_text(errors="replace")[start:] if log.exists() else ""
    if payload is None and "No module named" in text and ("harness" in text or "pluggy" in text):
        return f"has no convbench installed (pip install convbench=={__version__} there)"
    if payload is None and code != 0:
        tail = " | ".join(text.strip().splitlines()[-2:])
        return f"cannot run convbench's worker (exit {code}): {tail}" if tail else f"cannot run convbench's worker (exit {code})"
    return None


def describe(p: Probe) -> str:
    devices = ", ".join(d["name"] for d in p.devices)
    where = f" in {p.interpreter['executable']}" if p.interpreter.get("executable") not in (None, sys.executable) else ""
    return (f"  {p.framework}: {p.version} ({devices}){where}" if p.available
            else f"  {p.framework}: unavailable ({p.reason})")


def measure_cpu_peak(threads: int, log: Path) -> float | None:
    """The float32 GEMM rate of this machine's CPU with ``threads`` threads, in a worker (GFLOP/s)."""
    result = run_job(GemmJob(), worker_env(None, threads), log, 300)
    return result.payload.get("gflops") if result.payload and result.code == 0 else None
