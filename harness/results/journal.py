"""The crash-safe journal: one JSON line per finished cell attempt, flushed and fsynced first.

A line is ``{"cell": NAME, "rows": [...]}`` (one row in train mode, one per phase in speed mode).
``results.csv`` is always regenerated from the journal, the last attempt of each cell winning, so a run
killed at any moment leaves a consistent directory that ``--resume`` can complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JOURNAL = "journal.jsonl"


def append(run_dir: Path, cell: str, rows: list[dict[str, Any]]) -> None:
    line = json.dumps({"cell": cell, "rows": rows}, default=_jsonable) + "\n"
    with open(run_dir / JOURNAL, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def attempts(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (the process died mid-write) is ignored."""
    path = run_dir / JOURNAL
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def latest(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """cell name -> the rows of its last attempt, cells in first-seen order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts(run_dir):
        out[attempt["cell"]] = attempt["rows"]
    return out


def latest_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [row for rows in latest(run_dir).values() for row in rows]


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
