"""Data-parallel failures as the orchestrator records them, with fake rank workers (no process group, no GPU):
which rank ran out of memory, and the batches --oom-retry halves to."""
from __future__ import annotations

import argparse
from pathlib import Path

from helpers import REGISTRIES

from harness.commands.cli import build_parser
from harness.orchestrator import cells, retries
from harness.orchestrator.plan import Plan, prepare_cell, resolve_settings
from harness.orchestrator.probes import Probe
from harness.orchestrator.workers import WorkerResult
from harness.results.records import failure_row
from harness.worker.protocol import EXIT_EXCEPTION

CPU = [{"name": "cpu", "description": "x86"}]


def dp_cell(*argv: str):
    a: argparse.Namespace = build_parser().parse_args(["run", "--nproc", "2", *argv])
    plan = Plan("r", None, [], ["torch"], ["lenet5"], [0], resolve_settings(a, REGISTRIES))  # type: ignore[arg-type]
    cell, rows = prepare_cell("torch", "lenet5", 0, plan, Probe("torch", True, "", "2.13", CPU), REGISTRIES, 2)
    assert rows is None and cell.world_size == 2
    return cell


def test_an_oom_on_rank_1_is_recorded_oom(monkeypatch, tmp_path):
    """Rank 1 ran out of memory (its payload says so) and rank 0 died with the group: the row said `crashed`
    (rank 0's death), so --oom-retry never retried a data-parallel cell that an OOM on rank >= 1 stopped."""
    class FakeWorker:
        def __init__(self, job, env, log: Path, python=None, job_file=None):
            self.rank, self.log = job.rank, log

        def run(self, timeout, on_line, stall=None) -> WorkerResult:
            if self.rank == 1:
                return WorkerResult(EXIT_EXCEPTION, {"error": "OutOfMemoryError: CUDA out of memory", "kind": "exception",
                                                     "status_hint": "oom"}, self.log)
            return WorkerResult(-9, None, self.log)   # rank 0: killed when rank 1 failed

        def kill(self) -> None:
            pass
    monkeypatch.setattr(cells, "Worker", FakeWorker)
    rows = cells.run_process_group_cell(dp_cell("--batch-size", "64"), REGISTRIES.frameworks.get("torch"),
                                        tmp_path, lambda line: None, {"CUDA_VISIBLE_DEVICES": ""})
    assert [(r["status"], r["error"]) for r in rows] == [("oom", "rank 1: OutOfMemoryError: CUDA out of memory")]


def test_oom_retry_halves_to_batches_that_split_across_ranks(monkeypatch, tmp_path):
    """Halving 6 gave 3, which two ranks cannot split (each trained on 1: a global batch of 2 recorded as 3);
    the retry rounds down to a multiple of the world size and stops below it."""
    tried = []

    def fake_run_cell(cell, spec, cell_dir, on_line):
        tried.append(cell.batch_size)
        return [failure_row(cell, "oom", "out of memory")]
    monkeypatch.setattr(retries, "run_cell", fake_run_cell)
    cell = dp_cell("--batch-size", "6", "--oom-retry")
    rows = retries.run_with_retries(cell, REGISTRIES.frameworks.get("torch"), tmp_path, say=lambda line: None)
    assert tried == [6, 2] and rows[0]["status"] == "oom"
    assert "batch halved from 6 to 2" in rows[0]["note"]
