"""Rendering result rows as text: the one way a cell is written (terminal table, report.md, compare).

Pure formatting over row dicts (no files, no DataFrames).
"""
from __future__ import annotations

import math
import numbers
import statistics
from typing import Any, Callable, Iterable, Sequence

from harness.hardware.telemetry import BUSY_THRESHOLD

Row = dict[str, Any]


def number(value: Any) -> bool:
    """True for a real number (not None, not NaN)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def busy(rows: Iterable[Row]) -> float | None:
    """The largest share of the machine's CPU that other processes used while these rows were measured, when it
    is over the quiet threshold (the rows were not taken on a quiet machine); None otherwise."""
    shares = [r["host_busy_fraction"] for r in rows if number(r.get("host_busy_fraction"))]
    worst = max(shares, default=None)
    return worst if worst is not None and worst > BUSY_THRESHOLD else None


def fmt(value: Any) -> str:
    """A setting's value for a table: numbers without float noise, None as '-'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def mean_std(values: Sequence[float], fmt: Callable[[float], str], unit: str = "") -> str:
    """'12.3 s' for one value, '12.3 ± 0.4 s' (mean ± sample std) for several."""
    if len(values) == 1:
        return fmt(values[0]) + unit
    return f"{fmt(statistics.fmean(values))} ± {fmt(statistics.stdev(values))}{unit}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(round(seconds % 60)):02d} s"
    return f"{int(seconds // 3600)} h {int(round(seconds % 3600 / 60)):02d} min"


def statuses(rows: Iterable[Row]) -> str:
    """The rows' statuses, each once: 'crashed', 'oom/timeout'; a sweep's batch not run after a smaller one ran out
    of memory is 'oom (not run)'."""
    return "/".join(dict.fromkeys(r["status"] + (" (not run)" if str(r.get("error") or "").startswith("not run:") else "")
                                  for r in rows))


def ok_rows(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r["status"] == "ok"]


