"""The results format's version, and the JSON Schemas of a results row and of meta.json.

``SCHEMA_VERSION`` ("MAJOR.MINOR") is written into every JSON file convbench writes in a run folder: plan.json,
meta.json (which stands for results.csv, a CSV having no place for it), each cell's cell.json and every journal
record. epochs.json and samples.json keep their shape (a list of epochs; an object of phase: seconds) and are of
their folder's version, meta.json's: wrapping them would change the shape every reader of them knows, a major change
that would make every convbench before it refuse every run after it, for no gain, since they are never read apart
from their folder. A folder of ``format: 1`` without ``schema_version`` (written before there was one) is 1.0.

A minor version only adds (a column, a meta.json key): a reader reads every minor of its major, and older majors;
it refuses a newer major in one line (``check_readable``). What bumps which: docs/results.md.

row.schema.json (one row of results.csv) is made by ``row_schema`` from records.COLUMNS, COLUMN_TYPES, REQUIRED and
STATUSES, the table the CSV reader converts with, so the two cannot disagree (``python -m harness.results.schema``
writes the file; a test checks the shipped file is what it makes). meta.schema.json is written by hand.
"""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import ConvbenchError
from harness.results.records import COLUMN_TYPES, COLUMNS, REQUIRED, STATUSES

SCHEMA_VERSION = "1.1"
MAJOR = int(SCHEMA_VERSION.split(".")[0])
# the integer version written before schema_version (the major): a convbench that reads only it still refuses a
# folder of another major
FORMAT = MAJOR
SCHEMAS = ("row.schema.json", "meta.schema.json")
DRAFT = "https://json-schema.org/draft/2020-12/schema"
JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
PANDAS_DTYPES = {str: "string", int: "Int64", float: "Float64", bool: "boolean"}
VERSION = re.compile(r"(\d+)\.(\d+)")


def version_of(data: dict[str, Any], file: Path) -> str:
    """The results schema version a run folder's JSON ``file`` (meta.json, plan.json, cell.json) holding ``data`` was
    written in: its ``schema_version``, else its ``format`` as N.0, else 1.0 (a file from before either).
    ConvbenchError (one line, naming the file) when the one it has is not a version."""
    where = repr(str(file))
    version, fmt = data.get("schema_version"), data.get("format")
    if version is not None:
        if not isinstance(version, str) or not VERSION.fullmatch(version):
            raise ConvbenchError(f"{where}: schema_version must be a \"MAJOR.MINOR\" string such as "
                                 f"{SCHEMA_VERSION!r}, got {json.dumps(version)[:40]}")
        return version
    if fmt is None:
        return "1.0"
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise ConvbenchError(f"{where}: format must be a whole number, got {json.dumps(fmt)[:40]}")
    return f"{fmt}.0"


def check_readable(data: dict[str, Any], file: Path, where: str) -> str:
    """The version of ``data``, read from ``file`` (``version_of``), when this convbench reads it (its major or an older
    one); a newer major is ConvbenchError, one line: ``where`` (the run folder) was written by a newer convbench."""
    version = version_of(data, file)
    if int(version.split(".")[0]) > MAJOR:
        raise ConvbenchError(f"{where} was written by a newer convbench (results schema {version}; this one reads "
                             f"{MAJOR}.x): upgrade convbench")
    return version


def column_schema(column: str) -> dict[str, Any]:
    """One column's JSON Schema: its declared type, null where it may be empty; status one of STATUSES."""
    kind = JSON_TYPES[COLUMN_TYPES[column]]
    if column == "status":
        return {"enum": list(STATUSES)}
    if column in REQUIRED:
        return {"type": kind, **({"minLength": 1} if kind == "string" else {})}
    return {"type": [kind, "null"]}


def row_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one results row as read back (csvio.read_csv: an empty field is null):
    every column of this version present, with its declared type. Columns a later minor version adds are allowed."""
    return {
        "$schema": DRAFT,
        "$id": f"urn:convbench:results:{MAJOR}:row",
        "title": "convbench results row",
        "description": f"One row of results.csv, results schema {SCHEMA_VERSION} (meta.json's schema_version); "
                       "an empty field is null. Made by harness.results.schema.row_schema from "
                       "harness/results/records.py: do not edit, run python -m harness.results.schema.",
        "type": "object",
        "required": list(COLUMNS),
        "properties": {c: column_schema(c) for c in COLUMNS},
    }


def pandas_dtypes() -> dict[str, str]:
    """The declared column types as pandas dtypes, for ``pandas.read_csv(path, dtype=pandas_dtypes())``: nullable
    ones, so an empty field is <NA> and a column keeps its type whatever its values look like."""
    return {c: PANDAS_DTYPES[kind] for c, kind in COLUMN_TYPES.items()}


def load(name: str) -> dict[str, Any]:
    """A shipped schema (one of SCHEMAS), read as package data."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown schema {name!r}; known: {', '.join(SCHEMAS)}")
    return json.loads(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))


def write_row_schema(folder: Path = Path(__file__).resolve().parent) -> Path:
    """Writes row.schema.json from ``row_schema`` (after a column or a type changed)."""
    path = folder / "row.schema.json"
    path.write_text(dumps(row_schema()), encoding="utf-8")
    return path


def dumps(schema: dict[str, Any]) -> str:
    """A schema as JSON to read: one line per key, and per column of ``properties``."""
    lines = []
    for key, value in schema.items():
        if key == "properties":
            columns = [f"  {json.dumps(c)}: {json.dumps(v)}" for c, v in value.items()]
            lines.append(f' {json.dumps(key)}: {{\n' + ",\n".join(columns) + "\n }")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
