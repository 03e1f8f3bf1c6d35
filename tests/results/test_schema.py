"""The results format's version and its JSON Schemas: real runs checked with the real jsonschema against the shipped
schemas, every reader refusing a newer major version in one line and reading older folders, and results.csv read
with each column's declared type where pandas would guess another."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from helpers import edit_json, make_run, needs, run_cli

from harness.errors import ConvbenchError
from harness.orchestrator.plan import Plan
from harness.results import journal
from harness.results.comparison import compare_runs
from harness.results.csvio import read_csv, write_csv
from harness.results.export import pytest_benchmark_json
from harness.results.history_model import find_runs
from harness.results.records import COLUMN_TYPES, COLUMNS, REQUIRED, STATUSES, make_row
from harness.results.runs import load_run
from harness.results.schema import FORMAT, MAJOR, SCHEMA_VERSION, SCHEMAS, load, pandas_dtypes, row_schema
from harness.settings import Cell, RunSettings
from harness.worker.protocol import read_job

VALIDATOR = jsonschema.Draft202012Validator


def validator(name: str) -> jsonschema.Draft202012Validator:
    return VALIDATOR(load(name), format_checker=VALIDATOR.FORMAT_CHECKER)


def errors(name: str, instance: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(name).iter_errors(instance)]


# ---- the schemas ------------------------------------------------------------------------------------------------

def test_the_shipped_row_schema_is_the_one_the_column_table_makes():
    """records.COLUMN_TYPES is the one table: the CSV reader converts with it and the row schema is made from it, so
    a column added or retyped there without `python -m harness.results.schema` fails here."""
    assert load("row.schema.json") == row_schema(), "run: python -m harness.results.schema"
    for name in SCHEMAS:
        VALIDATOR.check_schema(load(name))
    props = load("row.schema.json")["properties"]
    assert list(props) == list(COLUMNS) and props["status"] == {"enum": list(STATUSES)}
    kinds = {str: "string", int: "integer", float: "number", bool: "boolean"}
    for column, kind in COLUMN_TYPES.items():
        if column != "status":
            assert props[column]["type"] == (kinds[kind] if column in REQUIRED else [kinds[kind], "null"]), column


def test_the_meta_schema_names_this_version_and_the_statuses():
    meta = load("meta.schema.json")["properties"]
    assert meta["format"]["const"] == FORMAT
    assert meta["statuses"]["additionalProperties"]["enum"] == list(STATUSES)
    version = {"type": "object", "properties": {"v": meta["schema_version"]}}
    assert VALIDATOR(version).is_valid({"v": SCHEMA_VERSION}) and VALIDATOR(version).is_valid({"v": f"{MAJOR}.7"})
    assert not VALIDATOR(version).is_valid({"v": f"{MAJOR + 1}.0"})


def test_a_row_of_the_wrong_type_is_caught():
    cell = Cell(run_id="r", name="torch-lenet5-cpu", framework="torch", model="lenet5", run=RunSettings(batch_size=8))
    row = make_row(cell, status="ok", framework_version="2.10", tf32=True)
    assert errors("row.schema.json", row) == []
    assert errors("row.schema.json", {**row, "batch_size": "8"}) == ["batch_size: '8' is not of type 'integer', 'null'"]
    assert errors("row.schema.json", {**row, "status": "fine"})[0].startswith("status: 'fine' is not one of")
    assert errors("row.schema.json", {**row, "model": None}) == ["model: None is not of type 'string'"]
    assert errors("row.schema.json", {k: v for k, v in row.items() if k != "note"}) == [": 'note' is a required property"]
    assert errors("row.schema.json", {**row, "a_later_minor_column": 1}) == []


# ---- real runs against the schemas -----------------------------------------------------------------------------

def real_run(root: Path, *args: str) -> Path:
    out = root / "out"
    done = run_cli("run", "--frameworks", "torch", "--models", "lenet5", "--dataset", "synthetic", "--threads", "1",
                   "--output", str(out), *args)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [run_dir] = out.iterdir()
    return run_dir


def check_folder(run_dir: Path) -> list[dict]:
    """Every results row and meta.json valid; every JSON file convbench wrote carries this version; the rows."""
    rows, columns = read_csv(run_dir / "results.csv")
    assert columns == list(COLUMNS)
    for row in rows:
        assert errors("row.schema.json", row) == [], row["cell"]
    for record in journal.attempts(run_dir):   # the rows as the worker sent them, before the CSV
        assert record["schema_version"] == SCHEMA_VERSION
        for row in record["rows"]:
            assert errors("row.schema.json", row) == [], record["cell"]
    meta = json.loads((run_dir / "meta.json").read_text())
    assert errors("meta.schema.json", meta) == []
    assert (meta["schema_version"], meta["format"]) == (SCHEMA_VERSION, FORMAT)
    assert json.loads((run_dir / "plan.json").read_text())["schema_version"] == SCHEMA_VERSION
    for cell in (run_dir / "cells").iterdir():
        assert json.loads((cell / "cell.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert load_run(run_dir).schema_version == SCHEMA_VERSION
    return rows


@pytest.mark.e2e
@needs("torch")
def test_a_real_train_run_and_a_real_speed_run_are_valid(tmp_path):
    train = real_run(tmp_path / "train", "--epochs", "1")
    [row] = check_folder(train)
    assert (row["status"], row["mode"], type(row["batch_size"]), type(row["test_accuracy"])) == ("ok", "train", int, float)
    assert isinstance(json.loads((train / "cells" / row["cell"] / "epochs.json").read_text()), list)   # its old shape

    speed = real_run(tmp_path / "speed", "--mode", "speed", "--warmup", "1", "--steps", "3")
    rows = check_folder(speed)
    assert {r["status"] for r in rows} == {"ok"} and all(r["mode"] == "speed" and r["steps"] == 3 for r in rows)
    samples = json.loads((speed / "cells" / rows[0]["cell"] / "samples.json").read_text())
    assert {r["phase"] for r in rows} <= set(samples) and all(isinstance(v, list) for v in samples.values())

    export = pytest_benchmark_json(load_run(speed))
    assert export["machine_info"]["convbench"]["results_schema"] == SCHEMA_VERSION


# ---- versions: a newer major refused, older folders read ---------------------------------------------------------

def with_meta(run_dir: Path, **changes) -> Path:
    edit_json(run_dir / "meta.json", **changes)
    return run_dir


def newer(run_dir: Path) -> str:
    return (f"{str(run_dir)!r} was written by a newer convbench (results schema 2.0; this one reads 1.x): "
            "upgrade convbench")


def test_every_reader_refuses_a_newer_major_in_one_line(tmp_path):
    old = make_run(tmp_path / "runs", run_id="old", mode="speed")
    run = with_meta(make_run(tmp_path / "runs", run_id="new", mode="speed"), schema_version="2.0", format=2,
                    settings="a 2.0 meta.json may name things otherwise")
    for read in (load_run, lambda r: compare_runs(old, r), lambda r: pytest_benchmark_json(load_run(r))):
        with pytest.raises(ConvbenchError) as err:
            read(run)
        assert str(err.value) == newer(run)
    runs, skipped = find_runs(tmp_path / "runs")   # history: the other runs, and which one it skipped and why
    assert [label for label, _ in runs] == ["old"] and skipped == [newer(run)]
    with pytest.raises(ConvbenchError, match="upgrade convbench"):
        find_runs(with_meta(old, schema_version="2.1").parent)

    report = run_cli("report", str(run))
    assert report.returncode != 0 and report.stderr == f"convbench: error: {newer(run)}\n"


def test_resume_and_the_worker_refuse_a_newer_major(tmp_path):
    Plan("r", tmp_path, ["run"], ["torch"], ["lenet5"], [0], RunSettings(epochs=1)).save()
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert (plan["schema_version"], plan["format"]) == (SCHEMA_VERSION, FORMAT)
    (tmp_path / "plan.json").write_text(json.dumps({**plan, "schema_version": "2.0", "settings": {"renamed": 1}}))
    resume = run_cli("run", "--resume", str(tmp_path))
    assert resume.returncode != 0 and resume.stderr == f"convbench: error: {newer(tmp_path)}\n"

    job = tmp_path / "cell.json"
    job.write_text(json.dumps({"schema_version": "2.0", "kind": "cell", "new_field": 1}))
    with pytest.raises(ConvbenchError, match=r"job file .* was written by a newer convbench \(results schema 2.0"):
        read_job(job)


@pytest.mark.parametrize("meta, version", [
    ({"schema_version": None, "format": 1}, "1.0"),           # written before schema_version
    ({"schema_version": None, "format": None}, "1.0"),        # before format too
    ({"schema_version": "1.7", "format": 1, "new_key": {}}, "1.7"),   # a later minor: read, its new key kept
])
def test_older_folders_and_later_minors_are_read(tmp_path, meta, version):
    run = with_meta(make_run(tmp_path), **meta)
    assert load_run(run).schema_version == version and len(load_run(run).rows) == 1
    (run / "meta.json").unlink()   # an old run may have none
    assert load_run(run).schema_version == "1.0"


@pytest.mark.parametrize("meta, message", [
    ({"schema_version": "two"}, "schema_version must be a \"MAJOR.MINOR\" string such as '1.1', got \"two\""),
    ({"schema_version": 1.0}, "schema_version must be a \"MAJOR.MINOR\" string such as '1.1', got 1.0"),
    ({"schema_version": None, "format": "1"}, 'format must be a whole number, got "1"'),
])
def test_a_version_that_is_not_one_is_one_line(tmp_path, meta, message):
    run = with_meta(make_run(tmp_path), **meta)
    with pytest.raises(ConvbenchError) as err:
        load_run(run)
    assert str(err.value) == f"{str(run / 'meta.json')!r}: {message}"


# ---- declared types, not pandas' guesses ------------------------------------------------------------------------

def test_results_csv_is_read_with_the_declared_types_where_pandas_guesses_others(tmp_path):
    """A framework version "2.10" (pandas: the number 2.1), a bool column with a gap (pandas: object), an int column
    with a gap (pandas: float, and it writes 128.0), and columns with no value in any row (pandas: float NaN)."""
    cell = Cell(run_id="r", name="torch-lenet5-cpu", framework="torch", model="lenet5", framework_version="2.10",
                run=RunSettings(batch_size=128))
    rows = [make_row(cell, status="ok", stable=True, phase="forward"),
            make_row(cell, status="ok", stable=None, phase="train_step", batch_size=None)]
    write_csv(rows, tmp_path / "results.csv")
    text = (tmp_path / "results.csv").read_text()
    assert ",2.10," in text and ",128.0," in text

    guessed = pd.read_csv(tmp_path / "results.csv")
    assert guessed["framework_version"].tolist() == [2.1, 2.1] and guessed["batch_size"].dtype == "float64"
    assert guessed["stable"].dtype == object and guessed["note"].dtype == "float64"

    back, _ = read_csv(tmp_path / "results.csv")
    assert [(r["framework_version"], r["batch_size"], r["stable"], r["note"], r["epochs_to_target"]) for r in back] == \
        [("2.10", 128, True, None, None), ("2.10", None, None, None, None)]
    assert type(back[0]["batch_size"]) is int and all(errors("row.schema.json", r) == [] for r in back)

    declared = pd.read_csv(tmp_path / "results.csv", dtype=pandas_dtypes())   # the same table, for pandas users
    assert declared["framework_version"].tolist() == ["2.10", "2.10"]
    assert (str(declared["batch_size"].dtype), declared["batch_size"].iloc[0]) == ("Int64", 128)
    assert str(declared["stable"].dtype) == "boolean" and declared["stable"].isna().tolist() == [False, True]
    assert bool(declared["stable"].iloc[0]) is True
    assert str(declared["note"].dtype).startswith("string") and declared["note"].isna().all()
