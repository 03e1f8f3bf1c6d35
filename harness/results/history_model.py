"""The data of ``convbench history``: every run under a folder, each cell's point in each run (its headline value
and the raw values the tests use), compared with the previous run that has the same cell ok.

Runs are ordered by meta.json's ``started``. Cells match on cells.MATCH_KEYS (framework versions may differ between
the runs) and are judged on cells.metric, with ``convbench compare``'s tests and defaults (significance.py).
"""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from harness.errors import ConvbenchError
from harness.results.cells import SECONDARY, cell_key, column_values, key_dict, metric, step_samples
from harness.results.runs import Run, load_run
from harness.results.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD, SAME, Comparison, compare_repeats, compare_samples
from harness.results.stats import sample_stats
from harness.results.table import Row, fmt, group, ok_rows


@dataclass
class Point:
    """One cell (MATCH_KEYS) in one run: its headline value and the raw values the tests use."""
    run: str
    started: dt.datetime
    key: tuple[Any, ...]
    rows: list[Row]
    metric: str = ""
    values: list[float] = field(default_factory=list)   # ms per step (speed, raw samples) or s per seed (train)
    samples: bool = False                                 # values are raw per-step samples
    repeats: list[float] = field(default_factory=list)  # one value per row (seed): CSV medians (speed) or seconds
    value: float | None = None
    low: float | None = None
    high: float | None = None
    accuracy: float | None = None
    comparison: Comparison | None = None
    previous: Point | None = None

    @property
    def version(self) -> str:
        return ", ".join(dict.fromkeys(str(r.get("framework_version")) for r in self.rows)) or "-"


Cells = dict[tuple[Any, ...], list[Point]]   # cell key -> its points, in run order


def run_started(run: Run) -> dt.datetime:
    """meta.json's start as naive UTC; the results file's time when meta.json has none."""
    text = run.meta.get("started")
    try:
        when = dt.datetime.fromisoformat(str(text))
    except ValueError:
        when = dt.datetime.fromtimestamp((run.path / "results.csv").stat().st_mtime, dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def find_runs(root: str | Path) -> tuple[list[tuple[str, Run]], list[str]]:
    """(label, run) for every folder under ``root`` with a results.csv, oldest first, and the folders skipped. A
    results.csv inside a run folder is a copy (``export --to mlflow`` puts one among each MLflow run's artifacts),
    not another run."""
    path = Path(root)
    if not path.exists():
        raise ConvbenchError(f"results directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise ConvbenchError(f"{str(path)!r} is not a folder")
    runs, skipped = [], []
    found = sorted(path.rglob("results.csv"))
    folders = {csv.parent for csv in found}
    for csv in found:
        if any(parent in folders for parent in csv.parent.parents):
            continue   # a copy inside a run folder (an MLflow export's artifacts), not a run: a run holds no other
        try:
            run = load_run(csv.parent)
        except ConvbenchError as exc:
            skipped.append(str(exc))
            continue
        rel = csv.parent.relative_to(path).as_posix()
        runs.append((run.name if rel == "." else rel, run))
    if not runs and skipped:
        raise ConvbenchError(f"no readable convbench run under {str(path)!r}; {len(skipped)} skipped, the first: {skipped[0]}")
    if not runs:
        raise ConvbenchError(f"no convbench runs under {str(path)!r} (no folder with a readable results.csv)")
    runs.sort(key=lambda lr: (run_started(lr[1]), lr[0]))
    return runs, skipped


def _measure(point: Point, run: Run) -> None:
    """Fills the point's metric, raw values and headline value from its ok rows."""
    ok = ok_rows(point.rows)
    if not ok:
        return
    point.metric, column = metric(ok[0])
    if ok[0]["mode"] == "speed":
        samples = step_samples(run, ok)
        point.repeats = column_values(ok, column)
        if samples:
            s = sample_stats(samples)
            point.values, point.samples, point.value, point.low, point.high = samples, True, s.median, s.ci_low, s.ci_high
        else:
            point.values = point.repeats
    else:
        point.values = point.repeats = column_values(ok, column)
        accs = column_values(ok, "test_accuracy")
        point.accuracy = statistics.fmean(accs) if accs else None
    if point.values and point.value is None:
        point.value = statistics.fmean(point.values)
        sd = statistics.stdev(point.values) if len(point.values) > 1 else 0.0
        point.low, point.high = point.value - sd, point.value + sd


def collect(runs: Sequence[tuple[str, Run]], models: Sequence[str] = (), frameworks: Sequence[str] = (),
            threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> Cells:
    """cell key -> its points in run order, each compared with the previous point that has values."""
    rows = [r for _, run in runs for r in run.rows]
    for kind, names in (("model", models), ("framework", frameworks)):
        known = sorted({str(r[kind]) for r in rows})
        if unknown := [n for n in names if n not in known]:
            raise ConvbenchError(f"unknown {kind} {unknown[0]!r} in these runs; known: {', '.join(known) or '-'}")
    cells: Cells = {}
    for label, run in runs:
        when = run_started(run)
        chosen = [r for r in run.rows if (not models or r["model"] in models) and
                  (not frameworks or r["framework"] in frameworks) and (r["mode"] == "train" or r.get("phase"))]
        for key, rows in group(chosen, cell_key).items():
            point = Point(label, when, key, rows)
            _measure(point, run)
            earlier = [p for p in cells.get(key, []) if p.values]
            if point.values and earlier:
                prev = point.previous = earlier[-1]
                if prev.samples and point.samples:   # as compare: raw samples on both sides, else the rows' values
                    point.comparison = compare_samples(prev.values, point.values, threshold, alpha)
                elif prev.repeats and point.repeats:
                    point.comparison = compare_repeats(prev.repeats, point.repeats, threshold, alpha)
            cells.setdefault(key, []).append(point)
    return cells


def labels(keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], str]:
    """'framework model device phase' plus the secondary keys that differ between cells of the same mode."""
    dicts = {k: key_dict(k) for k in keys}
    varying = {mode: [n for n in SECONDARY if len({d[n] for d in dicts.values() if d["mode"] == mode}) > 1]
               for mode in {d["mode"] for d in dicts.values()}}
    return {k: f"{d['framework']} {d['model']} {d['device']} {d['phase'] or d['mode']}"
            + ("".join(f", {n} {fmt(d[n])}" for n in varying[d["mode"]] if d[n] is not None)) for k, d in dicts.items()}


def changes(cells: Cells) -> list[tuple[str, Point]]:
    """(cell label, point) for every point whose comparison says faster or slower, oldest first."""
    names = labels(list(cells))
    found = [(names[k], p) for k, points in cells.items() for p in points
             if p.comparison and p.comparison.verdict != SAME]
    return sorted(found, key=lambda lp: (lp[1].started, lp[1].run, lp[0]))

