"""benchmarks/train_vs_speed.py (issue 15) runs end to end in both of its modes, in its real worker subprocess,
and every figure it writes is a measured, positive, finite number: the benchmark the train-mode target is judged
by cannot rot unnoticed. (Its figures are not judged here: timings belong to benchmarks, not tests.)"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import needs

SERIES = ("train_ms", "speed_ms", "window_ms", "ceiling_ms", "input_ms")
RATIOS = ("ratio", "ratio_latency", "ceiling")


@needs("torch")
@pytest.mark.parametrize("mode, samples", [(["--rounds", "2"], 2), (["--blocks", "2", "--cycles", "3"], 3)],
                         ids=["epochs", "blocks"])
def test_every_figure_is_measured(tmp_path: Path, benchmarks_dir: Path, mode: list[str], samples: int) -> None:
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(benchmarks_dir / "train_vs_speed.py"), "--frameworks", "torch",
                           "--models", "lenet5", "--steps", "3", "--threads", "1", "--json", str(out), *mode],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cells = json.loads(out.read_text())["results"]["torch"]
    assert set(cells) == {"lenet5/plain", "lenet5/augment"}
    for key, cell in cells.items():
        for series in SERIES:
            assert len(cell[series]) == samples, (key, series)
            assert all(math.isfinite(v) and v > 0 for v in cell[series]), (key, series, cell[series])
        for name in RATIOS:
            low, high = cell[name + "_interval"]
            assert 0 < low <= cell[name] <= high, (key, name)
    assert cells["lenet5/augment"]["input_path"].startswith("numpy nchw, cropped")
    assert "| torch | lenet5 | yes |" in proc.stdout
