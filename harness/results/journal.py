"""The crash-safe journal: one JSON line per finished cell attempt, flushed and fsynced first.

A record is ``{"schema_version": "1.0", "cell": NAME, "rows": [...]}`` (one row in train mode, one per phase in
speed mode), on a line of its own; records written before schema_version have none (the folder's plan.json and
meta.json say its version, and ``--resume`` checks those). ``results.csv`` is always regenerated from the journal,
the last attempt of each cell winning, so a run killed at any moment leaves a consistent directory that ``--resume``
can complete.

A complete record is never lost: a line left torn by a process that died mid-write (a kill, a full disk, a power
cut) is ended with a newline before the next record is appended, so the new record stays whole on its own line.
Lines that are not records (torn, not JSON, not UTF-8, JSON of another shape) are skipped and reported by
``read`` with their line numbers; a cell whose only record was such a line simply runs again on ``--resume``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import WriteFailed
from harness.results.schema import SCHEMA_VERSION

JOURNAL = "journal.jsonl"


@dataclass(frozen=True)
class Skipped:
    """A journal line that is not a record: its 1-based line number and why."""
    line: int
    why: str

    def describe(self, run_dir: Path) -> str:
        return f"{run_dir / JOURNAL} line {self.line} is not a record ({self.why}); skipped"


def append(run_dir: Path, cell: str, rows: list[dict[str, Any]]) -> None:
    """Appends one record, flushed and fsynced; ``WriteFailed`` (naming the journal) when the disk refuses, with
    every earlier record intact."""
    path = run_dir / JOURNAL
    line = (json.dumps({"schema_version": SCHEMA_VERSION, "cell": cell, "rows": rows}, default=_jsonable) + "\n").encode()
    try:
        with open(path, "ab") as fh:
            if fh.tell() and not _ends_with_newline(path):  # a torn tail: end it, so this record starts its own line
                line = b"\n" + line
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise WriteFailed(path, exc) from None


def read(run_dir: Path) -> tuple[list[dict[str, Any]], list[Skipped]]:
    """(every record in order, the lines that are not records). Blank lines are neither."""
    path = run_dir / JOURNAL
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    records, skipped = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            skipped.append(Skipped(number, "not UTF-8"))
            continue
        except json.JSONDecodeError:
            skipped.append(Skipped(number, "not valid JSON: a write cut short?"))
            continue
        why = _not_a_record(value)
        if why:
            skipped.append(Skipped(number, why))
        else:
            records.append(value)
    return records, skipped


def attempts(run_dir: Path) -> list[dict[str, Any]]:
    """Every record, in order; lines that are not records are left out (``read`` says which)."""
    return read(run_dir)[0]


def latest(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """cell name -> the rows of its last attempt, cells in first-seen order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts(run_dir):
        out[attempt["cell"]] = attempt["rows"]
    return out


def latest_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [row for rows in latest(run_dir).values() for row in rows]


def _not_a_record(value: Any) -> str | None:
    """Why a JSON value is not ``{"cell": str, "rows": [row, ...]}`` with a status in every row, or None."""
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    if not isinstance(value.get("cell"), str):
        return "no cell name"
    rows = value.get("rows")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "status" in r for r in rows):
        return "no rows with a status"
    return None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
