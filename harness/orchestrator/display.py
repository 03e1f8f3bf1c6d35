"""The run's progress over its whole matrix: cells done of total, time elapsed, an ETA, and what each running cell
does now.

On a terminal (``live_terminal``) it is a live display drawn by rich (``harness.orchestrator.live``): a bar for the
matrix, a line per running cell, and the run's usual lines printed above them, so the log stays whole. Elsewhere
(output to a file or a pipe, ``NO_COLOR`` set, ``TERM=dumb``) the run prints its usual lines and, after each cell
that ran, one more: ``[progress] 3/8 cells done, 2m10s elapsed, eta 4m05s``.

The ETA comes from the cells finished in this attempt (``Estimate``): a cell left is expected to take as long as the
mean of the finished cells of its model (its cost is mostly its model's), else of every finished cell; the cells
left add up, less what the running cell has already run (local executor), and the sum is divided by the run's
measured parallelism (the finished cells' seconds over the wall time they took: about 1 for the local executor,
the number of cells at once under Ray). Before any cell has finished there is none.
"""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, TextIO

from harness.orchestrator.budget import clock_text
from harness.orchestrator.progress import Progress


def live_terminal(stream: TextIO, env: Mapping[str, str]) -> bool:
    """True when the run draws its live display: its output is a terminal, and neither NO_COLOR (any value but
    empty, no-color.org) nor TERM=dumb asks for plain text."""
    return stream.isatty() and not env.get("NO_COLOR") and env.get("TERM", "") not in ("dumb", "unknown")


@dataclass
class Estimate:
    """The seconds a run's cells left will take, from the cells finished so far."""
    walls: dict[str, list[float]] = field(default_factory=dict)   # model -> its finished cells' seconds

    def add(self, model: str, seconds: float) -> None:
        self.walls.setdefault(model, []).append(seconds)

    def expected(self, model: str) -> float | None:
        """A cell's expected seconds: the mean of its model's finished cells, else of every finished cell."""
        pool = self.walls.get(model) or [s for v in self.walls.values() for s in v]
        return statistics.fmean(pool) if pool else None

    def left(self, waiting: Iterable[str], running: Iterable[tuple[str, float]], span_s: float) -> float | None:
        """Seconds until the cells of ``waiting`` (their models) and ``running`` ((model, seconds it has run)) are
        done, the finished cells having taken ``span_s`` of wall time; None before any cell has finished."""
        work = 0.0
        for model, ran in [*((m, 0.0) for m in waiting), *running]:
            expected = self.expected(model)
            if expected is None:
                return None
            work += max(0.0, expected - ran)
        measured = sum(s for v in self.walls.values() for s in v)
        parallel = measured / span_s if span_s > 0 and measured > 0 else 1.0
        return work / parallel


def cell_seconds(rows: list[dict[str, Any]]) -> float | None:
    """What a cell cost the run, retries included (its rows' ``cell_wall_s``; a Ray cell's as its node measured)."""
    return next((r["cell_wall_s"] for r in rows if r.get("cell_wall_s") is not None), None)


class Matrix:
    """The plain form, and the bookkeeping both forms share. Every cell of the matrix is ``add``-ed (those kept from
    an earlier attempt, or recorded without a worker, as done), then, inside ``with``, each cell that runs is
    ``watch``-ed as it starts (local executor) and ``finished`` with its rows."""

    def __init__(self, started: float, clock: Callable[[], float] = time.monotonic,
                 say: Callable[[str], None] = print) -> None:
        self.started, self.clock, self.say = started, clock, say
        self.total = self.done = 0
        self.left: dict[str, str] = {}          # cell -> model, each cell not finished
        self.running: dict[str, float] = {}     # cell -> when it started (local executor)
        self.estimate = Estimate()
        self.first: float | None = None         # when the cells started running (the parallelism's span)
        self.last: float | None = None          # when the last one finished
        self.lock = threading.Lock()            # the worker's lines come from a reader thread

    def add(self, name: str, model: str, finished: bool = False) -> None:
        self.total += 1
        if finished:
            self.done += 1
        else:
            self.left[name] = model

    def __enter__(self) -> Matrix:
        self.first = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def watch(self, name: str) -> Callable[[str], None]:
        """A cell starts (each attempt of it): the handler of its worker's lines."""
        with self.lock:
            self.running.setdefault(name, self.clock())
        return Progress(name)

    def finished(self, name: str, rows: list[dict[str, Any]]) -> None:
        self._finish(name, rows)
        self.say(self.line())

    def _finish(self, name: str, rows: list[dict[str, Any]]) -> None:
        with self.lock:
            now = self.clock()
            model, began = self.left.pop(name, None), self.running.pop(name, None)
            seconds = cell_seconds(rows)
            if seconds is None and began is not None:
                seconds = now - began
            if model is not None and seconds is not None:
                self.estimate.add(model, seconds)
            self.done, self.last = self.done + 1, now

    def eta(self) -> float | None:
        """Seconds until every cell is done (see the module's doc), None while there is no estimate."""
        with self.lock:
            if not self.left:
                return 0.0
            now = self.clock()
            span = self.last - self.first if self.last is not None and self.first is not None else 0.0
            waiting = [m for n, m in self.left.items() if n not in self.running]
            running = [(self.left[n], now - t) for n, t in self.running.items() if n in self.left]
            return self.estimate.left(waiting, running, span)

    def summary(self, elapsed: bool = True) -> str:
        """``3/8 cells done, 2m10s elapsed, eta 4m05s`` (no eta when all are done or none has finished yet)."""
        eta = self.eta() if self.done < self.total else None
        return (f"{self.done}/{self.total} cells done"
                + (f", {clock_text(self.clock() - self.started)} elapsed" if elapsed else "")
                + (f", eta {clock_text(eta)}" if eta is not None else ""))

    def line(self) -> str:
        return f"[progress] {self.summary()}"
