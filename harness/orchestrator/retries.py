"""Retry policy beside the runner it wraps: a cell again at half the batch after out-of-memory (--oom-retry), and
a train cell that an earlier attempt left unfinished continued from its checkpoint (--resume)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from harness.frameworks import FrameworkSpec
from harness.hardware import telemetry
from harness.orchestrator.cells import run_cell
from harness.orchestrator.progress import Progress
from harness.results.records import Row, add_note, fill
from harness.settings import Cell
from harness.worker.protocol import checkpoint_meta, is_own_checkpoint


def run_with_retries(cell: Cell, spec: FrameworkSpec, cell_dir: Path, say: Callable[[str], None] = print,
                     watch: Callable[[str], Callable[[str], None]] = Progress) -> list[Row]:
    """Runs a cell in a worker; with --oom-retry, again (a new cell) at half the batch after each out-of-memory.
    ``watch(cell name)``, as each attempt starts: the handler of its worker's progress lines (the run's display)."""
    cell = cell.replace(checkpoint=str(cell_dir / "checkpoint.npz"))
    first_batch = cell.batch_size
    waited = None
    if cell.run.require_quiet:
        quiet, busy, seconds = telemetry.wait_for_quiet(cell.run.require_quiet)
        if not quiet:
            waited = (f"machine not quiet after waiting {seconds:.0f} s (--require-quiet): other processes used "
                      f"{100 * busy:.0f}% of the CPU when the cell started")
            say(f"[{cell.name}] {waited}")
    started = time.monotonic()
    while True:
        attempt, why = continuation(cell)
        say(f"[{cell.name}] start (batch {cell.batch_size})" + (f": {why}" if why else ""))
        rows = run_cell(attempt, spec, cell_dir, watch(cell.name))
        if why and attempt is cell:
            add_note(rows, why)
        for row in rows:
            say(f"[{cell.name}] {row['phase'] or ''} {row['status']}" + (f": {row['error']}" if row["error"] else ""))
        half = halved(cell)
        if not any(r["status"] == "oom" for r in rows) or not cell.run.oom_retry or half is None:
            break
        cell = cell.with_run(batch_size=half)
        say(f"[{cell.name}] out of memory: retrying with batch {cell.batch_size}")
    if cell.batch_size != first_batch:
        add_note(rows, f"batch halved from {first_batch} to {cell.batch_size} after out-of-memory (--oom-retry)")
    fill(rows, {"cell_wall_s": time.monotonic() - started})   # retries included: what the cell cost the run
    return add_note(rows, waited)


def halved(cell: Cell) -> int | None:
    """The next --oom-retry batch: half, rounded down to a multiple of the world size so that every rank of a
    data-parallel cell gets the same share of it (the recorded batch is the one trained); None below that."""
    world = max(1, cell.world_size)
    half = cell.batch_size // 2 // world * world
    return half if half >= world else None


def continuation(cell: Cell) -> tuple[Cell, str | None]:
    """A train cell whose checkpoint an earlier attempt of this same cell wrote continues from it (the worker
    loads it as ``resume_from`` and carries its epochs on); (the cell, what is done, or why it is not)."""
    path = Path(cell.checkpoint) if cell.checkpoint else None
    if cell.run.mode != "train" or path is None or not path.exists():
        return cell, None
    try:
        meta = checkpoint_meta(path)
    except (OSError, ValueError) as exc:
        return cell, f"its checkpoint {str(path)!r} is unreadable ({exc}): training restarts at epoch 1"
    if not is_own_checkpoint(meta, cell):
        return cell, (f"its checkpoint {str(path)!r} is not this cell's at batch {cell.batch_size} (it has "
                      f"{meta.get('cell')!r} at batch {meta.get('batch_size')}): training restarts at epoch 1")
    return cell.with_run(resume_from=str(path)), f"continuing after epoch {meta.get('epoch')} from its checkpoint"

