"""What passes between the orchestrator and a worker process: a typed job in, a JSON payload and progress out.

A worker is ``python -m harness.worker JOB.json OUT.json``. JOB.json holds one job: ``{"schema_version": ...,
"kind": ..., **fields}`` (the results schema version, harness/results/schema), a ``Cell`` or one of the job classes
below, written by ``write_job`` and read back typed by ``read_job``. The
worker writes one JSON payload to OUT.json (atomically) and exits with one of the codes below; progress events
are JSON lines on its stdout, anything the framework prints goes to stderr (the worker's log).
"""
from __future__ import annotations

import json
import math
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO, Union

import numpy as np

from harness.devices import CPU, Device
from harness.errors import ConvbenchError
from harness.jsonvalues import from_json_value, to_json_value
from harness.model.weights import META
from harness.results.schema import SCHEMA_VERSION, check_readable
from harness.settings import Cell

EXIT_OK, EXIT_USER_ERROR, EXIT_EXCEPTION = 0, 3, 4


@dataclass(frozen=True)
class ProbeJob:
    """The framework's version, devices and runtime versions, as its plugin discovers them (imports it)."""
    framework: str


@dataclass(frozen=True)
class InfoJob:
    """The worker's interpreter and the framework's installed version, without importing the framework."""
    framework: str


@dataclass(frozen=True)
class GemmJob:
    """The float32 GEMM rate of this machine's CPU with the worker's threads (GFLOP/s)."""


@dataclass(frozen=True)
class EvalJob:
    """``convbench eval``: a portable weight file evaluated on a dataset's test split."""
    framework: str
    model: str
    weights: str
    dataset: str
    batch_size: int
    threads: int
    data_dir: str | None = None
    no_checksum: bool = False
    device: Device = CPU


@dataclass(frozen=True)
class VerifyJob:
    """``convbench verify``: each model built with the shared weights in ``folder``, its logits saved there."""
    framework: str
    models: tuple[str, ...]
    folder: str
    threads: int


@dataclass(frozen=True)
class DoctorJob:
    """``convbench doctor``: one framework's checks on one device (as the worker names it)."""
    framework: str
    device: Device
    tf32: bool
    autotune: bool
    threads: int


@dataclass(frozen=True)
class ExplainJob:
    """``convbench explain``: one framework's per-layer times of ``cell.model`` (``cell.run``: the speed settings;
    ``depth`` None: every layer, N: the nodes N levels below the body; ``method``: "cells", each node built alone,
    or "profiler", the framework's profiler over the network's own step)."""
    cell: Cell
    phase: str = "train_step"
    depth: int | None = None
    method: str = "cells"


Job = Union[Cell, ProbeJob, InfoJob, GemmJob, EvalJob, VerifyJob, DoctorJob, ExplainJob]
KINDS: dict[str, type] = {"cell": Cell, "probe": ProbeJob, "info": InfoJob, "gemm": GemmJob, "eval": EvalJob,
                          "verify": VerifyJob, "doctor": DoctorJob, "explain": ExplainJob}


def kind_of(job: Job) -> str:
    return next(k for k, cls in KINDS.items() if isinstance(job, cls))


def write_job(path: Path, job: Job) -> None:
    path.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "kind": kind_of(job), **to_json_value(job)}, indent=1))


def read_job(path: str | Path) -> Job:
    """The typed job of a job file; a one-line ConvbenchError for a file this version did not write."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConvbenchError(f"cannot read job file {str(path)!r}: {exc}") from None
    if isinstance(data, dict):
        check_readable(data, Path(path), f"job file {str(path)!r}")
        data.pop("schema_version", None)
    kind = data.pop("kind", None) if isinstance(data, dict) else None
    if kind not in KINDS:
        raise ConvbenchError(f"job file {str(path)!r}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    return from_json_value(KINDS[kind], data)


def emit(progress: TextIO, **event: Any) -> None:
    """One progress event as a JSON line; the orchestrator renders it, and its stall watchdog counts it as progress.

    Events: ``step`` (a training step: epoch, epochs, step, steps, loss; at most one a second), ``epoch`` (an
    epoch's row), ``region`` (the start and end of timed work, for the telemetry sampler), ``phase`` (what the
    worker starts now: ``name``, and ``step``/``steps`` inside a speed-mode phase). Any event may carry
    ``quiet_s``: the worker starts work that reports nothing for up to that long (a pipelined timing window),
    which the watchdog adds to its limit once.
    """
    print(json.dumps(event), file=progress, flush=True)


def throttled(progress: TextIO, every_s: float = 1.0) -> Callable[..., None]:
    """``emit`` for events that come with every step: at most one every ``every_s`` seconds, the first at once."""
    last = [-math.inf]

    def send(**event: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            emit(progress, **event)
    return send


def describe_event(event: dict[str, Any] | None) -> str:
    """One progress event in words, for a stalled or timed-out cell's error ("the last progress")."""
    if event is None:
        return "none since the worker started"
    kind = event.get("event")
    if kind == "step":
        return (f"epoch {event.get('epoch')}/{event.get('epochs')} step {event.get('step')}/{event.get('steps')} "
                f"(loss {event.get('loss', float('nan')):.4g})")
    if kind == "epoch":
        return f"epoch {event.get('epoch')}/{event.get('epochs')} finished"
    started = event.get("state") == "start"
    if kind == "region" and "epoch" in event:
        return (f"epoch {event['epoch']}/{event.get('epochs')}: training "
                f"{'started' if started else 'finished, evaluating'}")
    if kind == "region":
        return f"{event.get('name')}: timing window {'started' if started else 'finished'}"
    if kind == "phase":
        step = f" step {event['step']}/{event.get('steps')}" if "step" in event else ""
        return f"{event.get('name')}{step}"
    return json.dumps(event)[:200]


def parse_event(line: str) -> dict[str, Any] | None:
    """The event of a progress line, or None for a plain line."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def checkpoint_owner(cell: Cell) -> dict[str, str]:
    """What a train cell's per-epoch checkpoint records of the cell that wrote it (with ``epoch`` and ``history``,
    its epochs so far): only that cell, in the same run and at the same batch, continues from it."""
    return {"run_id": cell.run_id, "cell": cell.name, "batch_size": str(cell.batch_size)}


def is_own_checkpoint(meta: dict[str, str], cell: Cell) -> bool:
    """True when the checkpoint's ``meta`` says ``cell`` wrote it, with the epochs it had finished."""
    return "history" in meta and all(meta.get(k) == v for k, v in checkpoint_owner(cell).items())


def checkpoint_meta(path: str | Path) -> dict[str, str]:
    """A portable checkpoint's ``__meta__`` strings without reading its arrays (raises OSError or ValueError for a
    file that is not one)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k[len(META):]: str(data[k]) for k in data.files if k.startswith(META)}
    except (zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(str(exc)) from None
