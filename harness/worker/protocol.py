"""What passes between the orchestrator and a worker process, besides the cell file.

A worker is ``python -m harness.worker COMMAND TARGET OUT.json``. It writes one JSON payload to OUT.json
(atomically) and exits with one of the codes below; progress events are JSON lines on its stdout, anything
the framework prints goes to stderr (the cell's log).
"""
from __future__ import annotations

import json
from typing import Any, TextIO

EXIT_OK, EXIT_USER_ERROR, EXIT_EXCEPTION = 0, 3, 4
COMMANDS = ("cell", "probe", "info", "eval", "verify", "doctor", "gemm")


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
