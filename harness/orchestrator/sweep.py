"""Sweeps: ``--batch-size 32,64,128`` (and comma lists for ``--precision``, ``--layout``, ``--compile``, ``--threads``)
run one cell per framework x model x seed x swept value, the convnet-benchmarks view of speed against batch size.

A swept value is part of the cell's name only when its option is swept (``torch-lenet5-cpu-b64``), so a run without
a sweep names its cells exactly as before and ``--resume`` finds them. Batch sizes run smallest first; when one runs
out of memory the larger batches of that framework x model (same seed and other settings) are not run: their row
says so, status ``oom``, error ``not run: batch 128 ran out of memory`` (``--resume`` tries them again).
"""
from __future__ import annotations

import itertools
from typing import Any

from harness.errors import ConvbenchError
from harness.results.records import Row, failure_row
from harness.settings import Cell

# the options that take a comma list, in the order their values appear in a cell's name
SWEEP_OPTIONS = ("precision", "layout", "compile", "threads", "batch_size")
Sweep = dict[str, list[Any]]


def split_sweep(given: dict[str, Any], oom_retry: bool = False) -> Sweep:
    """The swept options of the command line's ``given`` values: each option given as a list becomes its single
    value in ``given`` (a list of one) or, when it has several, a sweep axis (returned) and the run's setting in
    ``given``: the smallest batch, the most threads (the probes and the CPU peak use them), else the first value."""
    sweep: Sweep = {}
    for option in SWEEP_OPTIONS:
        values = given.get(option)
        if not isinstance(values, list):
            continue
        if len(values) > 1:
            sweep[option] = sorted(values) if option == "batch_size" else list(values)
        given[option] = max(values) if option == "threads" else sweep.get(option, values)[0]
    if "batch_size" in sweep and oom_retry:
        raise ConvbenchError("a --batch-size sweep finds the largest batch that fits by itself (the larger ones stop "
                             "after an out-of-memory); drop --oom-retry")
    return sweep


def combinations(sweep: Sweep) -> list[dict[str, Any]]:
    """Every combination of the swept values, batch sizes innermost and ascending ([{}] without a sweep)."""
    axes = [o for o in SWEEP_OPTIONS if o in sweep]
    return [dict(zip(axes, values)) for values in itertools.product(*(sweep[o] for o in axes))]


def name_suffix(values: dict[str, Any]) -> str:
    """The swept values in a cell's name: -b64 (batch), -fp16, -nhwc, -compile-xla, -t4 (threads); '' without."""
    parts = {"batch_size": "b{}", "precision": "{}", "layout": "{}", "compile": "compile-{}", "threads": "t{}"}
    return "".join("-" + parts[o].format(values[o]) for o in SWEEP_OPTIONS if o in values)


def describe(sweep: Sweep) -> str:
    """', sweeping batch 4,8 x precision fp32,bf16' for the run's first line ('' without a sweep)."""
    words = {"batch_size": "batch", "threads": "threads"}
    return (", sweeping " + " x ".join(f"{words.get(o, o)} {','.join(map(str, sweep[o]))}" for o in SWEEP_OPTIONS
                                       if o in sweep)) if sweep else ""


class SweepCutoff:
    """Ends a batch sweep upward: once a framework x model (same seed, world size and other settings) ran out of
    memory at one batch, its larger batches are not run. Cells reach it in the order they run (the local executor)."""

    def __init__(self) -> None:
        self.ran_out: dict[tuple[Any, ...], int] = {}

    @staticmethod
    def key(cell: Cell) -> tuple[Any, ...]:
        r = cell.run
        return cell.framework, cell.model, cell.device.name, r.seed, r.world_size, r.precision, r.layout, r.compile, r.threads

    def skip(self, cell: Cell) -> list[Row] | None:
        """The row of a cell not run because a smaller batch of its sweep ran out of memory, or None: run it."""
        smaller = self.ran_out.get(self.key(cell))
        if smaller is None or cell.batch_size <= smaller:
            return None
        return [failure_row(cell, "oom", f"not run: batch {smaller} ran out of memory")]

    def saw(self, cell: Cell, rows: list[Row]) -> None:
        """A cell's rows: an out-of-memory (of its own, not a skip) marks its batch as the sweep's end."""
        if any(r["status"] == "oom" and not str(r.get("error") or "").startswith("not run:") for r in rows):
            key = self.key(cell)
            self.ran_out[key] = min(cell.batch_size, self.ran_out.get(key, cell.batch_size))
