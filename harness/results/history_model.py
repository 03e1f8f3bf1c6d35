"""The data of ``convbench history``: every run under a folder, each cell's point in each run (its headline value
and the raw values the tests use), compared with the previous run that has the same cell ok and, with a pinned
baseline run, with that run; and each cell's change point over its whole series (changepoint.py).

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
from harness.results.changepoint import Split, adjust, best_split
from harness.results.runs import Run, load_run
from harness.results.significance import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    SAME,
    Comparison,
    compare_repeats,
    compare_samples,
    decide,
)
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
    vs_baseline: Comparison | None = None               # against the pinned baseline run's point of the cell
    baseline: Point | None = None

    @property
    def version(self) -> str:
        return ", ".join(dict.fromkeys(str(r.get("framework_version")) for r in self.rows)) or "-"


Cells = dict[tuple[Any, ...], list[Point]]   # cell key -> its points, in run order


@dataclass
class ChangePoint:
    """A cell's best split over its whole series: ``before`` is the last run of the earlier part, ``after`` the first
    of the later; q is the split's p after Benjamini-Hochberg across the cells tested."""
    label: str
    key: tuple[Any, ...]
    points: list[Point]          # the cell's points with values, oldest first
    split: Split
    q_value: float
    verdict: str
    overall: Comparison | None   # the latest point against the pinned baseline, or else against the cell's first run
    reference: Point             # the pinned baseline's point, or the cell's first

    @property
    def before(self) -> Point:
        return self.points[self.split.index - 1]

    @property
    def after(self) -> Point:
        return self.points[self.split.index]

    @property
    def latest(self) -> Point:
        return self.points[-1]


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


def baseline_label(root: str | Path, runs: Sequence[tuple[str, Run]], skipped: Sequence[str], given: str) -> str:
    """The label of the run ``given`` names: a label (its folder relative to ``root``), a run id, or a run folder
    under ``root``. ConvbenchError (one line) when it names none of them."""
    names = [label for label, _ in runs]
    if given in names:
        return given
    ids = [label for label, run in runs if run.name == given]
    if len(ids) > 1:
        raise ConvbenchError(f"baseline {given!r} is the run id of {len(ids)} runs ({', '.join(ids)}); give its folder")
    if ids:
        return ids[0]
    path, top = Path(given), Path(root).resolve()
    if not path.exists() and (top / given).exists():   # a folder named relative to root
        path = top / given
    if path.is_dir():
        found = [label for label, run in runs if run.path.resolve() == path.resolve()]
        if found:
            return found[0]
        if not (path / "results.csv").is_file():
            raise ConvbenchError(f"baseline {given!r} is not a convbench run (no results.csv)")
        if not path.resolve().is_relative_to(top):
            raise ConvbenchError(f"baseline {given!r} is not a run under {str(root)!r}")
        why = next((s for s in skipped if str(path.resolve()) in s or given in s), "it was skipped as unreadable")
        raise ConvbenchError(f"baseline {given!r} is not a readable run: {why}")
    if path.exists():
        raise ConvbenchError(f"baseline {given!r} is not a run folder")
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} runs)" if len(names) > 8 else "")
    raise ConvbenchError(f"baseline {given!r} is no run under {str(root)!r}; runs: {shown}")


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


def _compare(a: Point, b: Point, threshold: float, alpha: float) -> Comparison | None:
    """As compare: the raw samples when both points have them, else the rows' values (one per seed)."""
    if a.samples and b.samples:
        return compare_samples(a.values, b.values, threshold, alpha)
    if a.repeats and b.repeats:
        return compare_repeats(a.repeats, b.repeats, threshold, alpha)
    return None


def collect(runs: Sequence[tuple[str, Run]], models: Sequence[str] = (), frameworks: Sequence[str] = (),
            threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA, baseline: str | None = None) -> Cells:
    """cell key -> its points in run order, each compared with the previous point that has values and with the
    point of the run labelled ``baseline`` (when given and the cell is in it)."""
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
                point.previous = earlier[-1]
                point.comparison = _compare(point.previous, point, threshold, alpha)
            cells.setdefault(key, []).append(point)
    for points in cells.values():
        base = next((p for p in points if p.run == baseline and p.values), None)
        for p in points:
            p.baseline = base
            if base and p is not base and p.values:
                p.vs_baseline = _compare(base, p, threshold, alpha)
    return cells


def change_points(cells: Cells, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> list[ChangePoint]:
    """Every cell of three runs or more with a test: its best split (changepoint.best_split on the raw samples when
    every run of the cell has them, else on the per-seed values), q-values by Benjamini-Hochberg across these cells,
    and the verdict (q < alpha and |change| > threshold). Oldest change first."""
    names = labels(list(cells))
    found = []
    for key, points in cells.items():
        pts = [p for p in points if p.values]
        samples = all(p.samples for p in pts)
        if not samples and not all(p.repeats for p in pts):
            continue
        split = best_split([p.values if samples else p.repeats for p in pts], samples)
        if split:
            found.append((key, pts, split))
    result = []
    for (key, pts, split), q in zip(found, adjust([s.p_value for _, _, s in found])):
        reference = pts[0].baseline or pts[0]
        overall = pts[-1].vs_baseline if pts[0].baseline else _compare(pts[0], pts[-1], threshold, alpha)
        result.append(ChangePoint(names[key], key, pts, split, q, decide(split.comparison.ratio, q < alpha, threshold),
                                  overall if pts[-1] is not reference else None, reference))
    return sorted(result, key=lambda c: (c.after.started, c.after.run, c.label))


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

