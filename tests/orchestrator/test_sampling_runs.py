"""Adaptive sampling as a run uses it: the budget's plan on a fake clock, the worker's pooled allowance, the refusals,
the table's marks, and one real speed cell sampled by the rule end to end."""
from __future__ import annotations

import csv
import json

import pytest
from helpers import REGISTRIES, needs, run_cli

from harness.commands.cli import build_parser
from harness.errors import ConvbenchError
from harness.orchestrator.budget import FIRST_GUESS_OVERHEAD_S, MIN_SERIES_S, Budget, summary, summary_line
from harness.orchestrator.plan import new_plan
from harness.results.table import comparison_table
from harness.settings import Cell, RunSettings
from harness.worker.speed_cell import Allowance


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def cell(**run):
    return Cell(run_id="r", name="torch-lenet5-cpu", framework="torch", model="lenet5",
                run=RunSettings(mode="speed", **run))


def test_the_budget_shares_what_is_left_among_the_cells_left():
    clock, said = Clock(), []
    budget = Budget(600.0, cells=4, series_per_cell=3, started=0.0, clock=clock, say=said.append)
    first = budget.plan(cell())
    assert first.run.max_time == pytest.approx((600 / 4 - FIRST_GUESS_OVERHEAD_S) / 3)
    assert said[0].startswith("[budget] cell 1/4: 10m00s of 10m00s left, 2m30s per cell")
    clock.now = 60.0   # the cell took 60 s, 45 of them in its series: 15 s of overhead, measured
    budget.finished([{"cell_wall_s": 60.0, "timing_s": 15.0, "window_time_s": None}] * 3)
    second = budget.plan(cell())
    assert second.run.max_time == pytest.approx((540 / 3 - 15) / 3)   # the first cell's unused time goes on
    clock.now = 700.0  # over: each series keeps its minimum
    assert budget.plan(cell()).run.max_time == MIN_SERIES_S and "the budget is spent" in said[-1]


def test_a_cell_pools_its_series_time_under_a_budget_and_not_without():
    pooled = Allowance(RunSettings(mode="speed", max_time=10.0, budget=100.0), series=3)
    assert pooled.rule().max_time_s == 10.0
    pooled.spend(1.0)   # a quiet phase that met its target in 1 s leaves 29 s to the two after it
    assert pooled.rule().max_time_s == pytest.approx(14.5)
    alone = Allowance(RunSettings(mode="speed", max_time=10.0), series=3)
    alone.spend(1.0)
    assert alone.rule().max_time_s == 10.0
    assert alone.rule(min_samples=5, detect_warmup=False).min_samples == 5


@pytest.mark.parametrize("argv, refused", [
    (["--steps", "100", "--budget", "30m"], "--budget plans adaptive sampling: use it with --steps auto"),
    (["--budget", "30m", "--executor", "ray"], "--budget plans cells that run one after another"),
])
def test_a_budget_that_cannot_be_honoured_is_refused(tmp_path, argv, refused):
    full = ["--mode", "speed", "--frameworks", "torch", "--models", "lenet5", *argv, "--output", str(tmp_path / "o")]
    with pytest.raises(ConvbenchError, match=refused):
        new_plan(build_parser().parse_args(["run", *full]), full, REGISTRIES)
    assert not (tmp_path / "o").exists()


def speed_row(stable, half):
    return {"mode": "speed", "framework": "torch", "model": "lenet5", "device": "cpu", "phase": "forward",
            "status": "ok", "ms_median": 5.0, "images_per_sec": 25600.0, "ci_half_pct": half, "stable": stable,
            "batch_size": 128}


def test_the_table_marks_an_unstable_phase_and_says_what_the_mark_means():
    steady = comparison_table([speed_row(True, 0.6)])
    assert "5.0 ms ±0.6% (25600 img/s)" in steady and "unstable" not in steady
    shaky = comparison_table([speed_row(False, 3.2)])
    assert "5.0 ms ±3.2% ! (25600 img/s)" in shaky and "! unstable: the precision target was not met" in shaky
    old = comparison_table([speed_row(None, None)])   # a run from before adaptive sampling
    assert "5.0 ms (25600 img/s)" in old


def test_where_the_time_went():
    rows = [{"cell": "a", "mode": "speed", "timing_s": 10.0, "window_time_s": 5.0, "first_step_s": 1.0,
             "cell_wall_s": 20.0}, {"cell": "a", "mode": "speed", "timing_s": 2.0, "window_time_s": None,
                                    "first_step_s": 0.5, "cell_wall_s": 20.0}]
    spent = summary(rows, 25.0)
    assert spent == {"per_step_timing_s": 12.0, "pipelined_windows_s": 5.0, "compilation_s": 1.5,
                     "startup_imports_setup_s": 1.5, "cells_s": 20.0, "wall_s": 25.0, "other_s": 5.0}
    assert summary_line(spent).startswith("wall time 25s: per-step timing 12s (48%), pipelined windows 5s (20%)")


@pytest.mark.e2e
@needs("torch")
def test_a_speed_cell_samples_until_its_rule_stops_it(tmp_path):
    """The real worker: every phase stops by the rule (target or a 1-second budget), the rows say so, the samples file
    holds exactly the samples counted, the pipelined figure comes from the same series on the CPU, and the run says
    where its time went."""
    out = tmp_path / "out"
    proc = run_cli("run", "--mode", "speed", "--frameworks", "torch", "--models", "lenet5", "--batch-size", "8",
                   "--threads", "1", "--max-time", "1", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "each series sampled to +-1% (at least 20 samples, at most 1 s)" in proc.stdout
    assert "wall time " in proc.stdout and "per-step timing" in proc.stdout
    run_dir = next(out.iterdir())
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    samples = json.loads((run_dir / "cells" / "torch-lenet5-cpu" / "samples.json").read_text())
    assert [r["phase"] for r in rows] == ["forward", "forward_backward", "train_step"]
    for r in rows:
        assert r["sampling"] == "auto" and r["stop"] in ("target", "budget") and r["pipelined_from"] == "steps"
        assert int(r["steps"]) == len(samples[r["phase"]]) >= 3
        assert (r["stable"] == "True") == (r["stop"] == "target")
        if r["stop"] == "target":
            assert float(r["ci_half_pct"]) <= 1.0 and int(r["steps"]) >= 20
        else:
            assert "unstable" in r["note"]
        assert r["window_time_s"] == "" and float(r["timing_s"]) > 0 and float(r["cell_wall_s"]) > float(r["timing_s"])
    assert set(samples) == {"forward", "forward_backward", "train_step"}   # no windows: one series on the CPU
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["time_spent"]["per_step_timing_s"] == pytest.approx(sum(float(r["timing_s"]) for r in rows))


@pytest.mark.e2e
@needs("torch")
def test_a_budgeted_run_plans_each_cell(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", "--mode", "speed", "--frameworks", "torch", "--models", "lenet5,simple_cnn", "--batch-size",
                   "8", "--threads", "1", "--budget", "20s", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plans = [line for line in proc.stdout.splitlines() if line.startswith("[budget] cell")]
    assert [p.split(":")[0] for p in plans] == ["[budget] cell 1/2", "[budget] cell 2/2"]
    assert "[budget] 20s planned; " in proc.stdout
