"""Sweeps (``--batch-size 4,8`` and comma lists of --precision, --layout, --compile, --threads): parsing, the plan's
cells and their names, and a batch sweep ended upward by an out-of-memory (the test-only ``faulty`` framework)."""
from __future__ import annotations

import argparse
import csv
import json

import jsonschema
import pytest
from helpers import FAULT_ENV, REGISTRIES, run_cli

from harness.commands.cli import build_parser
from harness.errors import ConvbenchError
from harness.orchestrator.plan import Plan, new_plan, prepare_cell, resolve_run, resolve_settings
from harness.orchestrator.probes import Probe
from harness.orchestrator.sweep import SweepCutoff, combinations
from harness.results import journal, schema
from harness.results.records import failure_row

CPU_ONLY = [{"name": "cpu", "description": "x86"}]


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def names(plan: Plan, framework: str = "torch", model: str = "lenet5", seed: int = 0) -> list[str]:
    probe = Probe(framework, True, "", "2.13", CPU_ONLY)
    return [prepare_cell(framework, model, seed, plan, probe, REGISTRIES, 1, swept)[0].name
            for swept in combinations(plan.sweep)]


def test_one_value_is_the_run_as_before():
    for one in (["--batch-size", "64"], ["--precision", "bf16"], ["--threads", "2"], ["--compile", "none"]):
        settings, sweep = resolve_run(args(*one), REGISTRIES)
        assert sweep == {}
        assert settings == resolve_settings(args(*one), REGISTRIES)
    assert resolve_settings(args("--batch-size", "64"), REGISTRIES).batch_size == 64
    assert resolve_settings(args("--layout", "nhwc"), REGISTRIES).layout == "nhwc"


