"""``convbench doctor`` across processes: each framework's checks in its own worker, on the device asked for
(the worker sees only that GPU), once with TF32 and autotuning on and once with both off."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from harness.devices import CPU, Device, parse_device, visible_ids
from harness.frameworks import FrameworkSpec
from harness.orchestrator.probes import Probe, probe_framework
from harness.orchestrator.workers import run_job, worker_env
from harness.worker.protocol import DoctorJob

SWITCHES = ((True, True), (False, False))  # (tf32, autotune)


def pick_device(asked: Device | None, probes: dict[str, Probe]) -> Device:
    """The device asked for, or the first GPU any available framework sees, else cpu."""
    if asked:
        return asked
    gpus = sorted({parse_device(d["name"]) for p in probes.values() if p.available for d in p.devices},
                  key=lambda d: (d.kind, d.index or 0))
    return next((d for d in gpus if d.is_gpu), CPU)


def checks(spec: FrameworkSpec, probe: Probe, device: Device, threads: int,
           python: str | None = None) -> Iterator[dict[str, Any]]:
    """Every check line of one framework: {"framework", "switches", "name", "status", "detail"}."""
    def line(name: str, status: str, detail: str, switches: str = "") -> dict[str, Any]:
        return {"framework": spec.name, "switches": switches, "name": name, "status": status, "detail": detail}
    if not probe.available:  # an unusable --python is a failure; a framework that is not installed does not apply
        yield line("framework", "FAIL" if probe.bad_interpreter else "n/a", f"unavailable: {probe.reason}")
        return
    if probe.device(device) is None:
        yield line("device", "FAIL", f"{spec.name} sees {', '.join(d['name'] for d in probe.devices)}, not {device}")
        return
    env, local = worker_env(spec, threads), device
    if device.is_gpu:  # the worker sees only this GPU, as cuda:0
        env["CUDA_VISIBLE_DEVICES"] = visible_ids([device], os.environ.get("CUDA_VISIBLE_DEVICES"))[0]
        local = device.local((device,))
    for tf32, autotune in SWITCHES:
        switches = f"tf32 {'on' if tf32 else 'off'}, autotune {'on' if autotune else 'off'}"
        with tempfile.TemporaryDirectory(prefix="convbench-doctor-") as tmp:
            result = run_job(DoctorJob(spec.name, local, tf32, autotune, threads), env, Path(tmp) / "worker.log", 900,
                             python=python)
            why = result.failure() or (None if "checks" in (result.payload or {}) else "the worker returned no checks")
        if why:
            yield line("worker", "FAIL", why, switches)
            continue
        for c in (result.payload or {})["checks"]:
            yield line(c["name"], c["status"], c["detail"], switches)


def run_doctor(specs: list[FrameworkSpec], asked: Device | None, threads: int, log: Path,
               pythons: dict[str, str]) -> tuple[Device, list[dict[str, Any]]]:
    """(the device checked, every check line)."""
    probes = {spec.name: probe_framework(spec, threads, log, pythons.get(spec.name)) for spec in specs}
    device = pick_device(asked, probes)
    return device, [c for spec in specs for c in checks(spec, probes[spec.name], device, threads, pythons.get(spec.name))]
