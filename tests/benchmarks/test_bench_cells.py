"""The pytest-benchmark suite (benchmarks/conftest.py, benchmarks/test_cells.py) runs every phase of a cell at
the smallest sizes: a benchmark itself, run here only so that it cannot rot unnoticed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import needs

from harness.native import PHASES


@pytest.mark.e2e
@needs("torch")
def test_suite_runs_every_phase(tmp_path: Path, benchmarks_dir: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "pytest", str(benchmarks_dir), "-q", "-p", "no:cacheprovider",
                           "--framework", "torch", "--models", "lenet5", "--batch-size", "8", "--bench-steps", "2",
                           "--bench-warmup", "0", f"--benchmark-json={out}", f"--benchmark-storage=file://{tmp_path}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)   # nothing written into the checkout
    assert proc.returncode == 0, proc.stdout[-3000:]
    runs = json.loads(out.read_text())["benchmarks"]
    assert sorted(b["extra_info"]["phase"] for b in runs) == sorted(PHASES)
    assert all(b["extra_info"]["batch_size"] == 8 and b["stats"]["rounds"] == 2 for b in runs)
