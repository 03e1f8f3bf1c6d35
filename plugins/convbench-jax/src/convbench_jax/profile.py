"""Per-layer time of the whole network's step from JAX's own profiler (``convbench explain --method profiler``).

Every leaf layer runs inside ``jax.named_scope(<path>)`` (``layers.run``), which XLA keeps in each HLO instruction's
``op_name`` metadata, the backward's too (``transpose(jvp(<path>))``). The compiled step's HLO text maps each
instruction, fusions included, to the layer named in its metadata (a fusion without its own, to the first layer its
fused computation names); the profiler's trace (``jax.profiler.trace``, Perfetto JSON) gives each executed
instruction's time. An instruction that fuses two layers' work counts for the one its metadata names; what names no
layer (the loss, the update of every parameter, layout copies) is the remainder the harness reports.
"""
from __future__ import annotations

import gzip
import json
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import jax

INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = ")
CALLS = re.compile(r"calls=%([\w.\-]+)")
OP_NAME = re.compile(r'op_name="([^"]*)"')
COMPUTATION = re.compile(r"^%([\w.\-]+) \(")


def layer_in(op_name: str, paths: list[str]) -> str | None:
    """The longest layer path named as a scope in ``op_name`` (scopes appear between '/', '(' and ')')."""
    found = [p for p in paths if re.search(rf"(^|[/(]){re.escape(p)}($|[/)])", op_name)]
    return max(found, key=len) if found else None


def instruction_layers(hlo: str, paths: list[str]) -> tuple[dict[str, str], set[str]]:
    """(HLO instruction name -> layer path, every instruction name), from the compiled module's text."""
    first_in: dict[str, str] = {}     # fused computation -> the first layer any of its instructions names
    calls: dict[str, str] = {}        # instruction -> the computation it calls (fusions)
    own: dict[str, str] = {}
    names: set[str] = set()
    computation = ""
    for line in hlo.splitlines():
        if m := COMPUTATION.match(line):
            computation = m.group(1)
            continue
        if not (m := INSTRUCTION.match(line)):
            continue
        name = m.group(1)
        names.add(name)
        op_name = OP_NAME.search(line)
        layer = layer_in(op_name.group(1), paths) if op_name else None
        if layer:
            own[name] = layer
            first_in.setdefault(computation, layer)
        if called := CALLS.search(line):
            calls[name] = called.group(1)
    for name, called in calls.items():
        if name not in own and called in first_in:
            own[name] = first_in[called]
    return own, names


def trace_times(folder: Path) -> dict[str, float]:
    """Executed instruction name -> microseconds, summed over the trace (the Perfetto JSON jax.profiler writes)."""
    times: dict[str, float] = defaultdict(float)
    for path in folder.rglob("perfetto_trace.json.gz"):
        with gzip.open(path) as fh:
            data = json.load(fh)
        for event in data["traceEvents"] if isinstance(data, dict) else data:
            if event.get("ph") == "X" and not str(event.get("name", "")).startswith("end: "):
                times[event["name"]] += float(event.get("dur", 0.0))
    return dict(times)


def profile_layers(compiled_hlo: str, paths: list[str], step: Callable[[], Any], sync: Callable[[], None],
                   steps: int) -> dict[str, Any]:
    """Milliseconds per step of each leaf layer over ``steps`` traced steps, and of every traced instruction."""
    step()
    sync()
    with tempfile.TemporaryDirectory(prefix="convbench-jax-trace-") as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for _ in range(steps):
                step()
            sync()
        executed = trace_times(Path(tmp))
    owner, instructions = instruction_layers(compiled_hlo, paths)
    layers: dict[str, float] = defaultdict(float)
    for name, us in executed.items():
        if name in owner:
            layers[owner[name]] += us
    total = sum(us for name, us in executed.items() if name in instructions)
    return {"layers": {p: us / steps / 1000 for p, us in layers.items()}, "step_ms": total / steps / 1000,
            "steps": steps, "clock": "XLA ops in the trace"}
