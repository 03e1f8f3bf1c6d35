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


def _mean_std(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{fmt.format(mean)}+/-{fmt.format(std)}"


def _cell_text(rows: list[dict[str, Any]]) -> str:
    """One table cell from the rows of one (model, framework): several rows are seeds."""
    bad = [r["status"] for r in rows if r["status"] != "ok"]
    if bad:
        return bad[0] if len(rows) == 1 else f"{len(bad)}/{len(rows)} {bad[0]}"
    first = rows[0]
    if first.get("phase") not in (None, "train") and first.get("ms_median") is not None:
        return f"{first['ms_median']:.1f} ms ({first['images_per_sec']:.0f} img/s)"
    acc = [100 * r["test_accuracy"] for r in rows if _num(r.get("test_accuracy"))]
    secs = [r["train_time_s"] for r in rows if _num(r.get("train_time_s"))]
    parts = [_mean_std(acc, "{:.2f}") + "%"] if acc else []
    parts += [_mean_std(secs, "{:.1f}") + "s"] if secs else []
    ttt = [r["time_to_target_s"] for r in rows if _num(r.get("time_to_target_s"))]
    if first.get("target") is not None and _num(first.get("target")):
        parts.append(f"target in {_mean_std(ttt, '{:.1f}')}s ({len(ttt)}/{len(rows)})" if ttt else "target missed")
    return " / ".join(parts) or "ok"


def _num(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """Models as rows, frameworks as columns, 'accuracy / train time' (or the status) in the cells."""
    if not rows:
        return "(no results)"
    speed = any(r.get("mode") == "speed" for r in rows)
    def label(r: dict[str, Any]) -> str:
        world = r.get("world_size")
        dp = f" x{int(world)} data-parallel" if _num(world) and int(world) > 1 else ""
        return f"{r['model']}{dp} {r['phase'] or ''}".rstrip() if speed else f"{r['model']}{dp}"
    models = list(dict.fromkeys(label(r) for r in rows))
    frameworks = list(dict.fromkeys(r["framework"] for r in rows))
    devices = list(dict.fromkeys(r["device"] for r in rows))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        col = r["framework"] if len(devices) == 1 else f"{r['framework']}@{r['device']}"
        groups.setdefault((label(r), col), []).append(r)
    table = {key: _cell_text(group) for key, group in groups.items()}
    columns = list(dict.fromkeys(c for (_, c) in table)) if len(devices) > 1 else frameworks
    header = ["model", *columns]
    body = [[m, *(table.get((m, c), "-") for c in columns)] for m in models]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    def fmt(line: list[str]) -> str:
        return "  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    note = ("cells: median step time (images/s = batch / median)" if speed
            else "cells: test accuracy / training time (evaluation excluded); mean+/-std over seeds")
    return "\n".join([fmt(header), sep, *map(fmt, body), note])
