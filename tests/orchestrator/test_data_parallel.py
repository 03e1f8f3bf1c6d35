"""Data-parallel training with each framework's own engine, on this CPU machine."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import needs, run_cli


def dp_run(tmp_path, framework: str):
    proc = run_cli("run", "--frameworks", framework, "--models", "lenet5", "--epochs", "2", "--batch-size", "64",
                   "--lr", "0.05", "--nproc", "2", "--output", str(tmp_path))
    run_dir = next(tmp_path.iterdir())
    return proc, pd.read_csv(run_dir / "results.csv"), run_dir


def losses(run_dir, cell):
    return [e["train_loss"] for e in json.loads((run_dir / "cells" / cell / "epochs.json").read_text())]


@pytest.mark.e2e
@needs("torch")
def test_torch_ddp_over_two_gloo_processes_matches_single_device(tmp_path):
    proc, df, run_dir = dp_run(tmp_path, "torch")
    assert proc.returncode == 0, proc.stderr
    assert df["cell"].tolist() == ["torch-lenet5-cpu", "torch-lenet5-cpu-x2"]
    dp = df.iloc[1]
    assert dp["world_size"] == 2 and dp["per_device_batch"] == 32 and dp["scaling_efficiency"] > 0
    single, parallel = losses(run_dir, "torch-lenet5-cpu"), losses(run_dir, "torch-lenet5-cpu-x2")
    # same global batches, gradients averaged across the two halves: only summation order differs
    assert parallel == pytest.approx(single, rel=1e-3)
    assert (run_dir / "cells" / "torch-lenet5-cpu-x2" / "worker.rank1.log").exists()


@pytest.mark.e2e
def test_bad_data_parallel_requests(tmp_path):
    for args, message in [(["--nproc", "1"], "at least 2"), (["--nproc", "3"], "does not split evenly"),
                          (["--devices", "cpu,cpu"], "cuda:N"), (["--nproc", "2", "--mode", "speed"], "train mode")]:
        proc = run_cli("run", *args, "--output", str(tmp_path))
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
