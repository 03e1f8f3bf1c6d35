"""A finished run read back from its folder: results.csv, meta.json and each cell's epochs.json / samples.json.

meta.json is read first: its results schema version (harness/results/schema; 1.0 for a folder from before there was
one, or with no meta.json) is the folder's, and a newer major one is refused before anything else is read, in one
line that says to upgrade convbench. results.csv is read with each column's declared type (records.COLUMN_TYPES).

Everything is checked as it is read, so ``report``, ``compare`` and ``history`` either get a run they can use or
stop with one line naming the file (and the row and column) that is not what ``convbench run`` writes. A file that
is missing is allowed where a run may lack it (meta.json of an old run, a cell's epochs.json or samples.json); a
file that is there but corrupt never is.
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConvbenchError
from harness.results.csvio import read_csv
from harness.results.records import COLUMNS, REQUIRED, STATUSES
from harness.results.schema import check_readable

# meta.json keys the reports read, and the JSON type each must have
META_TYPES = {"settings": dict, "frameworks": dict, "command": list, "started": str}
JSON_NAMES = {dict: "object", list: "array", str: "string"}


@dataclass
class Run:
    path: Path
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    histories: dict[str, list[dict[str, Any]]]     # cell -> epochs.json
    samples: dict[str, dict[str, list[float]]]     # cell -> phase -> seconds per timed step
    schema_version: str = "1.0"                    # the results schema the folder was written in (meta.json's)

    @property
    def name(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_json(path: Path) -> Any:
    """The file's JSON value; None when there is no such file; ConvbenchError when it is there but unreadable."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConvbenchError(f"{str(path)!r} is not readable JSON: {_one_line(exc)}") from None


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_meta(path: Path, meta: Any) -> dict[str, Any]:
    """meta.json: an object, and the keys the reports read of the JSON type they expect ({} when there is none)."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ConvbenchError(f"{str(path)!r} is not a convbench meta.json: {_one_line(repr(meta))[:60]} is not a JSON object")
    for key, kind in META_TYPES.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise ConvbenchError(f"{str(path)!r}: {key} must be a JSON {JSON_NAMES[kind]}, got {_one_line(repr(meta[key]))[:60]}")
    for name, fw in (meta.get("frameworks") or {}).items():
        devices = (fw.get("devices") or []) if isinstance(fw, dict) else None
        if not isinstance(devices, list) or not all(isinstance(d, dict) for d in devices):
            raise ConvbenchError(f"{str(path)!r}: frameworks.{name} must be an object with a list of devices")
    return meta


def _check_samples(path: Path, data: Any) -> dict[str, list[float]] | None:
    """samples.json: {phase: [seconds, ...]}, every time a finite number."""
    if data is None:
        return None
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(_finite(s) for s in v) for v in data.values()):
        raise ConvbenchError(f"{str(path)!r} is not a samples.json (an object of phase: [finite seconds, ...])")
    return data


def _check_epochs(path: Path, data: Any) -> list[dict[str, Any]] | None:
    """epochs.json: [{epoch's figures}, ...], each with its training time and test accuracy as numbers."""
    if data is None:
        return None
    if not isinstance(data, list) or not all(isinstance(e, dict) and _finite(e.get("train_time_s"))
                                             and _finite(e.get("test_accuracy")) for e in data):
        raise ConvbenchError(f"{str(path)!r} is not an epochs.json (a list of objects with numbers "
                             "train_time_s and test_accuracy)")
    return data


def _check_rows(csv: Path, rows: list[dict[str, Any]]) -> None:
    """Every row names its cell and ends in a known status."""
    for n, row in enumerate(rows, 1):
        if empty := [c for c in REQUIRED if row[c] is None]:
            raise ConvbenchError(f"{str(csv)!r} row {n}: column {empty[0]} is empty")
        if row["status"] not in STATUSES:
            raise ConvbenchError(f"{str(csv)!r} row {n}: unknown status {row['status']!r}; known: {', '.join(STATUSES)}")


def _check_measured(csv: Path, rows: list[dict[str, Any]], samples: dict[str, dict[str, list[float]]]) -> None:
    """An ok row holds the figure it is judged on (a speed row's median step time, or its raw samples; a train row's
    training time): without it the row is neither a failure nor a measurement."""
    for n, row in enumerate(rows, 1):
        if row["status"] != "ok":
            continue
        if row["mode"] == "speed" and row["ms_median"] is None and not samples.get(row["cell"], {}).get(row["phase"]):
            raise ConvbenchError(f"{str(csv)!r} row {n}: an ok speed row with no ms_median and no samples of phase "
                                 f"{row['phase']!r} in cells/{row['cell']}/samples.json")
        if row["mode"] == "train" and row["train_time_s"] is None:
            raise ConvbenchError(f"{str(csv)!r} row {n}: an ok train row with no train_time_s")


def load_run(run_dir: str | Path) -> Run:
    """Reads a run directory; ConvbenchError (one line naming the file) if it is not one or a file of it is corrupt."""
    path = Path(run_dir)
    if not path.exists():
        raise ConvbenchError(f"run directory {str(path)!r} does not exist")
    csv = path / "results.csv"
    if not path.is_dir() or not csv.is_file():
        raise ConvbenchError(f"{str(path)!r} is not a convbench run directory (no results.csv)")
    raw_meta = read_json(path / "meta.json")
    version = check_readable(raw_meta, path / "meta.json", repr(str(path))) if isinstance(raw_meta, dict) else "1.0"
    meta = _check_meta(path / "meta.json", raw_meta)
    try:
        rows, columns = read_csv(csv)
    except (OSError, ValueError) as exc:
        raise ConvbenchError(f"cannot read {str(csv)!r}: {_one_line(exc)}") from None
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ConvbenchError(f"{str(csv)!r} is not a convbench results file (no column {missing[0]!r})")
    rows = [{**dict.fromkeys(COLUMNS), **r} for r in rows]   # an older file's missing columns are empty
    _check_rows(csv, rows)
    histories: dict[str, list[dict[str, Any]]] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    for cell in dict.fromkeys(str(r["cell"]) for r in rows):
        folder = path / "cells" / cell
        if (h := _check_epochs(folder / "epochs.json", read_json(folder / "epochs.json"))) is not None:
            histories[cell] = h
        if (s := _check_samples(folder / "samples.json", read_json(folder / "samples.json"))) is not None:
            samples[cell] = s
    _check_measured(csv, rows, samples)
    return Run(path, rows, meta, histories, samples, version)
