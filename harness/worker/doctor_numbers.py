"""``convbench doctor``'s checks that catch wrong numbers, inside one framework's worker.

Each compares a figure the harness records with an independent one: the framework's fp32 arithmetic with float64
(does the recorded TF32 state hold?), achieved FLOP/s with the device's peak (is the peak table right?), the
harness's clock with the device's own (do the timings hold?), the framework's GPU with NVML's (are telemetry and
timing about the same GPU?), and three steps of the training loop with its real input path.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from harness.hardware import nvml as nvml_facts
from harness.hardware.peaks import gpu_peak_gflops, measure_cpu_gemm_gflops
from harness.model.graph import Conv, Flatten, Linear, ModelDef, Seq
from harness.model.shapes import model_summary
from harness.model.weights import init_weights
from harness.native import NativeModel
from harness.settings import RunSettings
from harness.worker.pipeline import input_path
from harness.worker.timing import time_phase
from harness.worker.training import run_epoch

OK, FAIL, NA = "ok", "FAIL", "n/a"
# fp32 against float64, relative L2 error: strict fp32 gives about 1e-7..1e-6 (cuDNN's Winograd/FFT a little more),
# TF32 (a 10-bit mantissa) about 3e-4..1e-3; between them the line, and above 1e-2 something is broken either way
STRICT_LIMIT, TF32_LIMIT = 5e-5, 1e-2
GEMM = ModelDef("doctor_gemm", (512, 1, 1), 256, Seq("net", (Flatten("flatten"), Linear("fc", 256))))
CONV = ModelDef("doctor_conv", (64, 10, 10), 32 * 8 * 8, Seq("net", (Conv("conv", 32, 3), Flatten("flatten"))))
# peak sanity: VGG-16's train step at a large batch on a GPU; on the CPU a small one (the check stays cheap there)
PEAK_WORK = {True: ("vgg16_imagenet", 64, 5), False: ("vgg16", 8, 2)}   # gpu? -> (model, batch, timed steps)
# achieved / peak must lie in [floor, ceiling]: a GPU's VGG-16 step runs at a good share of the datasheet's peak, so a
# table entry 7x too high fails the floor and one too low the ceiling. The CPU's peak is numpy's GEMM measured
# seconds before on a shared machine, which a framework's own kernels (oneDNN) can beat (TensorFlow's VGG-16 step
# ran at 1.4x it on this project's 2-core CPU): generous bounds there, the check proves the plumbing.
PEAK_BOUNDS = {True: (0.10, 1.0), False: (0.01, 3.0)}
CLOCK_TOLERANCE = 0.05   # harness clock against the device's own over the same steps
TRAIN_STEPS, TRAIN_BATCH = 3, 16



@dataclass
class Check:
    """One line of the doctor's table: a name, ``ok`` / ``FAIL`` / ``n/a`` and what was measured."""
    name: str
    status: str
    detail: str


