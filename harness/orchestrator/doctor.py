"""``convbench doctor`` across processes: each framework's checks in its own worker, on the device asked for
(the worker sees only that GPU), once with TF32 and autotuning on and once with both off; with two GPUs or more, a
two-rank data-parallel smoke run per framework that has an engine for it."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.devices import CPU, Device, parse_device, visible_ids
from harness.frameworks import FrameworkSpec
from harness.orchestrator.cells import run_cell
from harness.orchestrator.probes import Probe, probe_framework
from harness.orchestrator.workers import run_job, worker_env
from harness.settings import Cell, RunSettings
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
    yield line("data parallel", *data_parallel_smoke(spec, probe, device, threads, python))


SMOKE_TIMEOUT = 600


def data_parallel_smoke(spec: FrameworkSpec, probe: Probe, device: Device, threads: int, python: str | None = None,
                        run: Callable[..., list[dict[str, Any]]] = run_cell) -> tuple[str, str]:
    """(status, detail) of one epoch of lenet5 on synthetic data trained by two ranks, on ``device`` and the next GPU
    the framework sees, exactly as ``convbench run --devices`` runs such a cell; n/a with fewer than two GPUs."""
    gpus = sorted((d for d in (parse_device(x["name"]) for x in probe.devices) if d.is_gpu), key=lambda d: d.index or 0)
    if not device.is_gpu:
        return "n/a", "cpu: the two-rank smoke run is over two GPUs"
    if len(gpus) < 2:
        return "n/a", f"{spec.name} sees {len(gpus)} GPU: a two-rank run needs two"
    if spec.data_parallel is None:
        return "n/a", f"the {spec.name} plugin has no data-parallel engine"
    pair = (device, next(d for d in gpus if d != device))
    settings = RunSettings(dataset="synthetic", epochs=1, batch_size=64, lr=0.01, device=device, devices=pair,
                           world_size=2, threads=threads, timeout=SMOKE_TIMEOUT,
                           pythons=(f"{spec.name}={python}",) if python else ())
    cell = Cell(run_id="doctor", name=f"{spec.name}-lenet5-x2", framework=spec.name, model="lenet5", run=settings,
                framework_version=probe.version, device_name=(probe.device(device) or {}).get("description"),
                dp_mode=spec.data_parallel)
    with tempfile.TemporaryDirectory(prefix="convbench-doctor-") as tmp:
        rows = run(cell, spec, Path(tmp) / "cell", lambda text: None)
    row = rows[-1] if rows else {"status": "error", "error": "no row"}
    where = f"lenet5 x64 on {pair[0]} + {pair[1]}, one epoch"
    if row.get("status") != "ok":
        return "FAIL", f"{where}: {row.get('status')}: {row.get('error')}"
    return "ok", f"{where}: test accuracy {row.get('test_accuracy', float('nan')):.3f}, world_size {row.get('world_size')}"


def run_doctor(specs: list[FrameworkSpec], asked: Device | None, threads: int, log: Path,
               pythons: dict[str, str], on_device: Callable[[Device], None] = lambda device: None,
               on_line: Callable[[dict[str, Any]], None] = lambda line: None) -> tuple[Device, list[dict[str, Any]]]:
    """(the device checked, every check line); ``on_device`` hears the device once it is picked and ``on_line`` each
    line as its worker returns it (a GPU's four workers take minutes: the command says each as it comes)."""
    probes = {spec.name: probe_framework(spec, threads, log, pythons.get(spec.name)) for spec in specs}
    device = pick_device(asked, probes)
    on_device(device)
    lines = []
    for spec in specs:
        for c in checks(spec, probes[spec.name], device, threads, pythons.get(spec.name)):
            on_line(c)
            lines.append(c)
    return device, lines
