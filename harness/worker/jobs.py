"""The jobs a worker runs for the commands: a cell, a framework probe, an evaluation, verification logits,
the CPU GEMM peak. Each takes its JSON spec and returns the JSON payload the orchestrator reads back."""
from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from harness.errors import ConvbenchError
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import Cell


def cell(spec: dict[str, Any], progress: TextIO) -> dict[str, Any]:
    """Returns {"rows": [...], and optionally "history" (per-epoch rows) and "samples" (raw timings)}."""
    c = Cell.from_dict(spec)
    if c.run.mode == "speed":
        from harness.worker.speed_cell import run_speed_cell
        return run_speed_cell(c, progress)
    from harness.worker.train_cell import run_train_cell
    return run_train_cell(c, progress)


def interpreter() -> dict[str, Any]:
    """This worker's Python and convbench, as the orchestrator checks them against its own."""
    from harness import __version__
    return {"executable": sys.executable, "python": platform.python_version(), "convbench": __version__}


def info(framework: str) -> dict[str, Any]:
    """The interpreter and the framework's installed version, without importing the framework."""
    spec = build_registries(get_plugin_manager()).frameworks.get(framework)
    installed, reason = spec.installed()
    return {**interpreter(), "framework": framework, "installed": installed, "reason": reason, "version": spec.version()}


def probe(framework: str) -> dict[str, Any]:
    """The framework's version and devices, as its plugin discovers them (imports the framework)."""
    pm = get_plugin_manager()
    spec = build_registries(pm).frameworks.get(framework)
    devices = pm.hook.convbench_discover_devices(framework=framework)
    if devices is None:
        raise ConvbenchError(f"no plugin discovers devices for {framework!r}")
    runtime = pm.hook.convbench_runtime_versions(framework=framework) or {}
    return {"framework": framework, "version": spec.version(), "devices": [d.to_dict() for d in devices],
            "runtime": runtime, "interpreter": interpreter()}


def evaluate(job: dict[str, Any]) -> dict[str, Any]:
    """``convbench eval``: a portable weight file evaluated on a dataset's test split."""
    from harness.model.weights import load_weights
    from harness.settings import RunSettings
    from harness.worker.context import setup
    from harness.worker.training import evaluate as evaluate_native
    run = RunSettings(dataset=job["dataset"], data_dir=job.get("data_dir"), no_checksum=bool(job.get("no_checksum")),
                      threads=int(job["threads"]), device=job["device"], weight_decay=0.0)
    c = Cell(run_id="eval", name="eval", framework=job["framework"], model=job["model"], seed=0,
             device=job["device"], batch_size=int(job["batch_size"]), run=run)
    ctx = setup(c)
    ctx.native.set_weights(load_weights(job["weights"])[0])
    loss, acc = evaluate_native(ctx.native, ctx.data, c.batch_size)
    return {"test_accuracy": acc, "test_loss": loss, "images": len(ctx.data.y_test)}


def verification_logits(job: dict[str, Any]) -> dict[str, Any]:
    """``convbench verify``: build each model, load the shared weights, save its eval logits."""
    from harness.model.weights import load_weights
    framework, folder = job["framework"], Path(job["folder"])
    pm = get_plugin_manager()
    regs = build_registries(pm)
    out: dict[str, Any] = {}
    for name in job["models"]:
        model = regs.models.get(name)
        try:
            native = pm.hook.convbench_build_model(framework=framework, model=model, device="cpu",
                                                   settings={"seed": 0, "threads": job["threads"], "momentum": 0.9,
                                                             "weight_decay": 0.0})
            weights, _ = load_weights(folder / f"{name}.weights.npz")
            native.set_weights(weights)
            logits = native.forward(np.load(folder / f"{name}.input.npy"))
            np.save(folder / f"{name}.{framework}.logits.npy", logits)
            out[name] = {"params": native.param_count()}
        except Exception as exc:  # report per model; the others still run
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def doctor(job: dict[str, Any]) -> dict[str, Any]:
    """``convbench doctor``: the checks of one framework on one device (as this worker names it)."""
    from harness.worker.doctor import run_checks
    return {"checks": run_checks(job["framework"], job["device"], bool(job["tf32"]), bool(job["autotune"]),
                                 int(job["threads"]))}


def gemm() -> dict[str, Any]:
    from harness.hardware.peaks import measure_cpu_gemm_gflops
    return {"gflops": measure_cpu_gemm_gflops()}
