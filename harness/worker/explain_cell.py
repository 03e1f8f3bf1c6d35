"""``convbench explain`` in one framework's worker: the whole network's phase, then each node of its graph built alone
(a layer cell, ``convbench_build_layer``) and timed the same way, on the input shape it sees in the network.

Every series is speed mode's per-step one (``speed_cell.step_timer``: the device synchronised before and after each
step; the first step apart, compilation and tuning in it; adaptive warm-up and stopping, ``sampling``); the median
with its 95 % interval is kept with the raw samples. The network's step and the cells' steps run in the same worker
with the same build settings, so ``network - sum of cells`` is what no layer accounts for (the loss, joins of
branches and residual additions, the framework's per-step work between layers, and any fusion across layers).
"""
from __future__ import annotations

import gc
from functools import partial
from typing import Any, Callable, TextIO

import numpy as np

from harness.errors import ConvbenchError
from harness.model.layers import LayerSpec, layer_specs
from harness.model.shapes import model_summary
from harness.model.weights import init_weights
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.results import stats
from harness.settings import Cell
from harness.worker import checks
from harness.worker.context import build_native
from harness.worker.protocol import ExplainJob, emit
from harness.worker.sampling import StopRule, sample_series
from harness.worker.speed_cell import SPEED_LR, step_timer


def phases_of(phase: str) -> tuple[str, ...]:
    """What each node is timed for: the forward pass and, for a training phase, that phase too."""
    return ("forward",) if phase == "forward" else ("forward", phase)


QUEUED_UNITS = 10   # steps per sample where synchronising waits for queued work (a GPU; JAX on the CPU too)


def timed(step: Callable[[], None], sync: Callable[[], None], rule: StopRule, units: int) -> dict[str, Any]:
    """The first step alone, then speed mode's series: each sample ``units`` steps between two synchronisations
    (1: a step alone), in milliseconds per step (median, interval) with the raw samples."""
    first = step_timer(step, sync)()
    series = sample_series(step_timer(step, sync, units), rule)
    s = stats.sample_stats(series.samples)
    return {"ms": 1000 * s.median, "ms_ci_low": 1000 * s.ci_low, "ms_ci_high": 1000 * s.ci_high, "n": s.n,
            "units": units, "warmup": len(series.warmup), "stop": series.stop, "stable": series.stable(rule.target),
            "first_step_s": first, "samples": series.samples}


def run_explain(job: ExplainJob, progress: TextIO) -> dict[str, Any]:
    cell, phases = job.cell, phases_of(job.phase)
    pm = get_plugin_manager()
    model = build_registries(pm).models.get(cell.model)
    specs = layer_specs(model, job.depth)
    n = cell.batch_size
    rule = StopRule(target=cell.run.precision_target, max_time_s=cell.run.max_time, min_samples=cell.run.min_steps)
    weights = init_weights(model, cell.seed)
    rng = np.random.default_rng(cell.seed)
    images = rng.random((n, *model.input_shape), dtype=np.float32)

    def sync() -> None:
        pm.hook.convbench_synchronize(framework=cell.framework, device=cell.local_device.name)

    # where a step only queues work, a lone step's time is mostly launching and waiting: each sample is then a few
    # steps back to back, for the network and every node alike (docs/explain.md)
    queued = cell.local_device.is_gpu or bool(getattr(pm.get_plugin(cell.framework), "async_on_cpu", False))
    clock = partial(timed, sync=sync, rule=rule, units=QUEUED_UNITS if queued else 1)

    if job.method == "cells":
        build_layer(pm, cell, model, specs[0])   # a plugin without layer cells is told before anything is timed
    emit(progress, event="phase", name=f"{cell.model}: the whole network")
    network, execution, by_profiler = whole_network(pm, job, model, specs, weights, images, rng, clock, progress)
    out = {"framework": cell.framework, "model": cell.model, "phase": job.phase, "depth": job.depth,
           "batch_size": n, "device": cell.device.name, "device_name": cell.device_name,
           "framework_version": cell.framework_version, "flops_per_image": model_summary(model).flops,
           "execution": execution, "network": network}
    if by_profiler is not None:
        return {**out, **by_profiler}
    gc.collect()
    layers = []
    for i, spec in enumerate(specs, 1):
        emit(progress, event="phase", name=f"{spec.path} ({i}/{len(specs)})")
        layers.append({**describe(spec), **time_layer(pm, cell, model, spec, weights, images, phases, rng, clock)})
        gc.collect()
    return {**out, "layers": layers, "method": "layer cells"}


