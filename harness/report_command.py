"""``convbench report`` (report.md + PNG plots of a finished run) and ``convbench compare`` (run B against A)."""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from harness import plots
from harness.errors import ConvbenchError
from harness.stats import summarize

REFERENCE_CSV = Path(__file__).resolve().parent.parent / "results" / "reference" / "articles.csv"
# Two rows describe the same cell when these agree; framework_version, device_name, threads, lr and seed
# may differ (they are what one usually compares across).


@dataclass
class Run:
    path: Path
    rows: list[dict[str, Any]]
    meta: dict[str, Any]
    histories: dict[str, list[dict[str, Any]]]     # cell -> epochs.json
    samples: dict[str, dict[str, list[float]]]     # cell -> phase -> seconds per timed step

    @property
    def name(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_run(run_dir: str | Path) -> Run:
    """Reads results.csv, meta.json and each cell's epochs.json / samples.json; ConvbenchError if not a run."""
    import pandas as pd
    path = Path(run_dir)
    if not path.exists():
        raise ConvbenchError(f"run directory {str(path)!r} does not exist")
    csv = path / "results.csv"
    if not path.is_dir() or not csv.is_file():
        raise ConvbenchError(f"{str(path)!r} is not a convbench run directory (no results.csv)")
    try:
        df = pd.read_csv(csv)
    except (OSError, ValueError) as exc:
        raise ConvbenchError(f"cannot read {str(csv)!r}: {exc}") from None
    missing = [c for c in ("cell", "framework", "model", "mode", "status") if c not in df.columns]
    if missing:
        raise ConvbenchError(f"{str(csv)!r} is not a convbench results file (no column {missing[0]!r})")
    rows = [{k: _clean(v) for k, v in r.items()} for r in df.to_dict("records")]
    meta = _read_json(path / "meta.json") or {}
    histories: dict[str, list[dict[str, Any]]] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    for cell in dict.fromkeys(str(r["cell"]) for r in rows):
        if isinstance(h := _read_json(path / "cells" / cell / "epochs.json"), list):
            histories[cell] = h
        if isinstance(s := _read_json(path / "cells" / cell / "samples.json"), dict):
            samples[cell] = s
    return Run(path, rows, meta, histories, samples)


# ---- formatting ------------------------------------------------------------------------------------------

def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s" if seconds < 10 else f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(round(seconds % 60)):02d} s"
    return f"{int(seconds // 3600)} h {int(round(seconds % 3600 / 60)):02d} min"


def _mean_std(values: Sequence[float], fmt: Any, unit: str = "") -> str:
    if len(values) == 1:
        return fmt(values[0]) + unit
    return f"{fmt(statistics.fmean(values))} ± {fmt(statistics.stdev(values))}{unit}"


def _md_table(header: Sequence[str], body: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str("-" if v is None else v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in body]
    return "\n".join(lines)


def _column(row: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    several = len({r.get("device") for r in rows}) > 1
    return f"{row['framework']}@{row['device']}" if several else str(row["framework"])


def _ok(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == "ok"]


def _group(rows: Sequence[dict[str, Any]], key: Any) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def _train_text(group: list[dict[str, Any]]) -> str:
    ok = _ok(group)
    if not ok:
        return "/".join(dict.fromkeys(r["status"] for r in group))
    accs = [r["test_accuracy"] for r in ok if r.get("test_accuracy") is not None]
    secs = [r["train_time_s"] for r in ok if r.get("train_time_s") is not None]
    parts = [_mean_std([100 * a for a in accs], lambda v: f"{v:.2f}", "%") if accs else "-",
             _mean_std(secs, lambda v: f"{v:.1f}", " s") if secs else "-"]
    if ok[0].get("target") is not None:
        ttt = [r["time_to_target_s"] for r in ok if r.get("time_to_target_s") is not None]
        parts.append(f"{100 * ok[0]['target']:g}% in " + (_mean_std(ttt, lambda v: f"{v:.1f}", " s") if ttt
                                                          else "-") + f" ({len(ttt)}/{len(ok)} reached)")
    text = " / ".join(parts) + (f" (n={len(ok)})" if len(ok) > 1 else "")
    return text + (f", {len(group) - len(ok)} failed" if len(group) > len(ok) else "")


# ---- the report ------------------------------------------------------------------------------------------

def speed_stats(run: Run) -> dict[tuple[str, str, str], dict[str, float]]:
    """(model, phase, column) -> median / ci_low / ci_high (ms), images/s, n: raw samples pooled over seeds."""
    speed = [r for r in run.rows if r["mode"] == "speed"]
    out = {}
    for (model, phase, col), group in _group(speed, lambda r: (r["model"], r["phase"], _column(r, speed))).items():
        ok = _ok(group)
        if not ok:
            continue
        pooled = [s for r in ok for s in run.samples.get(r["cell"], {}).get(phase, [])]
        if pooled:
            s = summarize(pooled)
            med, lo, hi, n = 1e3 * s.median, 1e3 * s.ci_low, 1e3 * s.ci_high, s.n
        else:
            med = statistics.fmean(r["ms_median"] for r in ok)
            lo = min(r.get("ms_ci_low") or med for r in ok)
            hi = max(r.get("ms_ci_high") or med for r in ok)
            n = sum(int(r.get("steps") or 0) for r in ok)
        batch = ok[0].get("batch_size") or 0
        out[(model, phase, col)] = {"median": med, "lo": lo, "hi": hi, "n": n, "img_s": 1e3 * batch / med}
    return out


def _reference_section(run: Run, train: list[dict[str, Any]]) -> str:
    import pandas as pd
    if not REFERENCE_CSV.is_file():
        return f"(the articles' figures are missing: {REFERENCE_CSV} not found)"
    ref = pd.read_csv(REFERENCE_CSV)
    ref = ref[ref["dataset"] == "cifar10"]
    ours = _group(train, lambda r: (r["model"], r["framework"]))
    body = []
    for r in (dict((k, _clean(v)) for k, v in rec.items()) for rec in ref.to_dict("records")):
        theirs = " / ".join(x for x in (f"{100 * r['accuracy']:.2f}%" if r["accuracy"] is not None else "",
                                        duration(r["time_s"]) if r["time_s"] is not None else "") if x)
        mine = _train_text(ours[(r["model"], r["framework"])]) if (r["model"], r["framework"]) in ours else "not run"
        body.append([r["network"], r["model"], r["framework"], r["setup"], theirs or "-", mine, r["note"]])
    return ("Published CIFAR-10 figures from the articles (REFERENCE.md s.1), beside ours. Their VGG times are "
            "for 200 passes on 8 Tesla K80s and their networks differed between frameworks; ours ran "
            f"{(run.meta.get('settings') or {}).get('epochs', '?')} epoch(s) on {_devices(train)}.\n\n"
            + _md_table(["network (articles)", "our model", "framework", "their setup", "theirs",
                         "ours", "note"], body))


def _devices(rows: Sequence[dict[str, Any]]) -> str:
    return ", ".join(dict.fromkeys(f"{r.get('device')} ({r.get('device_name') or '?'})" for r in rows))


def _versions(meta: dict[str, Any]) -> list[list[Any]]:
    body = [[k, meta.get(k)] for k in ("harness_version", "python", "platform", "processor", "cpu_count", "host",
                                       "git_commit", "started", "finished", "interrupted") if k in meta]
    for name, p in (meta.get("frameworks") or {}).items():
        devices = ", ".join(f"{d.get('name')} ({d.get('description')})" for d in p.get("devices") or [])
        state = p.get("version") if p.get("available") else f"unavailable: {p.get('reason')}"
        body.append([f"framework {name}", f"{state}; devices: {devices or '-'}"])
    return body


def render_markdown(run: Run, images: dict[str, str]) -> str:
    meta, settings = run.meta, run.meta.get("settings") or {}
    train = [r for r in run.rows if r["mode"] == "train"]
    dataset = settings.get("dataset") or next((r.get("dataset") for r in run.rows), None)
    out = [f"# convbench report: {run.name}", ""]
    if meta.get("command"):
        out += [f"`{' '.join(map(str, meta['command']))}`", ""]
    first = run.rows[0] if run.rows else {}
    out += [f"Mode {settings.get('mode') or first.get('mode')}, dataset {dataset}, device "
            f"{settings.get('device') or first.get('device')}.", ""]
    if not run.rows:
        out += ["No cell has finished in this run (results.csv has no rows).", ""]
    if train:
        models = list(dict.fromkeys(r["model"] for r in train))
        cols = list(dict.fromkeys(_column(r, train) for r in train))
        cells = _group(train, lambda r: (r["model"], _column(r, train)))
        body = [[m, *(_train_text(cells[(m, c)]) if (m, c) in cells else "-" for c in cols)] for m in models]
        out += ["## Accuracy and training time", "", _md_table(["network", *cols], body), "",
                "Cells: final test accuracy / training time (evaluation excluded); mean ± std over seeds "
                "where n > 1.", ""]
        if dataset == "cifar10":
            out += ["## The articles' published figures", "", _reference_section(run, train), ""]
    speed = speed_stats(run)
    if speed:
        cols = list(dict.fromkeys(c for (_, _, c) in speed))
        keys = list(dict.fromkeys((m, p) for (m, p, _) in speed))
        body = [[m, p, *(f"{s['median']:.2f} ms [{s['lo']:.2f}, {s['hi']:.2f}], {s['img_s']:.0f} img/s"
                         if (s := speed.get((m, p, c))) else "-" for c in cols)] for m, p in keys]
        out += ["## Step time", "", _md_table(["network", "phase", *cols], body), "",
                "Cells: median step time [distribution-free 95% CI of the median], images/s = batch / median; "
                "raw samples pooled over seeds.", ""]
    failed = [r for r in run.rows if r["status"] != "ok"]
    if failed:
        out += ["## Failed cells", "", _md_table(["cell", "phase", "status", "error"],
                [[r["cell"], r.get("phase"), r["status"], str(r.get("error") or "")[:300]] for r in failed]), ""]
    if images:
        out += ["## Plots", ""] + [f"![{title}]({name})\n" for title, name in images.items()]
    if settings:
        out += ["## Settings", "", _md_table(["setting", "value"], [[k, v] for k, v in settings.items()]), ""]
    if versions := _versions(meta):
        out += ["## Versions and machine", "", _md_table(["item", "value"], versions), ""]
    return "\n".join(out)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Writes report.md and its PNG plots into ``out_dir`` (default: the run directory); returns report.md."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvbenchError(f"cannot create {str(out)!r}: {exc.strerror or exc}") from None
    images: dict[str, str] = {}
    curves = [{"model": r["model"], "framework": _column(r, run.rows), "seed": r.get("seed"),
               "time_s": [e["train_time_s"] for e in h], "accuracy": [e["test_accuracy"] for e in h]}
              for r in run.rows if r["mode"] == "train" and (h := run.histories.get(r["cell"]))]
    if curves:
        images["Test accuracy vs training time"] = plots.accuracy_vs_time(curves, out / "accuracy_vs_time.png").name
    train_ok = [r for r in _ok(run.rows) if r["mode"] == "train" and r.get("train_time_s") is not None]
    if train_ok:
        bars: dict[str, dict[str, tuple[float, float]]] = {}
        for (m, c), g in _group(train_ok, lambda r: (r["model"], _column(r, run.rows))).items():
            t = [r["train_time_s"] for r in g]
            bars.setdefault(m, {})[c] = (statistics.fmean(t), statistics.stdev(t) if len(t) > 1 else 0.0)
        images["Training time"] = plots.train_time_bars(bars, out / "train_time.png").name
    if speed := speed_stats(run):
        nested: dict[str, dict[str, dict[str, tuple[float, float, float]]]] = {}
        for (m, p, c), s in speed.items():
            nested.setdefault(p, {}).setdefault(m, {})[c] = (s["median"], s["lo"], s["hi"])
        images["Median step time"] = plots.speed_bars(nested, out / "step_time.png").name
    report = out / "report.md"
    report.write_text(render_markdown(run, images))
    return report
