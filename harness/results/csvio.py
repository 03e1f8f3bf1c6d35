"""results.csv: rows written atomically with the fixed column order first, and read back as row dicts.
The only module that builds DataFrames for the results files."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.atomic import write_atomic
from harness.results.records import COLUMN_TYPES, COLUMNS

if TYPE_CHECKING:   # a report library (libraries.py), imported where used: convbench starts without it
    import pandas as pd


def frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd
    extra = [c for r in rows for c in r if c not in COLUMNS]
    columns = list(COLUMNS) + list(dict.fromkeys(extra))
    return pd.DataFrame(list(rows), columns=columns)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Writes atomically (harness.atomic); ``WriteFailed`` naming the file when the disk refuses."""
    write_atomic(path, frame(rows).to_csv(index=False))


def read_csv(path: Path, types: Mapping[str, type] = COLUMN_TYPES) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, the file's columns): each value converted to its column's declared type (``types``, by default
    records.COLUMN_TYPES; a column not in it stays text), an empty field as None. The types are declared, never
    guessed from the values, so a version "12.10" stays "12.10". OSError when the file cannot be read; ValueError
    (one line, naming the row and the column) when it is not one table of such values: no header, a row cut short,
    a value that does not convert."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, strict=True)
        try:
            header = next(reader, None)
            if not header:
                raise ValueError("empty file (no header line)")
            if len(set(header)) < len(header):
                raise ValueError(f"column {next(c for c in header if header.count(c) > 1)!r} appears twice in the header")
            rows = []
            for fields in reader:
                if not fields:   # a blank line
                    continue
                where = f"row {len(rows) + 1} (line {reader.line_num})"
                if len(fields) != len(header):
                    raise ValueError(f"{where} has {len(fields)} fields, the header {len(header)}: a file cut short "
                                     "or not one table")
                rows.append({c: _typed(v, types.get(c, str), f"{where}, column {c}") for c, v in zip(header, fields)})
        except csv.Error as exc:
            raise ValueError(f"line {reader.line_num}: {exc}") from None
    return rows, header


def _typed(text: str, kind: type, where: str) -> Any:
    """One field as ``kind`` (str, int, float or bool); "" (and a float's "nan") is None."""
    if text == "" or kind is str:
        return text or None
    if kind is bool:
        value = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}.get(text.lower())
        if value is None:
            raise ValueError(f"{where}: expected True or False, got {text!r}")
        return value
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{where}: expected {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
    if math.isnan(number):
        return None
    if kind is float:
        return number
    if not number.is_integer():
        raise ValueError(f"{where}: expected a whole number, got {text!r}")
    try:
        return int(text)     # exact, however large
    except ValueError:
        return int(number)   # "128.0": pandas writes an int column with empty fields as floats