def reference(model: ModelDef, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """GEMM's or CONV's forward pass in float64."""
    x64 = x.astype(np.float64)
    if model is GEMM:
        return x64.reshape(len(x), -1) @ weights["fc.weight"].astype(np.float64).T + weights["fc.bias"]
    windows = np.lib.stride_tricks.sliding_window_view(x64, (3, 3), axis=(2, 3))   # (n, c, h, w, 3, 3)
    out = np.einsum("ncijkl,ockl->noij", windows, weights["conv.weight"].astype(np.float64))
    return (out + weights["conv.bias"].astype(np.float64)[None, :, None, None]).reshape(len(x), -1)


def relative_error(build: Callable[[ModelDef], NativeModel], model: ModelDef) -> float:
    """||framework fp32 - float64|| / ||float64|| for one forward pass of ``model`` on zero-mean inputs."""
    rng = np.random.default_rng(4)
    weights = init_weights(model, 0)
    weights = {k: v + rng.standard_normal(v.shape).astype(np.float32) * 0.1 if k.endswith("bias") else v
               for k, v in weights.items()}
    native = build(model)
    native.set_weights(weights)
    x = rng.standard_normal((64, *model.input_shape)).astype(np.float32)
    exact = reference(model, weights, x)
    return float(np.linalg.norm(native.forward(x).astype(np.float64) - exact) / np.linalg.norm(exact))


def check_numerics(build: Callable[[ModelDef], NativeModel], tf32: bool | None) -> Check:
    """An fp32 GEMM and a 3x3 convolution against float64: the error must be what the recorded TF32 state gives,
    so a switch read back as set but not in effect (or in effect but read back off) fails."""
    errors = {"gemm": relative_error(build, GEMM), "conv": relative_error(build, CONV)}
    low, high = (STRICT_LIMIT, TF32_LIMIT) if tf32 else (0.0, STRICT_LIMIT)
    ok = all(low <= e <= high for e in errors.values())
    expected = f"tf32 recorded on: {low:g}..{high:g}" if tf32 else f"tf32 recorded off: below {high:g}"
    detail = f"relative error vs float64: gemm {errors['gemm']:.1e}, conv {errors['conv']:.1e} ({expected})"
    if not ok:
        detail += ": the arithmetic is not what the row records" + (
            " (TF32 claimed, strict fp32 ran)" if tf32 and max(errors.values()) < STRICT_LIMIT else
            " (TF32 or worse ran, strict fp32 recorded)" if not tf32 else "")
    return Check("numerics", OK if ok else FAIL, detail)


def check_peak_sanity(build: Callable[[str], NativeModel], regs: Any, gpu: bool,
                      device_name: str, tf32: bool | None, sync: Callable[[], None],
                      cpu_peak: Callable[[], float] = measure_cpu_gemm_gflops) -> Check:
    """VGG-16's achieved FLOP/s (a train step is 3x the forward FLOPs) against the peak the rows use: the table's
    for the precision that ran on a GPU, numpy's measured GEMM rate on the CPU; it must lie between the bounds."""
    if gpu:
        peak, why = gpu_peak_gflops(device_name, "fp32", bool(tf32))
        if peak is None:
            return Check("peak sanity", NA, why)
    else:
        peak, why = cpu_peak(), "numpy GEMM peak measured here"
    name, batch, steps = PEAK_WORK[gpu]
    model = regs.models.get(name)
    native = build(name)
    rng = np.random.default_rng(5)
    prepared = native.prepare_batch(rng.random((batch, *model.input_shape), dtype=np.float32),
                                    rng.integers(0, model.num_classes, batch))
    timing = time_phase(lambda: native.run_phase("train_step", prepared, 1e-3), sync, 1, steps)
    achieved = 3 * model_summary(model).flops * batch / float(np.median(timing.samples_s)) / 1e9
    floor, ceiling = PEAK_BOUNDS[gpu]
    fraction = achieved / peak
    ok = floor <= fraction <= ceiling
    detail = (f"{name} x{batch} train step: {achieved:,.0f} GFLOP/s = {fraction:.1%} of {peak:,.0f} ({why}); "
              f"expected {floor:.0%}..{ceiling:.0%}")
    if not ok:
        detail += ": above the peak (the peak is too low, or the timing misses work)" if fraction > ceiling else \
            ": far below the peak (the peak is too high for this part and precision, or the device is not used)"
    return Check("peak sanity", OK if ok else FAIL, detail)


def check_clocks(timer: Any, step: Callable[[], None], sync: Callable[[], None],
                 steps: int = 5) -> Check:
    """The same steps timed by the harness's clock (perf_counter around the step and a synchronisation) and by the
    device's own events around the step: they must agree within CLOCK_TOLERANCE."""
    if timer is None:
        return Check("clocks", NA, "no device clock to compare with here (torch's CUDA events on a GPU)")
    step()
    sync()
    host = device = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        first = timer.mark()
        step()
        last = timer.mark()
        sync()
        host += time.perf_counter() - start
        device += timer.seconds(first, last)
    gap = (host - device) / device if device > 0 else math.inf
    ok = abs(gap) <= CLOCK_TOLERANCE
    detail = (f"{steps} steps: harness {1e3 * host:.1f} ms, device events {1e3 * device:.1f} ms ({gap:+.1%}, "
              f"limit {CLOCK_TOLERANCE:.0%})")
    return Check("clocks", OK if ok else FAIL, detail + ("" if ok else ": the harness's timings are not the device's"))


def pci_address(bus_id: Any) -> tuple[int, int, int] | None:
    """(domain, bus, device) of '00000000:3B:00.0' (NVML) or '0000:3b:00.0' (a framework), else None."""
    text = bus_id.decode() if isinstance(bus_id, bytes) else bus_id
    try:
        domain, bus, rest = str(text).strip().split(":")
        return int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)
    except (ValueError, AttributeError):
        return None


