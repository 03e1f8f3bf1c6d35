"""benchmarks/idiomatic_ratio.py runs end to end at the smallest sizes (one framework's worker subprocess, its
idiomatic reference, paired steps) and writes every figure it reports. Not judged: timings belong to the lab."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import needs


@pytest.mark.e2e
@needs("torch")
def test_idiomatic_ratio_reports_every_figure(tmp_path: Path, benchmarks_dir: Path) -> None:
    out = tmp_path / "ratio.json"
    proc = subprocess.run([sys.executable, str(benchmarks_dir / "idiomatic_ratio.py"), "--frameworks", "torch",
                           "--models", "resnet32", "--batch-size", "4", "--steps", "3", "--warmup", "0",
                           "--rounds", "1", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["params"]["convbench"] == row["params"]["idiomatic"]
    for phase in ("train_step", "forward"):
        cell = row[phase]
        low, high = cell["interval"]
        assert all(math.isfinite(v) and v > 0 for v in (cell["ratio"], low, high, cell["convbench_ms"], cell["best_ms"]))
        assert low <= cell["ratio"] <= high, cell
    assert "| torch | resnet32 |" in proc.stdout
