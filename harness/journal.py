"""The crash-safe journal: one JSON line per finished cell, flushed and fsynced before anything else.

``results.csv`` is always regenerated from the journal (the latest row of each cell wins), so a run
killed at any moment leaves a consistent directory that ``--resume`` can complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JOURNAL = "journal.jsonl"


def append(run_dir: Path, row: dict[str, Any]) -> None:
    line = json.dumps(row, default=_jsonable) + "\n"
    with open(run_dir / JOURNAL, "a") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read(run_dir: Path) -> list[dict[str, Any]]:
    """Every complete line; a torn last line (the process died mid-write) is ignored."""
    path = run_dir / JOURNAL
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def latest(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """cell key -> its most recent row, in first-seen order."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out[row_key(row)] = row
    return out


def row_key(row: dict[str, Any]) -> str:
    return f"{row['cell']}/{row.get('phase') or 'train'}"


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