def group(rows: Sequence[Row], key: Callable[[Row], Any]) -> dict[Any, list[Row]]:
    out: dict[Any, list[Row]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def column(row: Row, rows: Sequence[Row]) -> str:
    """A table column: the framework, or framework@device when the rows span several devices."""
    several = len({r.get("device") for r in rows}) > 1
    return f"{row['framework']}@{row['device']}" if several else str(row["framework"])


# the settings a sweep varies (convbench run --batch-size 32,64, ...), as the rows recorded them (what ran)
SWEEP_COLUMNS = ("batch_size", "precision", "layout", "compile", "threads")


def swept_columns(rows: Sequence[Row], only: Sequence[str] = SWEEP_COLUMNS) -> list[str]:
    """The settings that differ between rows of one framework x model (same phase, device, seed and world size):
    those a sweep varied. A run without a sweep has none (an --oom-retry's halved batch is one row of its own)."""
    same = group(rows, lambda r: (r.get("framework"), r.get("model"), r.get("phase"), r.get("device"), r.get("seed"),
                                  r.get("world_size")))
    return [c for c in only if any(len({fmt(r.get(c)) for r in g}) > 1 for g in same.values())]


def sweep_label(row: Row, swept: Sequence[str]) -> str:
    """A row's swept settings in words: 'batch 64', 'fp16 nhwc', 'compile xla', 'threads 4' ('' for none)."""
    words = {"batch_size": "batch {}", "compile": "compile {}", "threads": "threads {}"}
    return " ".join(words.get(c, "{}").format(fmt(row.get(c))) for c in swept)


def model_labels(rows: Sequence[Row], only: Sequence[str] = SWEEP_COLUMNS) -> Callable[[Row], str]:
    """A row's model as tables and figures key it: the model, then its values of the settings a sweep varied
    (``swept_columns`` of ``only``): 'lenet5 batch 64', so a sweep's cells are never pooled as if they were seeds."""
    swept = swept_columns(rows, only)
    return lambda r: " ".join(filter(None, (str(r["model"]), sweep_label(r, swept))))


def train_text(rows: list[Row]) -> str:
    """One train-mode cell from the rows of one (model, framework), several rows being seeds:
    'accuracy / training time [/ target in time (k/n reached)] (n=seeds)[, k failed]'."""
    ok = ok_rows(rows)
    if not ok:
        return statuses(rows)
    accs = [100 * r["test_accuracy"] for r in ok if number(r.get("test_accuracy"))]
    secs = [r["train_time_s"] for r in ok if number(r.get("train_time_s"))]
    parts = [mean_std(accs, lambda v: f"{v:.2f}", "%") if accs else "-",
             mean_std(secs, lambda v: f"{v:.1f}", " s") if secs else "-"]
    if number(ok[0].get("target")):
        ttt = [r["time_to_target_s"] for r in ok if number(r.get("time_to_target_s"))]
        parts.append(f"{100 * ok[0]['target']:g}% in " + (mean_std(ttt, lambda v: f"{v:.1f}", " s") if ttt else "-")
                     + f" ({len(ttt)}/{len(ok)} reached)")
    text = " / ".join(parts) + (f" (n={len(ok)})" if len(ok) > 1 else "")
    return text + (f", {len(rows) - len(ok)} failed" if len(rows) > len(ok) else "")


def speed_text(rows: list[Row]) -> str:
    """One speed-mode cell (one phase): median step time and images/s, or the status."""
    ok = ok_rows(rows)
    if not ok:
        return statuses(rows)
    first = ok[0]
    half = f" ±{first['ci_half_pct']:.1f}%" if number(first.get("ci_half_pct")) else ""
    return f"{first['ms_median']:.1f} ms{half}{' !' if unstable(ok) else ''} ({first['images_per_sec']:.0f} img/s)"


def unstable(rows: Iterable[Row]) -> bool:
    """Some speed row missed its precision target or drifted (``stable`` False; empty in runs from before it)."""
    return any(r.get("stable") is False for r in rows)


def markdown_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str("-" if v is None else v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in body]
    return "\n".join(lines)


def text_table(header: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed line under the header."""
    lines = [list(map(str, header)), *[list(map(str, row)) for row in body]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def padded(line: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip()
    return "\n".join([padded(lines[0]), "  ".join("-" * w for w in widths), *map(padded, lines[1:])])


def comparison_table(rows: Sequence[Row]) -> str:
    """The articles' table: models as rows, frameworks as columns, 'accuracy / train time' (or the status)."""
    if not rows:
        return "(no results)"
    speed = any(r.get("mode") == "speed" for r in rows)
    swept = swept_columns(rows)

    def label(r: Row) -> str:
        world = r.get("world_size")
        dp = f" x{int(world)} data-parallel" if number(world) and int(world) > 1 else ""
        phase = f" {r['phase']}" if speed and r["phase"] else ""
        return f"{r['model']}{dp}{phase}" + (f" {sweep_label(r, swept)}" if swept else "")
    cells = group(rows, lambda r: (label(r), column(r, rows)))
    # a sweep's lines: each model's phases together, the swept values in the order they ran (batches ascending)
    order = list(dict.fromkeys((r["model"], r["phase"] if speed else None) for r in rows))
    first = {label(r): order.index((r["model"], r["phase"] if speed else None)) for r in reversed(rows)}
    models = sorted(dict.fromkeys(label(r) for r in rows), key=first.__getitem__)
    columns = list(dict.fromkeys(column(r, rows) for r in rows))
    render = speed_text if speed else train_text

    def batches(m: str) -> dict[str, Any]:
        """Each column's batch on line ``m`` when they differ (--oom-retry halved one): a cell then shows its own."""
        found = {c: cells[(m, c)][0].get("batch_size") for c in columns if (m, c) in cells}
        return found if len(set(found.values())) > 1 else {}

    def text(m: str, c: str, shown: dict[str, Any]) -> str:
        if (m, c) not in cells:
            return "-"
        return render(cells[(m, c)]) + (f" [batch {fmt(shown[c])}]" if c in shown else "")
    body = [[m, *(text(m, c, shown) for c in columns)] for m in models for shown in [batches(m)]]
    note = ("cells: median step time ± its 95% interval (images/s = batch / median)" if speed
            else "cells: test accuracy / training time (evaluation excluded); mean ± std over seeds")
    if swept:
        note += f"\nsweep: one line per {', '.join(c.replace('_', ' ') for c in swept)} (as each row ran)"
    if speed and unstable(rows):
        note += "\n! unstable: the precision target was not met, or the steps drifted (the row's note says which)"
    return text_table(["model", *columns], body) + "\n" + note
