"""``convbench doctor``'s checks, run inside one framework's worker on one device.

Each check is one line: a name, ``ok`` / ``FAIL`` / ``n/a`` (does not apply on this device), and what was
measured. The orchestrator runs this job twice per framework, once with TF32 and autotuning on and once with
both off, so the switches are seen to take effect (read back from the framework) and the arithmetic to follow
them (``harness.worker.doctor_numbers``: the checks that catch wrong numbers).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import Any, Callable

import numpy as np
import pluggy

from harness.devices import CPU, Device
from harness.model.graph import ModelDef
from harness.model.verification import TOLERANCE
from harness.model.weights import init_weights
from harness.native import NativeModel
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import BuildSettings
from harness.worker import doctor_numbers as numbers
from harness.worker.context import build_native
from harness.worker.doctor_numbers import FAIL, NA, OK, Check
from harness.worker.timing import time_phase

SPEED_STEPS = 20
# queued work for the synchronisation check: enough that the device (or JAX's CPU runtime) is still busy when the
# last step has been dispatched: on a GPU a few TFLOP per step, far above an eager step's launch time
SYNC_WORK = {True: ("vgg16_imagenet", 32, 5), False: ("lenet5", 128, 10)}   # gpu? -> (model, batch, steps)
__all__ = ["Check", "FAIL", "NA", "OK", "run_checks"]


def run_checks(framework: str, device: Device, tf32: bool, autotune: bool, threads: int) -> list[dict[str, Any]]:
    """Every check for ``framework`` on ``device`` (as this worker names it); never raises for a failed check."""
    pm = get_plugin_manager()
    regs = build_registries(pm)
    settings = BuildSettings(weight_decay=0.0, threads=threads, tf32=tf32, autotune=autotune)
    checks: list[Check] = []

    def attempt(name: str, fn: Callable[[], Check]) -> None:
        try:
            checks.append(fn())
        except Exception as exc:  # a check that crashes is a failed check, and the others still run
            checks.append(Check(name, FAIL, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))

    def build(model: str | ModelDef, on: Device = device) -> NativeModel:
        definition = regs.models.get(model) if isinstance(model, str) else model
        native = build_native(pm, framework, definition, on, settings)
        native.set_weights(init_weights(definition, 0))
        return native

    def sync() -> None:
        pm.hook.convbench_synchronize(framework=framework, device=device.name)

    gpu = device.is_gpu
    seen = {d.name: d for d in pm.hook.convbench_discover_devices(framework=framework) or []}.get(device.name)
    recorded: dict[str, Any] = {}

    def switches() -> Check:
        native = build("lenet5")
        recorded.update(getattr(native, "execution_info", dict)())
        return check_switches(native, gpu, tf32, autotune)
    attempt("device", lambda: check_device(pm, framework, device))
    attempt("synchronize", lambda: check_sync(pm, framework, device, build, regs))
    attempt("peak memory", lambda: check_peak_memory(pm, framework, device, build) if gpu
            else Check("peak memory", NA, "cpu: ru_maxrss covers the worker's whole life and cannot be reset"))
    attempt("switches", switches)
    attempt("numerics", lambda: numbers.check_numerics(build, recorded.get("tf32")))
    attempt("logits", lambda: check_logits(build, regs, tf32) if gpu
            else Check("logits", NA, "cpu is the reference device"))
    attempt("identity", lambda: numbers.check_identity(seen, gpu, device.index or 0))
    attempt("clocks", lambda: check_clocks(pm, framework, device, build, regs, sync))
    attempt("peak sanity", lambda: numbers.check_peak_sanity(build, regs, gpu, getattr(seen, "description", ""),
                                                             recorded.get("tf32"), sync))
    attempt("train mode", lambda: numbers.check_train_mode(build("lenet5"), gpu))
    attempt("speed cell", lambda: check_speed(pm, framework, device, build))
    return [asdict(c) for c in checks]


def check_clocks(pm: pluggy.PluginManager, framework: str, device: Device, build: Callable[..., NativeModel],
                 regs: Any, sync: Callable[[], None]) -> Check:
    """The synchronisation check's steps, timed by the harness and by the plugin's device timer (if it has one)."""
    plugin = pm.get_plugin(framework)
    timer = getattr(plugin, "device_timer", lambda device: None)(device)
    if timer is None:
        return numbers.check_clocks(None, lambda: None, sync)
    name, size, _ = SYNC_WORK[device.is_gpu]
    native, model = build(name), regs.models.get(name)
    rng = np.random.default_rng(7)
    batch = native.prepare_batch(rng.random((size, *model.input_shape), dtype=np.float32),
                                 rng.integers(0, model.num_classes, size))
    return numbers.check_clocks(timer, lambda: native.run_phase("train_step", batch, 1e-3), sync)


def check_device(pm: pluggy.PluginManager, framework: str, device: Device) -> Check:
    seen = {d.name: d for d in pm.hook.convbench_discover_devices(framework=framework) or []}
    if device.name not in seen:
        return Check("device", FAIL, f"{framework} sees {', '.join(seen) or 'nothing'}, not {device}")
    found = seen[device.name]
    memory = f", {found.memory_mb / 1024:.0f} GiB" if found.memory_mb else ""
    return Check("device", OK, f"{found.description or device}{memory}")


def check_sync(pm: pluggy.PluginManager, framework: str, device: Device, build: Callable[..., NativeModel],
               regs: Any) -> Check:
    """Queued steps timed to their dispatch, then to a synchronisation: on a GPU (and for frameworks that queue
    work on the CPU too) the second must be clearly longer; elsewhere synchronising adds nothing."""
    name, size, steps = SYNC_WORK[device.is_gpu]
    native = build(name)
    model = regs.models.get(name)
    rng = np.random.default_rng(0)
    batch = native.prepare_batch(rng.random((size, *model.input_shape), dtype=np.float32),
                                 rng.integers(0, model.num_classes, size))

    def sync() -> None:
        pm.hook.convbench_synchronize(framework=framework, device=device.name)
    native.run_phase("train_step", batch, 1e-3)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        native.run_phase("train_step", batch, 1e-3)
    dispatched = time.perf_counter() - start
    sync()
    finished = time.perf_counter() - start
    queues = device.is_gpu or bool(getattr(pm.get_plugin(framework), "async_on_cpu", False))
    detail = f"{steps} {name} steps: dispatched in {1e3 * dispatched:.1f} ms, finished in {1e3 * finished:.1f} ms"
    if queues:
        ok = finished > 1.2 * dispatched
        return Check("synchronize", OK if ok else FAIL, detail + ("" if ok else ": synchronize did not wait for the work"))
    return Check("synchronize", OK, detail + " (this framework runs synchronously here)")


def check_peak_memory(pm: pluggy.PluginManager, framework: str, device: Device,
                      build: Callable[..., NativeModel]) -> Check:
    """A large forward pass, then a reset and a tiny one: the counter must drop. A counter that cannot be reset
    (the plugin answers a reset with None, as JAX's does) covers the worker's life: not applicable."""
    def peak(reset: bool = False) -> float | None:
        return pm.hook.convbench_peak_memory_mb(framework=framework, device=device.name, reset=reset)
    rng = np.random.default_rng(1)
    big = build("vgg16")
    resets = peak(reset=True) is not None
    big.forward(rng.random((256, 3, 32, 32), dtype=np.float32))
    high = peak()
    if high is None:
        return Check("peak memory", FAIL, f"{framework} reports no peak memory on {device}")
    if not resets:
        return Check("peak memory", NA, f"{high:.0f} MiB after vgg16 x256; {framework}'s counter cannot be reset: "
                     "its peaks cover the worker's life")
    del big
    peak(reset=True)
    build("lenet5").forward(rng.random((2, 3, 32, 32), dtype=np.float32))
    low = peak()
    if low is None:
        return Check("peak memory", FAIL, f"{framework} reports no peak memory on {device}")
    ok = low < high
    return Check("peak memory", OK if ok else FAIL, f"{high:.0f} MiB after vgg16 x256, {low:.0f} MiB after reset + lenet5 x2"
                 + ("" if ok else ": the counter does not reset (one that cannot must answer a reset with None)"))


def check_switches(native: NativeModel, gpu: bool, tf32: bool, autotune: bool) -> Check:
    info = getattr(native, "execution_info", dict)()
    got = {"tf32": info.get("tf32"), "autotune": info.get("autotune")}
    detail = f"asked tf32={'on' if tf32 else 'off'} autotune={'on' if autotune else 'off'}; read back {got}"
    if not gpu:
        ok = not got["tf32"]
        return Check("switches", OK if ok else FAIL, detail + (" (no TF32 on a CPU)" if ok else ": TF32 claimed on a CPU"))
    # TF32 needs compute capability 8.0+: asked on, a part without it truthfully reads False
    ok = got["autotune"] == autotune and (got["tf32"] == tf32 or (tf32 and got["tf32"] is False))
    note = " (TF32 asked on, read back off: a GPU before Ampere has none)" if tf32 and got["tf32"] is False else ""
    return Check("switches", OK if ok else FAIL, detail + note)


def check_logits(build: Callable[..., NativeModel], regs: Any, tf32: bool) -> Check:
    """lenet5 on the device against the same framework on the CPU, same weights and input: within verify's
    tolerance with TF32 off; TF32 keeps a 10-bit mantissa, so with it on the bound is 1e-2."""
    model = regs.models.get("lenet5")
    x = np.random.default_rng(2).random((8, *model.input_shape), dtype=np.float32)
    on_device, on_cpu = build("lenet5").forward(x), build("lenet5", CPU).forward(x)
    scale = max(float(np.abs(on_cpu).max()), 1e-12)
    error = float(np.abs(on_device - on_cpu).max()) / scale
    limit = 1e-2 if tf32 else TOLERANCE
    return Check("logits", OK if error <= limit else FAIL, f"max|device - cpu| / max|cpu| = {error:.1e} (limit {limit:g})")


def check_speed(pm: pluggy.PluginManager, framework: str, device: Device, build: Callable[..., NativeModel]) -> Check:
    native = build("lenet5")
    rng = np.random.default_rng(3)
    batch = native.prepare_batch(rng.random((128, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 128))
    timing = time_phase(lambda: native.run_phase("train_step", batch, 1e-3),
                        lambda: pm.hook.convbench_synchronize(framework=framework, device=device.name), 3, SPEED_STEPS)
    median = sorted(timing.samples_s)[len(timing.samples_s) // 2]
    ok = all(math.isfinite(s) and s > 0 for s in timing.samples_s)
    return Check("speed cell", OK if ok else FAIL, f"lenet5 train_step x{SPEED_STEPS} at batch 128: median "
                 f"{1e3 * median:.2f} ms, first step {timing.first_step_s:.2f} s")
