"""What passes between the orchestrator and a worker process: a typed job in, a JSON payload and progress out.

A worker is ``python -m harness.worker JOB.json OUT.json``. JOB.json holds one job: ``{"kind": ..., **fields}``,
a ``Cell`` or one of the job classes below, written by ``write_job`` and read back typed by ``read_job``. The
worker writes one JSON payload to OUT.json (atomically) and exits with one of the codes below; progress events
are JSON lines on its stdout, anything the framework prints goes to stderr (the worker's log).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, Union

from harness.devices import CPU, Device
from harness.errors import ConvbenchError
from harness.jsonvalues import from_json_value, to_json_value
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


Job = Union[Cell, ProbeJob, InfoJob, GemmJob, EvalJob, VerifyJob, DoctorJob]
KINDS: dict[str, type] = {"cell": Cell, "probe": ProbeJob, "info": InfoJob, "gemm": GemmJob, "eval": EvalJob,
                          "verify": VerifyJob, "doctor": DoctorJob}


def kind_of(job: Job) -> str:
    return next(k for k, cls in KINDS.items() if isinstance(job, cls))


def write_job(path: Path, job: Job) -> None:
    path.write_text(json.dumps({"kind": kind_of(job), **to_json_value(job)}, indent=1))


def read_job(path: str | Path) -> Job:
    """The typed job of a job file; a one-line ConvbenchError for a file this version did not write."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConvbenchError(f"cannot read job file {str(path)!r}: {exc}") from None
    kind = data.pop("kind", None) if isinstance(data, dict) else None
    if kind not in KINDS:
        raise ConvbenchError(f"job file {str(path)!r}: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    return from_json_value(KINDS[kind], data)


def emit(progress: TextIO, **event: Any) -> None:
    """One progress event (``{"event": "step"|"epoch", ...}``) as a JSON line; the orchestrator renders it."""
    print(json.dumps(event), file=progress, flush=True)


def parse_event(line: str) -> dict[str, Any] | None:
    """The event of a progress line, or None for a plain line."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None
