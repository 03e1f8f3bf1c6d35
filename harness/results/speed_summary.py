"""A run's speed cells summarised for the reports (report.md and report.html): the median step time with its CI
and images/s per model, phase and framework column, over all the run's rows or per batch size."""
from __future__ import annotations

import statistics
from typing import Callable, Sequence

from harness.results.runs import Run
from harness.results.stats import sample_stats
from harness.results.table import SWEEP_COLUMNS, Row, column, group, model_labels, number, ok_rows, unstable

SpeedStats = dict[tuple[str, str, str], dict[str, float]]   # (model, phase, column) -> median, lo, hi, n, img_s, unstable
ByBatch = dict[int | None, SpeedStats]                      # batch size -> the speed stats at that batch size


def speed_labels(rows: Sequence[Row]) -> Callable[[Row], str]:
    """A speed row's model as the reports key it: the model and the settings other than the batch that a sweep
    varied ('lenet5 fp16'; batches are apart in ``speed_by_batch``)."""
    return model_labels(rows, [c for c in SWEEP_COLUMNS if c != "batch_size"])


def speed_stats(run: Run) -> SpeedStats:
    """(model, phase, column) -> median / ci_low / ci_high (ms), images/s, n: raw samples pooled over seeds."""
    speed = [r for r in run.rows if r["mode"] == "speed"]
    out = {}
    label = speed_labels(speed)
    for (model, phase, col), rows in group(speed, lambda r: (label(r), r["phase"], column(r, speed))).items():
        ok = ok_rows(rows)
        if not ok:
            continue
        pooled = [s for r in ok for s in run.samples.get(r["cell"], {}).get(phase, [])]
        if pooled:
            s = sample_stats(pooled)
            med, lo, hi, n = 1e3 * s.median, 1e3 * s.ci_low, 1e3 * s.ci_high, s.n
        else:
            med = statistics.fmean(r["ms_median"] for r in ok)
            lo = min(r.get("ms_ci_low") or med for r in ok)
            hi = max(r.get("ms_ci_high") or med for r in ok)
            n = sum(int(r.get("steps") or 0) for r in ok)
        batch = ok[0].get("batch_size") or 0
        out[(model, phase, col)] = {"median": med, "lo": lo, "hi": hi, "n": n, "img_s": 1e3 * batch / med,
                                    "unstable": unstable(ok)}
    return out


def _subset(run: Run, rows: Sequence[Row]) -> Run:
    return Run(run.path, list(rows), run.meta, run.histories, run.samples, run.schema_version)


def speed_by_batch(run: Run) -> ByBatch:
    """batch size -> speed_stats of the run's speed rows at that batch size."""
    speed = [r for r in run.rows if r["mode"] == "speed"]
    batches = group(speed, lambda r: int(r["batch_size"]) if number(r.get("batch_size")) else None)
    return {b: stats for b, rows in batches.items() if (stats := speed_stats(_subset(run, rows)))}
