"""Before any cell: what each framework is (version, devices), asked of a short-lived worker per framework."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.devices import canonical
from harness.frameworks import FrameworkSpec
from harness.orchestrator.workers import run_worker, worker_env


@dataclass
class Probe:
    framework: str
    available: bool
    reason: str = ""
    version: str | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)
    runtime: dict[str, Any] = field(default_factory=dict)   # CUDA runtime, cuDNN, NCCL as the framework reports them

    def device(self, name: str) -> dict[str, Any] | None:
        """The probed device a device string means (``cuda`` is ``cuda:0``), or None if absent."""
        wanted = canonical(name)
        return next((d for d in self.devices if d["name"] == wanted), None)


def probe_framework(spec: FrameworkSpec, threads: int, log: Path) -> Probe:
    installed, reason = spec.installed()
    if not installed:
        return Probe(spec.name, False, reason)
    code, payload = run_worker(["probe", spec.name], worker_env(spec, threads), log, 300, lambda line: None)
    if code != 0 or payload is None:
        why = (payload or {}).get("error") or f"probe exited with code {code}; see {log}"
        return Probe(spec.name, False, f"import failed: {why}")
    return Probe(spec.name, True, "", payload.get("version"), payload.get("devices", []), payload.get("runtime", {}))


def describe(p: Probe) -> str:
    devices = ", ".join(d["name"] for d in p.devices)
    return f"  {p.framework}: {p.version} ({devices})" if p.available else f"  {p.framework}: unavailable ({p.reason})"


def measure_cpu_peak(threads: int, log: Path) -> float | None:
    """The float32 GEMM rate of this machine's CPU with ``threads`` threads, in a worker (GFLOP/s)."""
    code, payload = run_worker(["gemm", "-"], worker_env(None, threads), log, 300, lambda line: None)
    return payload.get("gflops") if payload and code == 0 else None
