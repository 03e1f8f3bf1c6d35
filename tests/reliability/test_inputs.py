"""Bad input at the edges: a corrupt or foreign run folder read by report, compare and history; a batch that does
not fit the training set; inf and nan wherever a number is accepted; compare's gate when nothing was compared.

Each fault is made for real (a results.csv torn by a file-size limit, a value overwritten in the file, a misshapen
JSON file) and must give one line naming the file and a non-zero exit, never a traceback, and lose no finished row.
"""
from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
from helpers import REGISTRIES, make_run, run_cli

from harness.commands.args import finite_float
from harness.commands.cli import build_parser
from harness.errors import ConvbenchError
from harness.orchestrator.plan import new_plan
from harness.orchestrator.recipes import KEYS, check_recipe, load_recipe_file
from harness.plugin_manager import get_plugin_manager
from harness.results.comparison import compare_runs
from harness.results.csvio import read_csv, write_csv
from harness.results.history import write_history
from harness.results.records import COLUMN_TYPES, COLUMNS, make_row
from harness.results.report import write_report
from harness.results.report_html import write_html
from harness.results.runs import load_run
from harness.settings import BuildSettings, Cell, RunSettings

# ---- results input: report, compare and history on a corrupt or foreign folder --------------------------------


def edit_csv(run: Path, row: int, column: str, value: str) -> None:
    """Overwrites one field of results.csv (``row`` 1-based, as the messages count), leaving every other byte's
    meaning alone."""
    with open(run / "results.csv", newline="") as fh:
        table = list(csv.reader(fh))
    table[row][table[0].index(column)] = value
    with open(run / "results.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(table)


def blank_column(run: Path, column: str) -> None:
    with open(run / "results.csv", newline="") as fh:
        n = sum(1 for _ in csv.reader(fh)) - 1
    for row in range(1, n + 1):
        edit_csv(run, row, column, "")


def torn(path: Path, keep: float = 0.6) -> None:
    text = path.read_bytes()
    path.write_bytes(text[: int(len(text) * keep)])


def speed(root: Path) -> Path:
    return make_run(root, run_id="a", mode="speed", dataset="synthetic")


def train(root: Path) -> Path:
    return make_run(root, run_id="a")


def corrupt(make: Callable[[Path], Path], fault: Callable[[Path], object]) -> Callable[[Path], Path]:
    def build(root: Path) -> Path:
        run = make(root)
        fault(run)
        return run
    return build


# name -> (how the folder is made, what the one line must say besides the file's path)
CORRUPT = {
    "empty status": (corrupt(speed, lambda r: edit_csv(r, 1, "status", "")), "results.csv' row 1: column status is empty"),
    "unknown status": (corrupt(speed, lambda r: edit_csv(r, 2, "status", "finished")),
                       "row 2: unknown status 'finished'; known: ok, "),
    "a word for a number": (corrupt(speed, lambda r: edit_csv(r, 2, "batch_size", "lots")),
                            "row 2 (line 3), column batch_size: expected a whole number, got 'lots'"),
    "a fraction for a whole number": (corrupt(speed, lambda r: edit_csv(r, 3, "steps", "99.5")),
                                      "row 3 (line 4), column steps: expected a whole number, got '99.5'"),
    "a word for a bool": (corrupt(speed, lambda r: edit_csv(r, 1, "tf32", "maybe")),
                          "row 1 (line 2), column tf32: expected True or False, got 'maybe'"),
    "a word for a float": (corrupt(train, lambda r: edit_csv(r, 1, "test_accuracy", "high")),
                           "row 1 (line 2), column test_accuracy: expected a number, got 'high'"),
    "results.csv cut short": (corrupt(speed, lambda r: torn(r / "results.csv")),
                              f"fields, the header {len(COLUMNS)}: a file cut short"),
    "results.csv binary": (corrupt(speed, lambda r: (r / "results.csv").write_bytes(bytes(range(256)) * 8)),
                           "cannot read"),
    "results.csv empty": (corrupt(speed, lambda r: (r / "results.csv").write_text("")), "empty file (no header line)"),
    "results.csv foreign": (corrupt(speed, lambda r: (r / "results.csv").write_text("a,b\n1,2\n")),
                            "is not a convbench results file (no column 'cell')"),
    "no results.csv": (corrupt(speed, lambda r: (r / "results.csv").unlink()), "results.csv"),
    "meta.json a list": (corrupt(speed, lambda r: (r / "meta.json").write_text("[1, 2]")),
                         "meta.json' is not a convbench meta.json: [1, 2] is not a JSON object"),
    "meta.json a string": (corrupt(speed, lambda r: (r / "meta.json").write_text('"hello"')),
                           "meta.json' is not a convbench meta.json: 'hello' is not a JSON object"),
    "meta.json cut short": (corrupt(speed, lambda r: torn(r / "meta.json")), "meta.json' is not readable JSON"),
    "meta.json settings a list": (corrupt(speed, lambda r: (r / "meta.json").write_text('{"settings": [1]}')),
                                  "meta.json': settings must be a JSON object, got [1]"),
    "meta.json devices a string": (corrupt(speed, lambda r: (r / "meta.json").write_text(
        '{"frameworks": {"torch": {"devices": "cpu"}}}')), "meta.json': frameworks.torch must be an object with a list"),
    "ok speed row, no median, no samples.json": (
        corrupt(speed, lambda r: (blank_column(r, "ms_median"), (r / "cells/torch-lenet5-cpu/samples.json").unlink())),
        "row 1: an ok speed row with no ms_median and no samples of phase 'forward' in "
        "cells/torch-lenet5-cpu/samples.json"),
    "ok train row, no training time": (corrupt(train, lambda r: edit_csv(r, 1, "train_time_s", "")),
                                       "row 1: an ok train row with no train_time_s"),
    "samples.json misshapen": (corrupt(speed, lambda r: (r / "cells/torch-lenet5-cpu/samples.json").write_text(
        '{"forward": "fast"}')), "samples.json' is not a samples.json"),
    "samples.json with NaN": (corrupt(speed, lambda r: (r / "cells/torch-lenet5-cpu/samples.json").write_text(
        '{"forward": [0.01, NaN]}')), "samples.json' is not a samples.json"),
    "epochs.json misshapen": (corrupt(train, lambda r: (r / "cells/torch-lenet5-cpu/epochs.json").write_text(
        '[{"epoch": 1}]')), "epochs.json' is not an epochs.json"),
}
READERS = {
    "report": lambda run, out: write_report(run, out),
    "report.html": lambda run, out: write_html(run, out),
    "compare": lambda run, out: compare_runs(run, run, fail_on=5),
    "history": lambda run, out: write_history(run.parent, out),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", CORRUPT)
def test_a_corrupt_run_is_one_line_naming_the_file(tmp_path, case, reader):
    make, expected = CORRUPT[case]
    run = make(tmp_path / "runs")
    with pytest.raises(ConvbenchError) as err:
        READERS[reader](run, tmp_path / "out")
    message = str(err.value)
    named = run.parent if reader == "history" and case == "no results.csv" else run   # history: no run under root
    assert "\n" not in message and str(named) in message and expected in message, message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())   # nothing half-written


def test_history_skips_a_corrupt_run_and_keeps_every_other_row(tmp_path):
    root = tmp_path / "runs"
    for n, run_id in enumerate(("a-first", "b-corrupt", "c-third")):
        make_run(root, run_id=run_id, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                 started=f"2026-01-0{n + 1}T00:00:00+00:00", rng_seed=n)
    edit_csv(root / "b-corrupt", 1, "status", "")
    text, (history_csv, _) = write_history(root, tmp_path / "out")
    assert f"skipped: '{root / 'b-corrupt' / 'results.csv'}' row 1: column status is empty" in text
    frame = pd.read_csv(history_csv)
    assert sorted(set(frame["run"])) == ["a-first", "c-third"] and len(frame) == 2 * 2 * 3   # runs x frameworks x phases


def test_a_results_csv_torn_by_a_full_disk(tmp_path):
    """A run copied onto a disk that fills up mid-row (a file-size limit in the copying process): the copy is one
    line naming its file and the torn row, the original still reads."""
    run = speed(tmp_path / "runs")
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "meta.json").write_bytes((run / "meta.json").read_bytes())
    text = (run / "results.csv").read_bytes()
    limit = text.index(b"\n") + 1 + text[text.index(b"\n") + 1:].index(b"\n") // 2   # half way into row 1
    child = ("import resource, shutil, signal, sys\n"
             "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
             "shutil.copyfile(sys.argv[1], sys.argv[2])\n")
    proc = subprocess.run([sys.executable, "-c", child, str(run / "results.csv"), str(copy / "results.csv")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "File too large" in proc.stderr
    assert (copy / "results.csv").stat().st_size == limit
    with pytest.raises(ConvbenchError, match=rf"results.csv': row 1 \(line 2\) has \d+ fields, the header {len(COLUMNS)}") as err:
        compare_runs(run, copy)
    assert "\n" not in str(err.value) and str(copy) in str(err.value)
    assert len(load_run(run).rows) == 3


def test_columns_are_read_as_the_schema_declares_them(tmp_path):
    """Round trip through the real writer: every value comes back as written, with its declared type; a version
    '12.10' stays a string, an int column with gaps (written by pandas as 128.0) comes back as ints."""
    assert set(COLUMN_TYPES) == set(COLUMNS) and set(COLUMN_TYPES.values()) == {str, int, float, bool}
    cell = Cell(run_id="r", name="torch-lenet5-cpu", framework="torch", model="lenet5", framework_version="12.10",
                run=RunSettings(batch_size=128, seed=3))
    rows = [make_row(cell, status="ok", tf32=True, gpu_other_procs=2, lr=1e-3, train_time_s=12.5, cuda_runtime="12.0"),
            make_row(cell, status="crashed", error="worker crashed: a, \"quoted\"\nsecond line", batch_size=None)]
    write_csv(rows, tmp_path / "results.csv")
    back, columns = read_csv(tmp_path / "results.csv")
    assert columns == list(COLUMNS) and back == rows
    assert [type(back[0][c]) for c in ("framework_version", "batch_size", "tf32", "lr", "cuda_runtime")] == \
        [str, int, bool, float, str]
    edit_csv(tmp_path, 1, "batch_size", "128.0")   # how pandas writes an int column with a gap
    edit_csv(tmp_path, 1, "tf32", "False")
    back, _ = read_csv(tmp_path / "results.csv")
    assert (type(back[0]["batch_size"]), back[0]["batch_size"], back[0]["tf32"]) == (int, 128, False)


# ---- a batch that does not fit the training set: refused before any cell ---------------------------------------

DIGITS_TRAIN = 1437   # harness/datasets/digits.py: 1,437 training images


@pytest.mark.parametrize("argv, refused", [
    (["--batch-size", str(DIGITS_TRAIN + 1)], f"larger than the digits training set of {DIGITS_TRAIN} images"),
    (["--batch-size", str(DIGITS_TRAIN)], None),
    (["--dataset", "synthetic", "--batch-size", "513"], "larger than the synthetic training set of 512 images"),
    (["--dataset", "synthetic", "--batch-size", "512"], None),
    (["--nproc", "2", "--batch-size", str(DIGITS_TRAIN + 1)], "larger than the digits training set"),
    (["--mode", "speed", "--batch-size", "1024"], None),   # speed mode times one batch of its own size
])
def test_a_batch_larger_than_the_training_set_is_refused_before_any_cell(tmp_path, argv, refused):
    out = tmp_path / "out"
    full = ["--frameworks", "torch", "--models", "lenet5", "--epochs", "1", *argv, "--output", str(out)]
    args = build_parser().parse_args(["run", *full])
    if refused is None:
        assert new_plan(args, full, REGISTRIES).run_dir.parent == out
        return
    with pytest.raises(ConvbenchError, match=refused) as err:
        new_plan(args, full, REGISTRIES)
    assert "\n" not in str(err.value) and "an epoch would train no step" in str(err.value)
    assert not out.exists()   # no run directory: nothing started


# ---- inf and nan refused wherever a number is accepted ---------------------------------------------------------

@pytest.mark.parametrize("option", ["--lr", "--momentum", "--weight-decay", "--target", "--timeout", "--require-quiet"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_non_finite_options_are_refused(option, value):
    with pytest.raises(ConvbenchError, match=f"argument {option}: expected a finite number, got '{value}'"):
        build_parser().parse_args(["run", f"{option}={value}"])


def test_the_one_number_parser():
    assert finite_float("1e-3") == 1e-3 and finite_float("-2") == -2.0
    with pytest.raises(Exception, match="expected a number, got 'fast'"):
        finite_float("fast")


@pytest.mark.parametrize("key", [k for k, kind in KEYS.items() if kind is float])
@pytest.mark.parametrize("literal", ["inf", "-inf", "nan"])
def test_non_finite_recipe_values_are_refused_naming_the_file(tmp_path, key, literal):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f"{key} = {literal}\n")
    with pytest.raises(ConvbenchError, match=f"recipe file '{recipe}': {key} must be a finite number"):
        load_recipe_file(recipe)


@pytest.mark.parametrize("key", ["lr", "momentum", "weight_decay", "decay_factor", "target"])
def test_check_recipe_refuses_non_finite_values(key):
    recipe = {k: getattr(RunSettings, k) for k in KEYS}
    recipe[key] = math.nan
    with pytest.raises(ConvbenchError, match=f"{key} must be a finite number, got nan"):
        check_recipe(recipe)


@pytest.mark.parametrize("key, value", [("momentum", math.nan), ("weight_decay", math.inf)])
def test_the_build_hook_refuses_non_finite_settings(key, value):
    """The dict a plugin's convbench_build_model receives: refused before the framework is touched."""
    with pytest.raises(ConvbenchError, match=f"BuildSettings.{key}: expected a finite number"):
        BuildSettings.from_dict({key: value})
    with pytest.raises(ConvbenchError, match=f"BuildSettings.{key}: expected a finite number"):
        get_plugin_manager().hook.convbench_build_model(framework="torch", model=REGISTRIES.models.get("lenet5"),
                                                        device="cpu", settings={key: value})


def test_plan_and_cell_json_refuse_non_finite_settings():
    with pytest.raises(ConvbenchError, match="RunSettings.lr: expected a finite number, got inf"):
        RunSettings.from_dict({"lr": math.inf})
    with pytest.raises(ConvbenchError, match="RunSettings.timeout: expected a finite number, got nan"):
        RunSettings.from_dict({"timeout": math.nan})


# ---- compare's gate ---------------------------------------------------------------------------------------------

def test_a_gate_that_compared_nothing_fails(tmp_path):
    a = make_run(tmp_path, run_id="a", models=("lenet5", "alexnet"))
    b = make_run(tmp_path, run_id="b", models=("vgg16",))
    text, code = compare_runs(a, b, fail_on=5)
    assert code == 1 and text.splitlines()[-1] == ("regression gate failed: no cell was compared (2 of A's 2 cell(s) "
                                                   "had no partner in B, 1 of B's 1 none in A)")
    assert compare_runs(a, b)[1] == 0   # without the gate: a report, not a verdict
    c = make_run(tmp_path, run_id="c", models=("lenet5", "vgg16"))
    text, code = compare_runs(a, c, fail_on=50)
    assert code == 0 and text.splitlines()[-1] == ("regressions over 50%: none (1 cell(s) compared; 1 of A's 2 cell(s) "
                                                   "had no partner in B, 1 of B's 2 none in A)")


# ---- the same through the command line: one line on stderr, the exit code, no traceback ------------------------

@pytest.mark.e2e
def test_the_command_line_answers_bad_input_with_one_line(tmp_path):
    run = CORRUPT["empty status"][0](tmp_path / "runs")
    other = make_run(tmp_path / "other", run_id="b", mode="speed", dataset="synthetic", models=("alexnet",))
    out = tmp_path / "out"
    cases = [
        (["report", str(run), "--output", str(out)], 2, "row 1: column status is empty"),
        (["compare", str(run), str(other)], 2, "row 1: column status is empty"),
        (["history", str(run.parent), "--output", str(out)], 2, "row 1: column status is empty"),
        (["run", "--frameworks", "torch", "--models", "lenet5", "--epochs", "1", "--batch-size", "2000",
          "--output", str(out)], 2, f"larger than the digits training set of {DIGITS_TRAIN} images"),
        (["run", "--frameworks", "torch", "--models", "lenet5", "--lr", "inf", "--output", str(out)], 2,
         "argument --lr: expected a finite number, got 'inf'"),
    ]
    for argv, code, line in cases:
        proc = run_cli(*argv, timeout=300)
        assert proc.returncode == code and "Traceback" not in proc.stderr, (argv, proc.stderr)
        assert proc.stderr.strip().count("\n") == 0 and line in proc.stderr, (argv, proc.stderr)
    assert not out.exists()
    proc = run_cli("compare", str(other), str(make_run(tmp_path / "third", run_id="c", mode="speed",
                                                        dataset="synthetic")), "--fail-on-regression", "5", timeout=300)
    assert proc.returncode == 1 and proc.stdout.strip().splitlines()[-1].startswith(
        "regression gate failed: no cell was compared (3 of A's 3 cell(s) had no partner in B, 3 of B's 3 none in A)")
