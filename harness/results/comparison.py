"""Run B against run A (``convbench compare``): matching cells lined up, ratios, a noise-aware verdict each."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

from harness.results import libraries
from harness.results.cells import MATCH_KEYS, SECONDARY, cell_key, column_values, key_dict, metric, step_samples
from harness.results.runs import Run, load_run
from harness.results.significance import (
    DEFAULT_ALPHA,
    DEFAULT_THRESHOLD,
    Comparison,
    compare_repeats,
    compare_samples,
    difference,
    is_regression,
    levels,
)
from harness.results.table import busy, group, ok_rows, text_table


def _label_of(key: tuple[Any, ...], shown: Sequence[str] = ()) -> str:
    k = key_dict(key)
    extra = ", ".join(f"{n} {k[n]}" for n in shown if k[n] is not None)
    return f"{k['framework']} {k['model']} {k['device']} {k['phase'] or k['mode']}" + (f" ({extra})" if extra else "")


def _varying(keys: Sequence[tuple[Any, ...]]) -> tuple[list[str], list[str]]:
    """The secondary keys that differ between cells (shown per cell) and 'name value' of the common ones."""
    values = {n: {key_dict(k)[n] for k in keys} for n in SECONDARY}
    common = [f"{n} {next(iter(v))}" for n, v in values.items() if len(v) == 1 and None not in v]
    return [n for n, v in values.items() if len(v) > 1], common


def _compare_cell(ra: Run, a: list[dict[str, Any]], rb: Run, b: list[dict[str, Any]], threshold: float,
                  alpha: float) -> tuple[str, Comparison | None, str]:
    """(metric name, comparison, accuracy note) for the ok rows of one matched cell in each run."""
    name, column = metric(a[0])
    if a[0]["mode"] == "speed":
        sa, sb = step_samples(ra, a), step_samples(rb, b)
        if sa and sb:
            return name, compare_samples(sa, sb, threshold, alpha), ""
        return name, compare_repeats(column_values(a, column), column_values(b, column), threshold, alpha), \
            "(no samples.json: CSV medians)"
    ta, tb = column_values(a, column), column_values(b, column)
    if not ta or not tb:
        return name, None, "target not reached in " + ("A and B" if not (ta or tb) else "A" if not ta else "B")
    c = compare_repeats(ta, tb, threshold, alpha)
    acc_a, acc_b = column_values(a, "test_accuracy"), column_values(b, "test_accuracy")
    note = ""
    if acc_a and acc_b:
        diff, p = difference(acc_a, acc_b)
        note = f"accuracy {100 * diff:+.2f} pp" + (f" (Welch p={p:.3g})" if p is not None else "")
    return name, c, note


def compare_runs(a: str | Path, b: str | Path, threshold: float | str = DEFAULT_THRESHOLD,
                 alpha: float | str = DEFAULT_ALPHA, fail_on: float | str | None = None) -> tuple[str, int]:
    """Cell-by-cell B/A comparison of two runs; returns (text, exit code). The exit code is 1 only with
    ``fail_on`` and a matched cell significantly slower than that many percent, or ok in A but failed in B
    (or a training target reached in A only), or no cell compared at all (a gate that compared nothing fails)."""
    libraries.require("convbench compare")
    threshold, alpha, fail = levels(threshold, alpha, fail_on)
    ra, rb = load_run(a), load_run(b)
    ga, gb = group(ra.rows, cell_key), group(rb.rows, cell_key)
    shown, common = _varying([*ga, *gb])
    _label = functools.partial(_label_of, shown=shown)
    table = [["cell", "metric", "A", "B", "B/A", "change", "p", "test", "verdict", ""]]
    notes: list[str] = []
    regressions: list[str] = []
    for key in (k for k in ga if k in gb):
        oka, okb = ok_rows(ga[key]), ok_rows(gb[key])
        if not oka or not okb:
            side = "A and B" if not (oka or okb) else "A" if not oka else "B"
            statuses = "/".join(dict.fromkeys(r["status"] for r in ga[key] + gb[key] if r["status"] != "ok"))
            notes.append(f"not compared, failed in {side}: {_label(key)} ({statuses})")
            if oka and fail is not None:
                regressions.append(f"{_label(key)}: ok in A, failed in B")
            continue
        measured, c, note = _compare_cell(ra, oka, rb, okb, threshold, alpha)
        if c is None:
            notes.append(f"not compared: {_label(key)}: {note}")
            if fail is not None and note.endswith(" in B"):
                regressions.append(f"{_label(key)}: {note}")
            continue
        p = "-" if c.p_value is None else f"{c.p_value:.2g}"
        flags = [f"{side} on a busy machine ({100 * share:.0f}% CPU by others)"
                 for side, share in (("A", busy(oka)), ("B", busy(okb))) if share is not None]
        note = "; ".join(filter(None, [note, *flags]))
        table.append([_label(key), measured, f"{c.a:.4g}", f"{c.b:.4g}", f"{c.ratio:.3f}", f"{c.change_pct:+.1f}%",
                      p, c.test, c.verdict + (" (busy)" if flags else ""), note])
        if fail is not None and is_regression(c, fail):
            regressions.append(f"{_label(key)}: {c.change_pct:+.1f}% ({c.test}, p={p})")
    notes += [f"only in A: {_label(k)}" for k in ga if k not in gb]
    notes += [f"only in B: {_label(k)}" for k in gb if k not in ga]
    out = [f"compare A = {ra.path}  ->  B = {rb.path}", f"common to every cell: {', '.join(common) or '-'}", ""]
    out += [text_table(table[0], table[1:])] if len(table) > 1 else ["no cells matched"]
    out += ["", f"verdict: faster/slower only if p < {alpha:g} AND |change| > {threshold:g}%; 'single sample' "
                f"(one value per side): the threshold alone decides.",
            "speed cells: Mann-Whitney U on the raw per-step samples (pooled over seeds); train cells: training "
            "time (time to target with --target), Welch t over seeds.",
            f"matched on: {', '.join(MATCH_KEYS)} (framework_version, device_name, threads, lr, seed may differ)."]
    out += [""] + notes if notes else []
    if fail is None:
        return "\n".join(out), 0
    compared, matched = len(table) - 1, sum(k in gb for k in ga)
    partners = (f"{len(ga) - matched} of A's {len(ga)} cell(s) had no partner in B, {len(gb) - matched} of B's "
                f"{len(gb)} none in A" + (f", {matched - compared} matched but not compared" if matched > compared else ""))
    if not compared:   # a gate that compared nothing must not pass
        out += ["", f"regression gate failed: no cell was compared ({partners})"]
        return "\n".join(out), 1
    out += ["", f"regressions over {fail:g}%: " + ("none" if not regressions else str(len(regressions)))
            + f" ({compared} cell(s) compared; {partners})"]
    out += [f"  {r}" for r in regressions]
    return "\n".join(out), 1 if regressions else 0
