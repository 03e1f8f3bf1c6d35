"""The jobs a worker runs (``protocol``'s job types): a cell, a framework probe or interpreter check, an
evaluation, verification logits, the doctor's checks, the CPU GEMM peak. Each returns the JSON payload the
orchestrator reads back."""
from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from harness.errors import ConvbenchError
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import BuildSettings, Cell, RunSettings
from harness.worker.protocol import DoctorJob, EvalJob, ExplainJob, GemmJob, InfoJob, Job, ProbeJob, VerifyJob


def run(job: Job, progress: TextIO) -> dict[str, Any]:
    if isinstance(job, Cell):
        return cell(job, progress)
    if isinstance(job, ExplainJob):
        from harness.worker.explain_cell import run_explain
        return run_explain(job, progress)
    handlers = {ProbeJob: probe, InfoJob: info, GemmJob: gemm, EvalJob: evaluate, VerifyJob: verification_logits,
                DoctorJob: doctor}
    return handlers[type(job)](job)  # type: ignore[operator]


def cell(c: Cell, progress: TextIO) -> dict[str, Any]:
    """Returns {"rows": [...], and optionally "history" (per-epoch rows) and "samples" (raw timings)}."""
    if c.run.mode == "speed":
        from harness.worker.speed_cell import run_speed_cell
        return run_speed_cell(c, progress)
    from harness.worker.train_cell import run_train_cell
    return run_train_cell(c, progress)


def interpreter() -> dict[str, Any]:
    """This worker's Python and convbench (its version, and its build identity: one hash, and each source file's
    so the orchestrator can name what differs), as the orchestrator checks them against its own."""
    from harness import __version__
    from harness.identity import build_id, source_hashes
    return {"executable": sys.executable, "python": platform.python_version(), "convbench": __version__,
            "build": build_id(), "build_files": source_hashes()}


def info(job: InfoJob) -> dict[str, Any]:
    """The interpreter and the framework's installed version, without importing the framework."""
    spec = build_registries(get_plugin_manager()).frameworks.get(job.framework)
    installed, reason = spec.installed()
    return {**interpreter(), "framework": job.framework, "installed": installed, "reason": reason,
            "version": spec.version()}


def probe(job: ProbeJob) -> dict[str, Any]:
    """The framework's version and devices, as its plugin discovers them (imports the framework)."""
    pm = get_plugin_manager()
    spec = build_registries(pm).frameworks.get(job.framework)
    devices = pm.hook.convbench_discover_devices(framework=job.framework)
    if devices is None:
        raise ConvbenchError(f"no plugin discovers devices for {job.framework!r}")
    runtime = pm.hook.convbench_runtime_versions(framework=job.framework) or {}
    return {"framework": job.framework, "version": spec.version(), "devices": [d.to_dict() for d in devices],
            "runtime": runtime, "interpreter": interpreter()}


def evaluate(job: EvalJob) -> dict[str, Any]:
    """``convbench eval``: a portable weight file evaluated on a dataset's test split."""
    from harness.model.weights import load_weights
    from harness.worker.context import build_native, model_data
    from harness.worker.training import test_metrics
    pm = get_plugin_manager()
    model = build_registries(pm).models.get(job.model)
    data = model_data(model, RunSettings(dataset=job.dataset, data_dir=job.data_dir, no_checksum=job.no_checksum))
    native = build_native(pm, job.framework, model, job.device, BuildSettings(weight_decay=0.0, threads=job.threads))
    native.set_weights(load_weights(job.weights)[0])
    loss, acc = test_metrics(native, data, job.batch_size)
    return {"test_accuracy": acc, "test_loss": loss, "images": len(data.y_test)}


def verification_logits(job: VerifyJob) -> dict[str, Any]:
    """``convbench verify``: build each model, load the shared weights, save its eval logits."""
    from harness.devices import CPU
    from harness.model.weights import load_weights
    from harness.worker.context import build_native
    folder = Path(job.folder)
    pm = get_plugin_manager()
    regs = build_registries(pm)
    out: dict[str, Any] = {}
    for name in job.models:
        model = regs.models.get(name)
        try:
            native = build_native(pm, job.framework, model, CPU, BuildSettings(weight_decay=0.0, threads=job.threads))
            weights, _ = load_weights(folder / f"{name}.weights.npz")
            native.set_weights(weights)
            logits = native.forward(np.load(folder / f"{name}.input.npy"))
            np.save(folder / f"{name}.{job.framework}.logits.npy", logits)
            out[name] = {"params": native.param_count()}
        except Exception as exc:  # report per model; the others still run
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def doctor(job: DoctorJob) -> dict[str, Any]:
    """``convbench doctor``: the checks of one framework on one device (as this worker names it)."""
    from harness.worker.doctor import run_checks
    return {"checks": run_checks(job.framework, job.device, job.tf32, job.autotune, job.threads)}


def gemm(job: GemmJob) -> dict[str, Any]:
    from harness.hardware.peaks import measure_cpu_gemm_gflops
    return {"gflops": measure_cpu_gemm_gflops()}
