"""A finished run read back from its folder: results.csv, meta.json and each cell's epochs.json / samples.json."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConvbenchError
from harness.results.csvio import read_csv


@dataclass
class Run:
    path: Path
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    histories: dict[str, list[dict[str, Any]]]     # cell -> epochs.json
    samples: dict[str, dict[str, list[float]]]     # cell -> phase -> seconds per timed step

    @property
    def name(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_run(run_dir: str | Path) -> Run:
    """Reads a run directory; ConvbenchError (one line) if it is not one."""
    path = Path(run_dir)
    if not path.exists():
        raise ConvbenchError(f"run directory {str(path)!r} does not exist")
    csv = path / "results.csv"
    if not path.is_dir() or not csv.is_file():
        raise ConvbenchError(f"{str(path)!r} is not a convbench run directory (no results.csv)")
    try:
        rows, columns = read_csv(csv)
    except (OSError, ValueError) as exc:
        raise ConvbenchError(f"cannot read {str(csv)!r}: {exc}") from None
    missing = [c for c in ("cell", "framework", "model", "mode", "status") if c not in columns]
    if missing:
        raise ConvbenchError(f"{str(csv)!r} is not a convbench results file (no column {missing[0]!r})")
    meta = read_json(path / "meta.json") or {}
    histories: dict[str, list[dict[str, Any]]] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    for cell in dict.fromkeys(str(r["cell"]) for r in rows):
        if isinstance(h := read_json(path / "cells" / cell / "epochs.json"), list):
            histories[cell] = h
        if isinstance(s := read_json(path / "cells" / cell / "samples.json"), dict):
            samples[cell] = s
    return Run(path, rows, meta, histories, samples)