def test_a_list_sweeps_batches_ascending():
    settings, sweep = resolve_run(args("--batch-size", "128,32,64", "--precision", "fp32,bf16", "--threads", "1,4"),
                                  REGISTRIES)
    assert sweep == {"batch_size": [32, 64, 128], "precision": ["fp32", "bf16"], "threads": [1, 4]}
    # the run's settings: the smallest batch, the first precision, the most threads (probes and the CPU peak)
    assert (settings.batch_size, settings.precision, settings.threads) == (32, "fp32", 4)
    combos = combinations(sweep)
    assert len(combos) == 12 and combos[:3] == [{"precision": "fp32", "threads": 1, "batch_size": b} for b in (32, 64, 128)]


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "32,x"], "expected a whole number, got 'x'"),
    (["--batch-size", "32,0"], "must be at least 1, got 0"),
    (["--batch-size", "32,,64"], "expected a value or a comma-separated list of values, got '32,,64'"),
    (["--batch-size", "32,32"], "32 given twice in '32,32'"),
    (["--precision", "fp32,fp8"], "expected one of fp32, bf16, fp16, got 'fp8'"),
    (["--layout", "nchw,chw"], "expected one of native, nchw, nhwc, got 'chw'"),
    (["--compile", "jit"], "expected one of auto, none, default, xla, got 'jit'"),
    (["--threads", "1,-2"], "must be at least 1, got -2"),
])
def test_bad_values_are_refused(argv, message):
    with pytest.raises(ConvbenchError) as exc:
        args(*argv)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_bad_value_is_one_line_and_exit_2(tmp_path):
    proc = run_cli("run", "--batch-size", "32,64,x", "--output", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == "" and not any(tmp_path.iterdir())
    assert proc.stderr.strip().splitlines() == [
        "convbench: error: argument --batch-size: expected a whole number, got 'x' (see 'convbench run --help')"]


def test_a_batch_sweep_with_oom_retry_is_refused():
    with pytest.raises(ConvbenchError, match="drop --oom-retry"):
        resolve_run(args("--batch-size", "32,64", "--oom-retry"), REGISTRIES)
    assert resolve_run(args("--precision", "fp32,bf16", "--oom-retry"), REGISTRIES)[0].oom_retry


def test_cell_names_name_a_value_only_when_swept(tmp_path):
    plain = new_plan(args("--frameworks", "torch", "--models", "lenet5", "--batch-size", "64", "--output",
                          str(tmp_path)), ["run"], REGISTRIES)
    assert names(plain) == ["torch-lenet5-cpu"] and "sweep" not in json.loads((plain.run_dir / "plan.json").read_text())
    swept = new_plan(args("--frameworks", "torch", "--models", "lenet5", "--batch-size", "8,4", "--precision",
                          "fp32,bf16", "--compile", "none", "--seeds", "2", "--output", str(tmp_path)), ["run"], REGISTRIES)
    assert names(swept, seed=1) == ["torch-lenet5-cpu-fp32-b4-s1", "torch-lenet5-cpu-fp32-b8-s1",
                                    "torch-lenet5-cpu-bf16-b4-s1", "torch-lenet5-cpu-bf16-b8-s1"]
    again = Plan.load(swept.run_dir)   # --resume reads the sweep back, so it names the same cells
    assert again.sweep == {"precision": ["fp32", "bf16"], "batch_size": [4, 8]} and names(again, seed=1) == names(swept, seed=1)
    cell = prepare_cell("torch", "lenet5", 0, again, Probe("torch", True, "", "2.13", CPU_ONLY), REGISTRIES, 1,
                        {"precision": "bf16", "batch_size": 8})[0]
    assert (cell.batch_size, cell.run.precision, cell.run.compile) == (8, "bf16", "none")
    t = new_plan(args("--frameworks", "torch", "--models", "lenet5", "--threads", "1,2", "--layout", "nchw,nhwc",
                      "--compile", "auto,xla", "--output", str(tmp_path)), ["run"], REGISTRIES)
    assert names(t)[:2] == ["torch-lenet5-cpu-nchw-compile-auto-t1", "torch-lenet5-cpu-nchw-compile-auto-t2"]


def test_every_batch_of_a_sweep_is_checked_before_the_run(tmp_path):
    with pytest.raises(ConvbenchError, match="batch 4096"):   # digits has 1437 training images
        new_plan(args("--frameworks", "torch", "--models", "lenet5", "--batch-size", "32,4096", "--output",
                      str(tmp_path)), ["run"], REGISTRIES)


def test_the_cutoff_skips_larger_batches_of_the_same_sweep_only(tmp_path):
    plan = new_plan(args("--frameworks", "torch", "--models", "lenet5,simple_cnn", "--batch-size", "4,8,16",
                         "--output", str(tmp_path)), ["run"], REGISTRIES)
    probe = Probe("torch", True, "", "2.13", CPU_ONLY)
    cells = {(m, s["batch_size"]): prepare_cell("torch", m, 0, plan, probe, REGISTRIES, 1, s)[0]
             for m in ("lenet5", "simple_cnn") for s in combinations(plan.sweep)}
    cutoff = SweepCutoff()
    cutoff.saw(cells["lenet5", 8], [failure_row(cells["lenet5", 8], "oom", "CUDA out of memory")])
    assert cutoff.skip(cells["lenet5", 4]) is None and cutoff.skip(cells["lenet5", 8]) is None
    assert cutoff.skip(cells["simple_cnn", 16]) is None
    (row,) = cutoff.skip(cells["lenet5", 16]) or []
    assert (row["status"], row["error"], row["batch_size"], row["cell"]) == (
        "oom", "not run: batch 8 ran out of memory", 16, "torch-lenet5-cpu-b16")


@pytest.mark.e2e
def test_an_out_of_memory_ends_that_sweep_upward_not_the_run(tmp_path):
    """fault_oom raises MemoryError above batch 32: its 64 runs out of memory, its 128 is not run; fault_ok runs all."""
    proc = run_cli("run", "--frameworks", "faulty", "--models", "fault_oom,fault_ok", "--epochs", "1", "--threads", "1",
                   "--batch-size", "16,64,128", "--output", str(tmp_path), env=FAULT_ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr   # not every row is ok
    run_dir = next(tmp_path.iterdir())
    with open(run_dir / "results.csv", newline="") as fh:
        rows = {r["cell"]: r for r in csv.DictReader(fh)}
    assert {c: (r["batch_size"], r["status"]) for c, r in rows.items()} == {
        "faulty-fault_oom-cpu-b16": ("16", "ok"), "faulty-fault_oom-cpu-b64": ("64", "oom"),
        "faulty-fault_oom-cpu-b128": ("128", "oom"), "faulty-fault_ok-cpu-b16": ("16", "ok"),
        "faulty-fault_ok-cpu-b64": ("64", "ok"), "faulty-fault_ok-cpu-b128": ("128", "ok")}
    assert "MemoryError" in rows["faulty-fault_oom-cpu-b64"]["error"]
    assert rows["faulty-fault_oom-cpu-b128"]["error"] == "not run: batch 64 ran out of memory"
    assert not (run_dir / "cells" / "faulty-fault_oom-cpu-b128").exists()   # no worker was started for it
    assert "[faulty-fault_oom-cpu-b128] not run: batch 64 ran out of memory" in proc.stdout
    table = proc.stdout[proc.stdout.index("model "):]
    assert "fault_oom batch 64   oom\n" in table and "fault_oom batch 128  oom (not run)" in table
    assert "fault_ok batch 128" in table
    assert "sweep: one line per batch size" in table
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["sweep"] == {"batch_size": [16, 64, 128]}
    jsonschema.Draft202012Validator(schema.load("meta.schema.json"), format_checker=jsonschema.FormatChecker()).validate(meta)
    assert run_cli("report", str(run_dir), timeout=120).returncode == 0
    md = (run_dir / "report.md").read_text()
    assert "| fault_oom batch 128 | oom (not run) |" in md
    assert "| faulty-fault_oom-cpu-b128 | train | oom | not run: batch 64 ran out of memory |" in md
    # --resume tries the cells that did not finish again, in order: the same cutoff, the same names
    again = run_cli("run", "--resume", str(run_dir), env=FAULT_ENV)
    assert again.returncode == 1 and "[faulty-fault_ok-cpu-b128] ok in an earlier attempt; kept" in again.stdout
    assert [a["cell"] for a in journal.attempts(run_dir)][6:] == ["faulty-fault_oom-cpu-b64", "faulty-fault_oom-cpu-b128"]
