"""Retry policy beside the runner it wraps: a cell again at half the batch after out-of-memory (--oom-retry)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness.frameworks import FrameworkSpec
from harness.hardware import telemetry
from harness.orchestrator.cells import run_cell
from harness.orchestrator.progress import Progress
from harness.results.records import Row, add_note
from harness.settings import Cell


def run_with_retries(cell: Cell, spec: FrameworkSpec, cell_dir: Path, say: Callable[[str], None] = print) -> list[Row]:
    """Runs a cell in a worker; with --oom-retry, again (a new cell) at half the batch after each out-of-memory."""
    cell = cell.replace(checkpoint=str(cell_dir / "checkpoint.npz"))
    first_batch = cell.batch_size
    waited = None
    if cell.run.require_quiet:
        quiet, busy, seconds = telemetry.wait_for_quiet(cell.run.require_quiet)
        if not quiet:
            waited = (f"machine not quiet after waiting {seconds:.0f} s (--require-quiet): other processes used "
                      f"{100 * busy:.0f}% of the CPU when the cell started")
            say(f"[{cell.name}] {waited}")
    while True:
        say(f"[{cell.name}] start (batch {cell.batch_size})")
        rows = run_cell(cell, spec, cell_dir, Progress(cell.name))
        for row in rows:
            say(f"[{cell.name}] {row['phase'] or ''} {row['status']}" + (f": {row['error']}" if row["error"] else ""))
        if not any(r["status"] == "oom" for r in rows) or not cell.run.oom_retry or cell.batch_size == 1:
            break
        cell = cell.with_run(batch_size=cell.batch_size // 2)
        say(f"[{cell.name}] out of memory: retrying with batch {cell.batch_size}")
    if cell.batch_size != first_batch:
        add_note(rows, f"batch halved from {first_batch} to {cell.batch_size} after out-of-memory (--oom-retry)")
    return add_note(rows, waited)
