"""``--budget``: a speed run's wall time, planned cell by cell so that the run ends in time.

Before each cell the time left is shared equally among the cells left; from a cell's share the expected
overhead (worker start-up, imports, data and model, each phase's first compiling step: measured on the cells
done so far, a first guess before any) is taken off and the rest split among its series (three phases, each a
per-step series and, on a GPU, a pipelined one). Inside a cell the series pool their time (the worker's
``Allowance``): a phase that meets its precision target early leaves its time to the noisier ones after it, and a
cell that finishes early leaves its time to the cells after it, so the samples go where the intervals are widest.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from harness.results.records import Row
from harness.settings import Cell

FIRST_GUESS_OVERHEAD_S = 20.0   # a cell's time outside its series before any cell has been measured
MIN_SERIES_S = 1.0              # a series' share when the budget is spent (it still keeps its minimum samples)


def clock_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


@dataclass
class Budget:
    seconds: float
    cells: int                      # cells to run
    series_per_cell: int
    started: float                  # clock() when the run started (the budget counts from there)
    clock: Callable[[], float] = time.monotonic
    say: Callable[[str], None] = print
    overheads: list[float] = field(default_factory=list)
    done: int = 0

    def left(self) -> float:
        return self.seconds - (self.clock() - self.started)

    def overhead(self) -> float:
        return sum(self.overheads) / len(self.overheads) if self.overheads else FIRST_GUESS_OVERHEAD_S

    def plan(self, cell: Cell) -> Cell:
        """The cell with its planned ``max_time`` per series; says the plan and the estimate left."""
        left, cells_left = self.left(), max(1, self.cells - self.done)
        per_cell = left / cells_left
        per_series = max(MIN_SERIES_S, (per_cell - self.overhead()) / self.series_per_cell)
        spent = " (the budget is spent: each series keeps its minimum samples)" if per_series == MIN_SERIES_S else ""
        self.say(f"[budget] cell {self.done + 1}/{self.cells}: {clock_text(left)} of {clock_text(self.seconds)} "
                 f"left, {clock_text(per_cell)} per cell: {per_series:.1f} s per series x {self.series_per_cell} after "
                 f"~{self.overhead():.0f} s of start-up and compilation{spent}")
        return cell.with_run(max_time=per_series)

    def finished(self, rows: list[Row]) -> None:
        """A cell's rows: its overhead (wall time outside its series) is measured for the next plans."""
        self.done += 1
        wall = next((r.get("cell_wall_s") for r in rows if r.get("cell_wall_s") is not None), None)
        if wall is None:
            return
        series = sum((r.get("timing_s") or 0.0) + (r.get("window_time_s") or 0.0) for r in rows)
        self.overheads.append(max(0.0, wall - series))
        if self.done == self.cells:
            over = -self.left()
            self.say(f"[budget] {clock_text(self.seconds)} planned; "
                     + (f"ran over by {clock_text(over)}" if over > 0 else f"{clock_text(-over)} to spare"))


def summary(rows: list[Row], wall_s: float | None) -> dict[str, Any]:
    """Where a speed run's wall time went: the per-step series, the pipelined windows, the first (compiling)
    steps, and the rest of the cells' time (worker start-up, imports, data, model), in seconds; ``other``: the
    run's time outside its cells (probes, the CPU peak, the journal), when its wall time is known."""
    cells: dict[str, float] = {}
    timing = windows = compiling = 0.0
    for row in rows:
        timing += row.get("timing_s") or 0.0
        windows += row.get("window_time_s") or 0.0
        compiling += (row.get("first_step_s") or 0.0) if row.get("mode") == "speed" else 0.0
        if row.get("cell_wall_s") is not None:
            cells[row["cell"]] = row["cell_wall_s"]
    in_cells = sum(cells.values())
    out = {"per_step_timing_s": timing, "pipelined_windows_s": windows, "compilation_s": compiling,
           "startup_imports_setup_s": max(0.0, in_cells - timing - windows - compiling), "cells_s": in_cells}
    if wall_s is not None:
        out.update(wall_s=wall_s, other_s=max(0.0, wall_s - in_cells))
    return out


def summary_line(spent: dict[str, Any]) -> str:
    parts = [("per-step timing", spent["per_step_timing_s"]), ("pipelined windows", spent["pipelined_windows_s"]),
             ("compilation (first steps)", spent["compilation_s"]),
             ("worker start-up, imports, data, model", spent["startup_imports_setup_s"])]
    if "other_s" in spent:
        parts.append(("probes and the rest", spent["other_s"]))
    total = spent.get("wall_s") or sum(v for _, v in parts)
    return (f"wall time {clock_text(total)}: " + ", ".join(f"{what} {clock_text(v)} ({100 * v / total:.0f}%)"
                                                           for what, v in parts if total > 0))
