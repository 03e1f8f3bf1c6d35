"""benchmarks/overhead.py runs end to end at the smallest sizes (its real re-executed child, the worker
environment, both sides, the paired ratio) and prints a finite ratio inside its interval. Not judged: timings
belong to the lab, not to tests."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import needs


@pytest.mark.e2e
@needs("torch")
def test_overhead_prints_a_paired_ratio(benchmarks_dir: Path) -> None:
    proc = subprocess.run([sys.executable, str(benchmarks_dir / "overhead.py"), "--framework", "torch",
                           "--batch-size", "8", "--steps", "1", "--rounds", "4", "--threads", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r"ratio harness / hand-written = ([\d.]+) \(median of pairs; 95 % interval ([\d.]+)-([\d.]+)",
                      proc.stdout)
    assert found, proc.stdout
    ratio, low, high = map(float, found.groups())
    assert 0 < low <= ratio <= high
    assert "4 ABBA pairs of rounds x 1 steps" in proc.stdout
    assert "MALLOC_MMAP_THRESHOLD_=" in proc.stdout   # the child ran in the environment convbench's workers get
