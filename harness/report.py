"""The only module that builds DataFrames: results.csv and the terminal comparison table."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from harness.records import COLUMNS


def frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    extra = [c for r in rows for c in r if c not in COLUMNS]
    columns = list(COLUMNS) + list(dict.fromkeys(extra))
    return pd.DataFrame(list(rows), columns=columns)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Writes atomically: a temp file, then rename."""
    tmp = path.with_name(path.name + ".tmp")
    frame(rows).to_csv(tmp, index=False)
    os.replace(tmp, path)


def _cell_text(row: dict[str, Any]) -> str:
    if row["status"] != "ok":
        return row["status"]
    if row.get("phase") not in (None, "train") and row.get("ms_median") is not None:
        return f"{row['ms_median']:.1f} ms ({row['images_per_sec']:.0f} img/s)"
    acc, secs = row.get("test_accuracy"), row.get("train_time_s")
    parts = []
    if acc is not None and not pd.isna(acc):
        parts.append(f"{100 * acc:.2f}%")
    if secs is not None and not pd.isna(secs):
        parts.append(f"{secs:.1f}s")
    return " / ".join(parts) or "ok"


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """Models as rows, frameworks as columns, 'accuracy / train time' (or the status) in the cells."""
    if not rows:
        return "(no results)"
    speed = any(r.get("mode") == "speed" for r in rows)
    label = (lambda r: f"{r['model']} {r['phase'] or ''}".rstrip()) if speed else (lambda r: r["model"])
    models = list(dict.fromkeys(label(r) for r in rows))
    frameworks = list(dict.fromkeys(r["framework"] for r in rows))
    devices = list(dict.fromkeys(r["device"] for r in rows))
    table: dict[tuple[str, str], str] = {}
    for r in rows:
        col = r["framework"] if len(devices) == 1 else f"{r['framework']}@{r['device']}"
        table[(label(r), col)] = _cell_text(r)
    columns = list(dict.fromkeys(c for (_, c) in table)) if len(devices) > 1 else frameworks
    header = ["model", *columns]
    body = [[m, *(table.get((m, c), "-") for c in columns)] for m in models]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    def fmt(line: list[str]) -> str:
        return "  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    note = ("cells: median step time (images/s = batch / median)" if speed
            else "cells: test accuracy / training time (evaluation excluded)")
    return "\n".join([fmt(header), sep, *map(fmt, body), note])
