"""The run's live display on a terminal, drawn by rich: one bar for the matrix (cells done of total, time elapsed,
the ETA of ``harness.orchestrator.display``), under it one line per running cell (its epoch and step with a bar of
its training, or its speed-mode phase and the steps it has timed), and above them every line the run prints
(rich's Live takes over stdout while it runs, so the log stays whole). Imported only when the display is drawn."""
from __future__ import annotations

import sys
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from harness.orchestrator import progress
from harness.orchestrator.display import Matrix

MATRIX = "cells"


class StatusColumn(ProgressColumn):
    """The matrix's count and ETA (computed as it is drawn, so it counts down between events); a cell's status."""

    def __init__(self, matrix: LiveMatrix) -> None:
        super().__init__(table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))
        self.matrix = matrix

    def render(self, task: Task) -> Text:
        if task.description != MATRIX:
            return Text(str(task.fields.get("status", "")))
        return Text(self.matrix.summary(elapsed=False))   # the elapsed time is the column before


class LiveMatrix(Matrix):
    def __init__(self, started: float, local: bool, console: Console | None = None) -> None:
        # soft wrap: a long line printed above the display stays one line (the terminal wraps it), as without it
        console = console or Console(soft_wrap=True)
        super().__init__(started)
        self.local = local
        # stderr joins the display only when it is the terminal too; redirected elsewhere it stays there
        self.bars = Progress(TextColumn("{task.description}", table_column=Column(no_wrap=True)), BarColumn(bar_width=20),
                             TimeElapsedColumn(), StatusColumn(self), console=console, refresh_per_second=4,
                             redirect_stderr=sys.stderr.isatty(), expand=True)
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveMatrix:
        super().__enter__()
        self.matrix = self.bars.add_task(MATRIX, total=max(self.total, 1), completed=self.done)
        if not self.local:   # Ray: the driver sees no steps; each cell not finished is in flight on the cluster
            for name in self.left:
                self.tasks[name] = self.bars.add_task(f"  {name}", total=None, status="submitted to ray")
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def watch(self, name: str) -> Callable[[str], None]:
        super().watch(name)
        if name not in self.tasks:
            self.tasks[name] = self.bars.add_task(f"  {name}", total=None, status="starting")
        task = self.tasks[name]

        def status(text: str, done: float | None) -> None:
            fields: dict[str, Any] = {} if done is None else {"total": 1.0, "completed": done}   # else: it pulses
            self.bars.update(task, status=text, **fields)
        return progress.Progress(name, status=status)

    def finished(self, name: str, rows: list[dict[str, Any]]) -> None:
        self._finish(name, rows)
        if name in self.tasks:
            self.bars.remove_task(self.tasks.pop(name))
        self.bars.update(self.matrix, completed=self.done)
