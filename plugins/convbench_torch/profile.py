"""Per-layer time of the whole network's step from torch.profiler (``convbench explain --method profiler``).

Each leaf module's forward runs inside ``record_function("convbench.layer:<path>")`` (module hooks, installed only
while profiling); a backward function is its forward op's layer through the autograd sequence number both carry.
A top-level event's time goes to its layer: the CPU time of the op on the CPU, the kernels' time (device_time_total)
on a GPU. What no layer owns (the loss, the optimiser's update over all parameters at once, the autograd engine's
own work) is the remainder the harness reports.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

import torch
from torch.profiler import ProfilerActivity, profile, record_function

SCOPE = "convbench.layer:"


def leaf_modules(net: torch.nn.Module, prefix: str) -> dict[str, torch.nn.Module]:
    """Portable layer path -> leaf module."""
    return {name[len(prefix):]: m for name, m in net.named_modules() if name.startswith(prefix) and not list(m.children())}


def scoped(modules: dict[str, torch.nn.Module]) -> list[Any]:
    """Hooks that run each module's forward inside its profiler scope; returns their handles."""
    open_scopes: dict[str, Any] = {}
    handles = []
    for path, module in modules.items():
        def enter(mod: Any, args: Any, path: str = path) -> None:
            scope = record_function(SCOPE + path)
            scope.__enter__()
            open_scopes[path] = scope

        def leave(mod: Any, args: Any, out: Any, path: str = path) -> None:
            open_scopes.pop(path).__exit__(None, None, None)
        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


def layer_of(event: Any) -> str | None:
    while event is not None:
        if event.name.startswith(SCOPE):
            return event.name[len(SCOPE):]
        event = event.cpu_parent
    return None


def attribute(events: Any, gpu: bool) -> tuple[dict[str, float], float]:
    """({layer path: microseconds}, microseconds of every top-level event) over the profiled steps."""
    by_sequence: dict[int, str] = {}
    for e in events:
        if e.sequence_nr >= 0 and not e.name.startswith("autograd::engine") and (path := layer_of(e)) is not None:
            by_sequence.setdefault(e.sequence_nr, path)
    times: dict[str, float] = defaultdict(float)
    total = 0.0
    for e in events:
        if e.cpu_parent is not None:
            continue
        us = e.device_time_total if gpu else e.time_range.elapsed_us()
        total += us
        if e.name.startswith(SCOPE):
            times[e.name[len(SCOPE):]] += us
        elif e.name.startswith("autograd::engine::evaluate_function") and e.sequence_nr in by_sequence:
            times[by_sequence[e.sequence_nr]] += us
    return dict(times), total


def profile_layers(net: torch.nn.Module, prefix: str, step: Callable[[], None], sync: Callable[[], None],
                   steps: int, gpu: bool) -> dict[str, Any]:
    """Milliseconds per step of each leaf layer (forward and backward) over ``steps`` profiled steps, and of the whole
    profiled step (``"(profiled step)"``): what the profiler saw, its own overhead included."""
    handles = scoped(leaf_modules(net, prefix))
    try:
        step()   # a warm step with the scopes in place
        sync()
        activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if gpu else [])]
        with profile(activities=activities) as prof:
            for _ in range(steps):
                step()
            sync()
    finally:
        for handle in handles:
            handle.remove()
    times, total = attribute(prof.events(), gpu)
    return {"layers": {path: us / steps / 1000 for path, us in times.items()}, "step_ms": total / steps / 1000,
            "steps": steps, "clock": "CUDA kernel time" if gpu else "CPU time of each op"}
