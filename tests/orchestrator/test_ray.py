"""The Ray executor: a real local Ray cluster runs two cells into one run directory."""
from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
from helpers import needs, run_cli

ray_installed = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@pytest.mark.e2e
@ray_installed
@needs("torch")
def test_two_cells_on_a_local_ray_cluster(tmp_path):
    proc = run_cli("run", "--executor", "ray", "--frameworks", "torch", "--models", "lenet5,simple_cnn",
                   "--epochs", "1", "--batch-size", "64", "--lr", "0.05", "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    df = pd.read_csv(run_dir / "results.csv")
    assert sorted(df["model"]) == ["lenet5", "simple_cnn"] and (df["status"] == "ok").all()
    assert df["note"].str.contains("ran on ray node").all()
    for cell in df["cell"]:
        assert json.loads((run_dir / "cells" / cell / "epochs.json").read_text())[0]["epoch"] == 1
        assert (run_dir / "cells" / cell / "checkpoint.npz").exists()
    assert len((run_dir / "journal.jsonl").read_text().splitlines()) == 2
    again = run_cli("run", "--resume", str(run_dir))   # resume reads the same journal: nothing left to run
    assert again.returncode == 0 and again.stdout.count("ok in an earlier attempt; kept") == 2
