"""benchmarks/campaign.py (issue 35) runs both sides of one cell end to end, each a real convbench process, and
reports every phase with both medians, their intervals and samples (its figures are not judged here: timings
belong to benchmarks, not tests)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import needs

PHASES = ("forward", "forward_backward", "train_step")


@pytest.mark.e2e
@needs("torch")
def test_both_sides_of_a_cell_are_run_and_compared(tmp_path: Path, benchmarks_dir: Path) -> None:
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(benchmarks_dir / "campaign.py"), "--frameworks", "torch", "--models",
                           "lenet5", "--fixed-steps", "5", "--fixed-warmup", "1", "--max-time", "1", "--threads", "1",
                           "--out", str(tmp_path / "runs"), "--json", str(out)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    cell = json.loads(out.read_text())["cells"]["torch/lenet5"]
    assert cell["order"] == ["fixed", "auto"] and cell["fixed_wall_s"] > 0 and cell["auto_wall_s"] > 0
    assert set(cell["phases"]) == set(PHASES)
    for p in cell["phases"].values():
        assert p["fixed_n"] == 5 and p["auto_n"] >= 3 and p["auto_stop"] in ("target", "budget")
        assert p["fixed_ci"][0] <= p["fixed_ms"] <= p["fixed_ci"][1] and p["auto_ci"][0] <= p["auto_ms"] <= p["auto_ci"][1]
        assert p["ratio"] == pytest.approx(p["auto_ms"] / p["fixed_ms"]) and p["fixed_window_ratio"] > 0
    assert cell["auto_time_spent"]["per_step_timing_s"] > 0 and cell["auto_time_spent"]["pipelined_windows_s"] == 0
    assert "| torch | lenet5 | train_step |" in proc.stdout and "wall time, whole processes: fixed" in proc.stdout
