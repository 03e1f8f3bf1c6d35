"""results.csv: rows written atomically with the fixed column order first, and read back as row dicts.
The only module that builds DataFrames for the results files."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from harness.atomic import write_atomic
from harness.results.records import COLUMNS


def frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    extra = [c for r in rows for c in r if c not in COLUMNS]
    columns = list(COLUMNS) + list(dict.fromkeys(extra))
    return pd.DataFrame(list(rows), columns=columns)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Writes atomically (harness.atomic); ``WriteFailed`` naming the file when the disk refuses."""
    write_atomic(path, frame(rows).to_csv(index=False))


def read_csv(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows with NaN as None, the file's columns); OSError / ValueError when it is unreadable."""
    df = pd.read_csv(path)
    rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
            for r in df.to_dict("records")]
    return rows, list(df.columns)
