"""A finished run in the formats other tools keep results in.

``pytest-benchmark``: the JSON file pytest-benchmark writes (``--benchmark-json``) and reads (``pytest-benchmark
compare``, and the CI dashboards that take its format): one benchmark per speed-mode phase, its ``stats``
computed by pytest-benchmark's own ``Stats`` from the phase's raw samples (so every statistic is the one that tool
would compute), one per train-mode cell from its epochs' training times (each epoch a round); ``machine_info`` and
``commit_info`` of the machine and the checkout the run was measured on (meta.json), not of the one exporting it.
The row's settings and convbench's own interval go in ``extra_info``.
"""
from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

from harness.errors import ConvbenchError
from harness.results.runs import Run

# what a benchmark's extra_info carries of its row: what ran, how, and convbench's own statistics
EXTRA_COLUMNS = ("framework", "framework_version", "model", "mode", "phase", "device", "device_name", "dataset",
                 "batch_size", "threads", "precision", "compile", "layout", "tf32", "autotune", "images_per_sec",
                 "pipelined_ms", "pipelined_images_per_sec", "first_step_s", "ms_ci_low", "ms_ci_high", "ci_half_pct",
                 "stable", "stop", "sampling", "warmup", "achieved_gflops", "peak_fraction", "test_accuracy",
                 "train_time_s", "host_busy_fraction", "note")


def stats_module() -> Any:
    try:
        from pytest_benchmark import __version__
        from pytest_benchmark.stats import Stats
    except ImportError:
        raise ConvbenchError("convbench export --to pytest-benchmark needs pytest-benchmark: "
                             "pip install 'convbench[export]'") from None
    return Stats, __version__


def machine_info(meta: dict[str, Any], results_schema: str = "1.0") -> dict[str, Any]:
    """pytest-benchmark's machine_info keys, from the run's meta.json (the measuring machine); its ``convbench`` part
    names the run and the results schema version its figures were read from (``results_schema``)."""
    plat = str(meta.get("platform") or "")
    system, _, rest = plat.partition("-")
    release = re.sub(r"-(x86_64|aarch64|arm64).*$", "", rest)
    return {"node": meta.get("host"), "processor": meta.get("processor"), "machine": meta.get("machine"),
            "python_implementation": platform.python_implementation(), "python_version": meta.get("python"),
            "system": system or None, "release": release or None, "cpu": {"count": meta.get("cpu_count")},
            "convbench": {"harness_version": meta.get("harness_version"), "run_id": meta.get("run_id"),
                          "results_schema": results_schema,
                          "gpus": meta.get("gpus"), "cpu_peak_gflops": meta.get("cpu_peak_gflops"),
                          "frameworks": {k: v.get("version") for k, v in (meta.get("frameworks") or {}).items()
                                         if isinstance(v, dict)}}}


def commit_info(meta: dict[str, Any]) -> dict[str, Any]:
    return {"id": meta.get("git_commit") or "unversioned", "time": None, "author_time": None,
            "dirty": bool(meta.get("git_dirty")), "project": "convbench", "branch": None}


def benchmark(row: dict[str, Any], samples: list[float], Stats: Any, run: Run) -> dict[str, Any]:
    stats = Stats()
    for value in samples:
        stats.update(value)
    phase = row["phase"] if row["mode"] == "speed" else "train_epoch"
    settings = run.meta.get("settings") or {}
    return {"group": f"{row['model']} {phase}", "name": f"{phase}[{row['cell']}]",
            "fullname": f"convbench/{run.name}::{row['cell']}::{phase}",
            "params": {"framework": row["framework"], "model": row["model"], "device": row["device"],
                       "batch_size": row["batch_size"]}, "param": row["cell"],
            "extra_info": {k: row.get(k) for k in EXTRA_COLUMNS if row.get(k) is not None},
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": settings.get("min_steps"),
                        "max_time": settings.get("max_time"), "min_time": 0, "warmup": row.get("warmup") or False},
            "stats": {**stats.as_dict(), "data": list(samples), "iterations": 1}}


def epoch_times(history: list[dict[str, Any]]) -> list[float]:
    """Each epoch's training seconds (epochs.json's ``train_time_s`` is the running clock)."""
    clocks = [float(e["train_time_s"]) for e in history if e.get("train_time_s") is not None]
    return [b - a for a, b in zip([0.0, *clocks], clocks) if b > a]


def pytest_benchmark_json(run: Run) -> dict[str, Any]:
    """The run as one pytest-benchmark JSON document; ConvbenchError when nothing in it was timed."""
    Stats, version = stats_module()
    out = []
    for row in run.rows:
        if row["status"] != "ok":
            continue
        if row["mode"] == "speed":
            samples = run.samples.get(row["cell"], {}).get(row["phase"]) or []
        else:
            samples = epoch_times(run.histories.get(row["cell"], []))
        if len(samples) >= 1:
            out.append(benchmark(row, samples, Stats, run))
    if not out:
        raise ConvbenchError(f"{str(run.path)!r} has no finished cell with timings to export")
    return {"machine_info": machine_info(run.meta, run.schema_version), "commit_info": commit_info(run.meta), "benchmarks": out,
            "datetime": run.meta.get("started"), "version": version}


def default_output(run_dir: Path, fmt: str) -> Path:
    return run_dir / {"pytest-benchmark": "pytest-benchmark.json"}[fmt]
