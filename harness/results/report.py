"""report.md and its PNG plots for a finished run (``convbench report``)."""
from __future__ import annotations

import statistics
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, Sequence

from harness.atomic import write_atomic
from harness.results import libraries, plots
from harness.results.csvio import read_csv
from harness.results.outdir import output_dir
from harness.results.runs import Run, load_run
from harness.results.speed_summary import speed_by_batch, speed_stats
from harness.results.table import busy, column, duration, group, markdown_table, model_labels, ok_rows, train_text

# the articles' published figures (docs/articles.md), package data: read the same from a checkout and a wheel
REFERENCE_CSV = files("harness.results") / "reference" / "articles.csv"
REFERENCE_TYPES = {"accuracy": float, "time_s": float}   # the other columns of articles.csv are text


def _reference_section(run: Run, train: list[dict[str, Any]]) -> str:
    if not REFERENCE_CSV.is_file():
        return f"(the articles' figures are missing: {REFERENCE_CSV} not found; reinstall convbench)"
    with as_file(REFERENCE_CSV) as path:
        ref = [r for r in read_csv(path, REFERENCE_TYPES)[0] if r["dataset"] == "cifar10"]
    ours = group(train, lambda r: (r["model"], r["framework"]))
    body = []
    for r in ref:
        theirs = " / ".join(x for x in (f"{100 * r['accuracy']:.2f}%" if r["accuracy"] is not None else "",
                                        duration(r["time_s"]) if r["time_s"] is not None else "") if x)
        mine = train_text(ours[(r["model"], r["framework"])]) if (r["model"], r["framework"]) in ours else "not run"
        body.append([r["network"], r["model"], r["framework"], r["setup"], theirs or "-", mine, r["note"]])
    return ("Published CIFAR-10 figures from the articles (docs/articles.md), beside ours. Their VGG times are "
            "for 200 passes on 8 Tesla K80s and their networks differed between frameworks; ours ran "
            f"{(run.meta.get('settings') or {}).get('epochs', '?')} epoch(s) on {_devices(train)}.\n\n"
            + markdown_table(["network (articles)", "our model", "framework", "their setup", "theirs",
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
        model = model_labels(train)   # a sweep's cells apart: 'lenet5 batch 64'
        models = list(dict.fromkeys(model(r) for r in train))
        cols = list(dict.fromkeys(column(r, train) for r in train))
        cells = group(train, lambda r: (model(r), column(r, train)))
        body = [[m, *(train_text(cells[(m, c)]) if (m, c) in cells else "-" for c in cols)] for m in models]
        out += ["## Accuracy and training time", "", markdown_table(["network", *cols], body), "",
                "Cells: final test accuracy / training time (evaluation excluded); mean ± std over seeds "
                "where n > 1.", ""]
        if dataset == "cifar10":
            out += ["## The articles' published figures", "", _reference_section(run, train), ""]
    by_batch = speed_by_batch(run)
    if by_batch:
        sweep = len(by_batch) > 1   # a --batch-size sweep: a line per batch size, each model's together
        stats = by_batch if sweep else {None: speed_stats(run)}
        cols = list(dict.fromkeys(c for s in stats.values() for (_, _, c) in s))
        keys = sorted(dict.fromkeys((m, p, b) for b, s in stats.items() for (m, p, _) in s),
                      key=lambda k: (k[0], k[1], k[2] or 0))
        body = [[m, p, *([b] if sweep else []),
                 *(f"{s['median']:.2f} ms [{s['lo']:.2f}, {s['hi']:.2f}], {s['img_s']:.0f} img/s"
                   + (" (unstable)" if s["unstable"] else "")
                   if (s := stats[b].get((m, p, c))) else "-" for c in cols)] for m, p, b in keys]
        out += ["## Step time", "", markdown_table(["network", "phase", *(["batch"] if sweep else []), *cols], body), "",
                "Cells: median step time [distribution-free 95% CI of the median], images/s = batch / median; "
                "raw samples pooled over seeds." + (" Batch sizes a framework did not reach (out of memory) are "
                                                     "under Failed cells." if sweep else ""), ""]
    shaky = [r for r in run.rows if r["status"] == "ok" and r.get("stable") is False]
    if shaky:
        out += ["## Unstable phases", "", "These missed the precision target or drifted while they were sampled: "
                "their intervals are wider than asked for (a longer --max-time or a quieter machine narrows them).", "",
                markdown_table(["cell", "phase", "samples", "interval", "why"],
                               [[r["cell"], r.get("phase"), r.get("steps"), f"±{r['ci_half_pct']:.1f}%"
                                 if r.get("ci_half_pct") is not None else "-", r.get("stop")] for r in shaky]), ""]
    crowded = [r for r in run.rows if busy([r]) is not None]
    if crowded:
        out += ["## Taken on a busy machine", "", "Other processes used more than 10% of the machine's CPU while these "
                "were measured: compare them with care, or rerun with --require-quiet.", "",
                markdown_table(["cell", "phase", "CPU used by others"],
                               [[r["cell"], r.get("phase"), f"{100 * r['host_busy_fraction']:.0f}%"] for r in crowded]), ""]
    failed = [r for r in run.rows if r["status"] != "ok"]
    if failed:
        out += ["## Failed cells", "", markdown_table(["cell", "phase", "status", "error"],
                [[r["cell"], r.get("phase"), r["status"], str(r.get("error") or "")[:300]] for r in failed]), ""]
    if images:
        out += ["## Plots", ""] + [f"![{title}]({name})\n" for title, name in images.items()]
    if settings:
        out += ["## Settings", "", markdown_table(["setting", "value"], [[k, v] for k, v in settings.items()]), ""]
    if versions := _versions(meta):
        out += ["## Versions and machine", "", markdown_table(["item", "value"], versions), ""]
    return "\n".join(out)


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Writes report.md and its PNG plots into ``out_dir`` (default: the run directory); returns report.md."""
    libraries.require("convbench report")
    run = load_run(run_dir)
    out = output_dir(out_dir, run.path)
    images: dict[str, str] = {}
    model = model_labels(run.rows)
    curves = [{"model": model(r), "framework": column(r, run.rows), "seed": r.get("seed"),
               "time_s": [e["train_time_s"] for e in h], "accuracy": [e["test_accuracy"] for e in h]}
              for r in run.rows if r["mode"] == "train" and (h := run.histories.get(r["cell"]))]
    if curves:
        images["Test accuracy vs training time"] = plots.accuracy_vs_time(curves, out / "accuracy_vs_time.png").name
    train_ok = [r for r in ok_rows(run.rows) if r["mode"] == "train" and r.get("train_time_s") is not None]
    if train_ok:
        bars: dict[str, dict[str, tuple[float, float]]] = {}
        for (m, c), g in group(train_ok, lambda r: (model(r), column(r, run.rows))).items():
            t = [r["train_time_s"] for r in g]
            bars.setdefault(m, {})[c] = (statistics.fmean(t), statistics.stdev(t) if len(t) > 1 else 0.0)
        images["Training time"] = plots.train_time_bars(bars, out / "train_time.png").name
    if by_batch := speed_by_batch(run):
        nested: dict[str, dict[str, dict[str, tuple[float, float, float]]]] = {}
        for b, speed in sorted(by_batch.items(), key=lambda kv: kv[0] or 0) if len(by_batch) > 1 else [(None, speed_stats(run))]:
            for (m, p, c), s in speed.items():   # a --batch-size sweep: a group of bars per model and batch size
                nested.setdefault(p, {}).setdefault(m + (f" b{b}" if b else ""), {})[c] = (s["median"], s["lo"], s["hi"])
        images["Median step time"] = plots.speed_bars(nested, out / "step_time.png").name
    report = out / "report.md"
    return write_atomic(report, render_markdown(run, images))
