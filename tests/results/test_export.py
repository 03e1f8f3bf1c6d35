"""convbench export --to pytest-benchmark: the file is read by pytest-benchmark's own comparison tool, and its
statistics are that tool's, computed from the run's raw samples."""
from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_run, run_cli


def export(run_dir: Path, out: Path) -> dict:
    proc = run_cli("export", str(run_dir), "--to", "pytest-benchmark", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == f"pytest-benchmark: {out}\n"
    return json.loads(out.read_text())


def compare(tmp_path: Path, *files: Path) -> list[dict[str, str]]:
    """pytest-benchmark's own `compare` on the files, its CSV report read back."""
    report = tmp_path / "compare"
    proc = subprocess.run([sys.executable, "-c", "from pytest_benchmark.cli import main; main()", "compare", *map(str, files),
                           "--csv", str(report), "--columns", "min,max,mean,median,rounds"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(f"{report}.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.e2e
def test_two_exported_speed_runs_are_compared_by_pytest_benchmark(tmp_path):
    runs = [make_run(tmp_path / "results", run_id=r, mode="speed", dataset="synthetic", frameworks=("torch", "jax"),
                     rng_seed=i, step_s=0.010 * (1 + i)) for i, r in enumerate(("a", "b"))]
    docs = [export(run_dir, tmp_path / f"{run_dir.name}.json") for run_dir in runs]
    samples = json.loads((runs[0] / "cells" / "torch-lenet5-cpu" / "samples.json").read_text())
    first = next(b for b in docs[0]["benchmarks"] if b["name"] == "forward[torch-lenet5-cpu]")
    assert first["stats"]["rounds"] == len(samples["forward"]) and first["stats"]["data"] == samples["forward"]
    assert first["stats"]["median"] == pytest.approx(statistics.median(samples["forward"]))
    assert first["group"] == "lenet5 forward" and first["extra_info"]["framework"] == "torch"
    assert docs[0]["commit_info"]["id"] == "0" * 40 and docs[0]["machine_info"]["node"] == "test"
    rows = compare(tmp_path, *(tmp_path / f"{r.name}.json" for r in runs))
    assert len(rows) == 2 * 2 * 3   # two runs x two frameworks x three phases
    names = {r["name"] for r in rows}
    assert {"convbench/a::torch-lenet5-cpu::forward", "convbench/b::jax-lenet5-cpu::train_step"} <= names
    assert {r["param:framework"] for r in rows} == {"torch", "jax"}
    median = {r["name"]: float(r["median"]) for r in rows}
    assert median["convbench/b::torch-lenet5-cpu::forward"] > 1.5 * median["convbench/a::torch-lenet5-cpu::forward"]


@pytest.mark.e2e
def test_a_train_run_exports_its_epochs_as_rounds(tmp_path):
    run_dir = make_run(tmp_path, mode="train", epochs=4)
    doc = export(run_dir, tmp_path / "train.json")
    (bench,) = doc["benchmarks"]
    history = json.loads((run_dir / "cells" / "torch-lenet5-cpu" / "epochs.json").read_text())
    assert bench["stats"]["rounds"] == 4 and bench["stats"]["total"] == pytest.approx(history[-1]["train_time_s"])
    assert compare(tmp_path, tmp_path / "train.json")[0]["rounds"] == "4"


@pytest.mark.e2e
def test_nothing_to_export_is_one_line(tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic", failed={("torch", "lenet5"): "crashed"})
    proc = run_cli("export", str(run_dir), "--to", "pytest-benchmark")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "has no finished cell with timings to export" in proc.stderr and proc.stdout == ""
    proc = run_cli("export", str(tmp_path / "nowhere"), "--to", "pytest-benchmark")
    assert proc.returncode == 2 and proc.stderr.startswith("convbench: error: ") and proc.stderr.count("\n") == 1