def whole_network(pm: Any, job: ExplainJob, model: Any, specs: list[LayerSpec], weights: dict[str, np.ndarray],
                  images: np.ndarray, rng: np.random.Generator, clock: Callable[..., dict[str, Any]],
                  progress: TextIO) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The network's phases timed as speed mode times them, its execution as it ran, and with ``--method profiler``
    its layers as the profiler attributes them (the model is freed on return, before any layer cell is built)."""
    cell, phases = job.cell, phases_of(job.phase)
    native = build_native(pm, cell.framework, model, cell.local_device, cell.build_settings())
    native.set_weights(weights)
    if job.method == "profiler" and not callable(getattr(native, "profile_layers", None)):
        raise ConvbenchError(f"the {cell.framework} plugin maps no profiler to layers (profile_layers); "
                             f"use --method cells")
    batch = native.prepare_batch(images, rng.integers(0, model.num_classes, len(images)))
    network = {phase: clock(lambda phase=phase: native.run_phase(phase, batch, SPEED_LR))
               for phase in phases}
    execution = checks.execution_info(native, getattr(native, "execution_info", dict)())
    by_profiler = profiled(native, batch, specs, phases, cell.run.min_steps, progress) if job.method == "profiler" \
        else None
    return network, execution, by_profiler


def profiled(native: Any, batch: Any, specs: list[LayerSpec], phases: tuple[str, ...], steps: int,
             progress: TextIO) -> dict[str, Any]:
    """Each node's share of the network's own step as the framework's profiler attributes it (the plugin's
    ``profile_layers``: milliseconds per step by leaf layer path), summed over the node's layers."""
    found: dict[str, dict[str, Any]] = {}
    for phase in phases:
        emit(progress, event="phase", name=f"{phase}: {steps} profiled steps")
        found[phase] = native.profile_layers(phase, batch, SPEED_LR, steps)
    layers = []
    for spec in specs:
        row = describe(spec)
        for phase in phases:
            mine = [ms for path, ms in found[phase]["layers"].items() if spec.holds(path)]
            skipped = phase == "forward" and spec.training_only
            row[phase] = None if skipped else {"ms": sum(mine), "ms_ci_low": None, "ms_ci_high": None, "n": steps,
                                               "stable": None, "first_step_s": None}
        layers.append(row)
    clock = found[phases[-1]].get("clock", "")
    return {"layers": layers, "method": f"profiler ({clock})" if clock else "profiler",
            "profiled_step_ms": {phase: found[phase]["step_ms"] for phase in phases}}


def build_layer(pm: Any, cell: Cell, model: Any, spec: LayerSpec) -> Any:
    layer = pm.hook.convbench_build_layer(framework=cell.framework, model=model, layer=spec,
                                          device=cell.local_device.name, settings=cell.build_settings().to_dict())
    if layer is None:
        raise ConvbenchError(f"the {cell.framework} plugin has no layer cells (convbench_build_layer, docs/plugins.md)")
    return layer


def describe(spec: LayerSpec) -> dict[str, Any]:
    return {"path": spec.path, "kind": spec.kind, "input_shape": list(spec.input_shape),
            "output_shape": list(spec.output_shape), "flops_per_image": spec.flops, "params": spec.params,
            "training_only": spec.training_only}


def time_layer(pm: Any, cell: Cell, model: Any, spec: LayerSpec, weights: dict[str, np.ndarray], images: np.ndarray,
               phases: tuple[str, ...], rng: np.random.Generator, clock: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """The node's cell timed for each phase (None for a forward the network skips: an auxiliary head's)."""
    layer = build_layer(pm, cell, model, spec)
    layer.set_weights(spec.weights(weights))
    n = len(images)
    # the node reading the images gets them; any other a unit-normal input (values do not change a dense layer's
    # work), and an output gradient of the size a mean loss gives
    x = images if not spec.input_grad else rng.standard_normal((n, *spec.input_shape), dtype=np.float32)
    grad = rng.standard_normal((n, *spec.output_shape), dtype=np.float32) / np.float32(n)
    batch = layer.prepare(x, grad)
    out: dict[str, Any] = {}
    for phase in phases:
        skipped = phase == "forward" and spec.training_only
        out[phase] = None if skipped else clock(lambda phase=phase: layer.run_phase(phase, batch, SPEED_LR))
    return out