def check_identity(seen: Any, gpu: bool, local_index: int,
                   load: Callable[[], tuple[Any, str]] = nvml_facts.load) -> Check:
    """The framework's GPU and NVML's (the one the worker's CUDA_VISIBLE_DEVICES names, whose telemetry the row
    gets) are the same device: by PCI bus id where the framework reports one, else only their names can agree."""
    if not gpu:
        return Check("identity", NA, "cpu: no GPU to match")
    nvml, why = load()
    if nvml is None:
        return Check("identity", NA, f"NVML unavailable: {why}")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = visible.split(",") if visible else [str(local_index)]
    entry = entries[local_index] if local_index < len(entries) else str(local_index)
    handle = nvml_facts.handle_or_none(nvml, entry)
    if handle is None:
        return Check("identity", FAIL, f"NVML has no GPU {entry!r} (CUDA_VISIBLE_DEVICES={visible!r})")
    nvml_id, nvml_name = nvml_facts.pci_bus_id(nvml, handle), nvml_facts.device(nvml, handle)["name"]
    nvml_bus = pci_address(nvml_id)
    ours = pci_address(getattr(seen, "pci_bus_id", None))
    if ours is None or nvml_bus is None:
        same = nvml_name == getattr(seen, "description", None)
        detail = (f"no PCI bus id from {'the framework' if ours is None else 'NVML'}; names: framework "
                  f"{getattr(seen, 'description', None)!r}, NVML {nvml_name!r}")
        return Check("identity", NA if same else FAIL, detail if same else detail + ": not the same GPU")
    ok = ours == nvml_bus
    detail = f"framework {seen.pci_bus_id}, NVML {nvml_id} ({nvml_name})"
    return Check("identity", OK if ok else FAIL, detail + ("" if ok else ": the framework and NVML see different GPUs"))


def check_train_mode(native: NativeModel, gpu: bool) -> Check:
    """Three steps of the training loop (``run_epoch``) fed by the input path ``convbench run`` uses (the model's
    own copy of the set, or numpy batches, ahead in a thread on a GPU), with the default augmentation setting."""
    rng = np.random.default_rng(6)
    n, augment = TRAIN_STEPS * TRAIN_BATCH, RunSettings.augment
    x, y = rng.random((n, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, n)
    path = input_path(native, x, y, augment)
    source = path.loop_batches(native, y, TRAIN_BATCH, 0, 0, augment)
    with path.feeding(source, gpu) as batches:
        loss_sum, steps = run_epoch(native, batches, 1e-2, 0, lambda *a: None, path.layout, prepared=path.held)
    ok = steps == TRAIN_STEPS and math.isfinite(loss_sum)
    detail = f"{steps} steps of lenet5 x{TRAIN_BATCH} through {path.describe(native)}: mean loss {loss_sum / max(steps, 1):.3f}"
    return Check("train mode", OK if ok else FAIL, detail + ("" if ok else f": expected {TRAIN_STEPS} finite steps"))
