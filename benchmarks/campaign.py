"""Fixed counts against adaptive sampling: the same speed matrix twice, interleaved cell by cell.

For each framework x model cell, one `convbench run --mode speed` with the fixed protocol (`--steps 100 --warmup
10`: 10 burn-in steps, 100 timed, a window of 100) and one with `--steps auto --precision-target 1` (the default),
in ABBA order (fixed first on even cells, adaptive first on odd ones), each its own convbench process as a user
runs it. Prints, per phase, both medians with their 95 % intervals and samples, the ratio adaptive / fixed, whether
each median lies inside the other's interval, how the adaptive series stopped, and, for the fixed protocol, its
pipelined window against its per-step median (on a CPU the evidence for one series there); then the wall time of
each side: whole processes, and the cells' own time (``cell_wall_s``), and where the adaptive side's time went.

    python benchmarks/campaign.py [--frameworks torch,tensorflow,paddle,jax] [--models lenet5,resnet32]
        [--fixed-steps 100] [--fixed-warmup 10] [--target 1] [--max-time 30] [--device cpu] [--out DIR] [--json PATH]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PHASES = ("forward", "forward_backward", "train_step")


def convbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def run_side(side: str, fw: str, model: str, opts: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One convbench process for one cell; its rows by phase and its wall time."""
    folder = out / side / f"{fw}-{model}"
    sampling = (["--steps", str(opts.fixed_steps), "--warmup", str(opts.fixed_warmup)] if side == "fixed"
                else ["--steps", "auto", "--precision-target", str(opts.target), "--max-time", str(opts.max_time)])
    argv = convbench("run", "--mode", "speed", "--frameworks", fw, "--models", model, "--device", opts.device,
                     "--output", str(folder), *sampling, *(["--threads", str(opts.threads)] if opts.threads else []))
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    run_dirs = sorted(folder.iterdir()) if folder.exists() else []
    if proc.returncode != 0 or not run_dirs:
        sys.exit(f"campaign: {side} {fw} {model} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    with open(run_dirs[-1] / "results.csv", newline="") as fh:
        rows = {r["phase"]: r for r in csv.DictReader(fh)}
    meta = json.loads((run_dirs[-1] / "meta.json").read_text())
    return {"wall_s": wall, "rows": rows, "time_spent": meta.get("time_spent"), "run_dir": str(run_dirs[-1])}


def num(row: dict[str, str], key: str) -> float | None:
    value = row.get(key)
    return float(value) if value not in (None, "") else None


def compare_phase(fixed: dict[str, str], auto: dict[str, str]) -> dict[str, Any]:
    f_med, a_med = num(fixed, "ms_median"), num(auto, "ms_median")
    f_lo, f_hi, a_lo, a_hi = (num(fixed, "ms_ci_low"), num(fixed, "ms_ci_high"), num(auto, "ms_ci_low"),
                              num(auto, "ms_ci_high"))
    assert None not in (f_med, a_med, f_lo, f_hi, a_lo, a_hi), "a phase without a median"
    window = num(fixed, "pipelined_ms")
    return {"fixed_ms": f_med, "fixed_ci": [f_lo, f_hi], "fixed_n": int(fixed["steps"]),
            "fixed_half_pct": num(fixed, "ci_half_pct"), "auto_ms": a_med, "auto_ci": [a_lo, a_hi],
            "auto_n": int(auto["steps"]), "auto_warmup": int(auto["warmup"] or 0), "auto_half_pct": num(auto, "ci_half_pct"),
            "auto_stop": auto["stop"], "auto_stable": auto["stable"] == "True", "fixed_stable": fixed["stable"] == "True",
            "ratio": a_med / f_med, "auto_in_fixed": f_lo <= a_med <= f_hi, "fixed_in_auto": a_lo <= f_med <= a_hi,
            "fixed_window_ratio": window / f_med if window else None,
            "auto_timing_s": num(auto, "timing_s"), "fixed_timing_s": (num(fixed, "timing_s") or 0)
            + (num(fixed, "window_time_s") or 0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", default="torch,tensorflow,paddle,jax")
    parser.add_argument("--models", default="lenet5,resnet32")
    parser.add_argument("--fixed-steps", type=int, default=100)
    parser.add_argument("--fixed-warmup", type=int, default=10)
    parser.add_argument("--target", type=float, default=1.0, help="percent (default 1)")
    parser.add_argument("--max-time", type=float, default=30.0, help="seconds per series (default 30)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="results/campaign")
    parser.add_argument("--json", default=None)
    opts = parser.parse_args()
    out = Path(opts.out) / time.strftime("%Y%m%d-%H%M%S")
    cells = [(fw, m) for fw in opts.frameworks.split(",") for m in opts.models.split(",")]
    results: dict[str, Any] = {"options": vars(opts), "cells": {}}
    for i, (fw, model) in enumerate(cells):
        order = ("fixed", "auto") if i % 2 == 0 else ("auto", "fixed")
        sides = {side: run_side(side, fw, model, opts, out) for side in order}
        results["cells"][f"{fw}/{model}"] = {
            "order": list(order), **{f"{s}_wall_s": sides[s]["wall_s"] for s in order},
            **{f"{s}_time_spent": sides[s]["time_spent"] for s in order},
            "phases": {p: compare_phase(sides["fixed"]["rows"][p], sides["auto"]["rows"][p]) for p in PHASES}}
        print(f"{fw} {model}: fixed {sides['fixed']['wall_s']:.0f} s, auto {sides['auto']['wall_s']:.0f} s", flush=True)
    report(results)
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1))
    return 0


def ms(v: float) -> str:
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def inside(p: dict[str, Any]) -> str:
    if p["auto_in_fixed"] and p["fixed_in_auto"]:
        return "yes"
    return "auto in fixed" if p["auto_in_fixed"] else "fixed in auto" if p["fixed_in_auto"] else "no"


def report(results: dict[str, Any]) -> None:
    print("\n| framework | model | phase | fixed ms [95% CI] (n, ±%) | auto ms [95% CI] (n, warm-up, ±%, stop) | "
          "auto/fixed | each inside the other's CI | fixed window / median |")
    print("|---|---|---|---|---|---|---|---|")
    for key, cell in results["cells"].items():
        fw, model = key.split("/")
        for phase, p in cell["phases"].items():
            mark = "" if p["auto_stable"] else " unstable"
            print(f"| {fw} | {model} | {phase} | {ms(p['fixed_ms'])} [{ms(p['fixed_ci'][0])}, {ms(p['fixed_ci'][1])}] "
                  f"({p['fixed_n']}, ±{p['fixed_half_pct']:.1f}%) | {ms(p['auto_ms'])} [{ms(p['auto_ci'][0])}, "
                  f"{ms(p['auto_ci'][1])}] ({p['auto_n']}, {p['auto_warmup']}, ±{p['auto_half_pct']:.1f}%, "
                  f"{p['auto_stop']}{mark}) | {p['ratio']:.3f} | "
                  f"{inside(p)} | "
                  f"{p['fixed_window_ratio']:.3f} |")
    cells = results["cells"].values()
    fixed_wall = sum(c["fixed_wall_s"] for c in cells)
    auto_wall = sum(c["auto_wall_s"] for c in cells)
    fixed_cells = sum((c["fixed_time_spent"] or {}).get("cells_s", 0) for c in cells)
    auto_cells = sum((c["auto_time_spent"] or {}).get("cells_s", 0) for c in cells)
    print(f"\nwall time, whole processes: fixed {fixed_wall:.0f} s, auto {auto_wall:.0f} s: "
          f"{fixed_wall / auto_wall:.2f}x less")
    print(f"wall time in the cells (cell_wall_s): fixed {fixed_cells:.0f} s, auto {auto_cells:.0f} s: "
          f"{fixed_cells / max(auto_cells, 1e-9):.2f}x less")
    for side in ("fixed", "auto"):
        spent = [c[f"{side}_time_spent"] or {} for c in cells]
        parts = {k: sum(s.get(k, 0) for s in spent) for k in ("per_step_timing_s", "pipelined_windows_s",
                                                               "compilation_s", "startup_imports_setup_s", "other_s")}
        print(f"{side}: " + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()))
    phases = [p for c in cells for p in c["phases"].values()]
    stable = [p for p in phases if p["auto_stable"]]
    agree = [p for p in stable if p["auto_in_fixed"] or p["fixed_in_auto"]]
    print(f"phases: {len(phases)}; adaptive stable {len(stable)}, unstable {len(phases) - len(stable)} (all marked); "
          f"stable phases whose median lies in the other's interval (either way): {len(agree)}/{len(stable)}; "
          f"median ratio auto/fixed {statistics.median(p['ratio'] for p in phases):.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
