"""TensorFlow data parallel: one worker, tf.distribute.MirroredStrategy over logical CPU devices (--nproc N).

The CLI run proves the harness side (baseline + -x2 cells, one worker, per-epoch losses equal to the
single-device run's). The step check proves the engine on a net with batch norm, aux heads and LRN: a
data-parallel step on a batch equals the mean of two single-device steps on its halves (first SGD step,
so the update is linear in the gradient: mean gradient, per-replica BN statistics, running statistics
averaged), with every replica's copy identical, no retracing, and runs reproducing bit for bit. It runs
in a fresh process because logical devices must be set up before TensorFlow's runtime starts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import needs, run_cli

REPO = Path(__file__).resolve().parents[2]
# measured: the two runs' epoch losses differ by ~1e-7 relative (summation order of the gradient mean)
LOSS_RTOL = 1e-4


def losses(run_dir: Path, cell: str) -> list[float]:
    return [e["train_loss"] for e in json.loads((run_dir / "cells" / cell / "epochs.json").read_text())]


@pytest.mark.e2e
@needs("tensorflow")
def test_mirrored_strategy_over_two_logical_cpus_matches_single_device(tmp_path):
    proc = run_cli("run", "--frameworks", "tensorflow", "--models", "lenet5", "--epochs", "2", "--batch-size", "64",
                   "--lr", "0.05", "--nproc", "2", "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = next(tmp_path.iterdir())
    df = pd.read_csv(run_dir / "results.csv")
    assert df["cell"].tolist() == ["tensorflow-lenet5-cpu", "tensorflow-lenet5-cpu-x2"]
    assert (df["status"] == "ok").all()
    base, dp = df.iloc[0], df.iloc[1]
    assert base["world_size"] == 1
    assert dp["world_size"] == 2 and dp["per_device_batch"] == 32 and dp["scaling_efficiency"] > 0
    single, parallel = losses(run_dir, "tensorflow-lenet5-cpu"), losses(run_dir, "tensorflow-lenet5-cpu-x2")
    print(f"train_loss per epoch: single {single}, MirroredStrategy x2 {parallel}")
    assert len(single) == 2 and parallel == pytest.approx(single, rel=LOSS_RTOL)
    cell_dir = run_dir / "cells" / "tensorflow-lenet5-cpu-x2"
    assert json.loads((cell_dir / "cell.json").read_text())["dp_mode"] == "devices"
    assert (cell_dir / "worker.log").exists() and not (cell_dir / "worker.rank1.log").exists()  # one worker


STEP_CHECK = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_tensorflow_plugin import MODELS, batch
from harness.errors import ConvbenchError
from harness.model.verification import verification_weights
from convbench_tensorflow import plugin

base = {"momentum": 0.9, "weight_decay": 5e-4, "seed": 7, "threads": 2}
dp_settings = {**base, "world_size": 2, "dp_mode": "devices", "devices": ["cpu", "cpu"]}
model = MODELS["zoo"]
w0 = verification_weights(model, 7)
x, y = batch(model, n=8)
out = {}
try:
    plugin.native(model, "cpu", {**dp_settings, "compile": "xla"})
except ConvbenchError as exc:
    out["xla_error"] = str(exc)
runs = []
for _ in range(2):   # data-parallel models first: the logical CPUs are set before the runtime starts
    dp = plugin.native(model, "cpu", dp_settings)
    dp.set_weights(w0)
    runs.append((dp, [dp.train_step(x, y, 0.05)]))
dp, dp_losses = runs[0]
after_one = dp.get_weights()
halves = []
for lo, hi in ((0, 4), (4, 8)):
    single = plugin.native(model, "cpu", base)
    single.set_weights(w0)
    halves.append((single.train_step(x[lo:hi], y[lo:hi], 0.05), single.get_weights()))
out["loss_dp"], out["loss_halves"] = dp_losses[0], [h[0] for h in halves]
out["weight_err"] = {k: float(np.abs(after_one[k] - (halves[0][1][k] + halves[1][1][k]) / 2).max()
                              / max(1.0, float(np.abs(after_one[k]).max()))) for k in w0}
for other, other_losses in runs:
    other_losses.append(other.train_step(x, y, 0.02))   # another lr: no retrace
a, b = runs[0][0].get_weights(), runs[1][0].get_weights()
out["reproducible"] = runs[0][1] == runs[1][1] and all(np.array_equal(a[k], b[k]) for k in a)
out["replicas_equal"] = all(np.array_equal(v.values[0].numpy(), v.values[1].numpy())
                            for v in [p.var for p in dp.net.params.values()] + dp.optimizer.buffers)
out["tracing"] = dp.tracing_counts()
out["world_size"] = dp.execution_info().get("world_size")
reference = plugin.native(model, "cpu", base)
reference.set_weights(a)
out["forward_equal"] = bool(np.array_equal(dp.forward(x), reference.forward(x)))
out["evaluate_equal"] = dp.evaluate(x, y) == reference.evaluate(x, y)
print("RESULT " + json.dumps(out))
"""


@needs("tensorflow")
def test_mirrored_step_is_the_mean_of_single_device_steps_on_the_slices():
    proc = subprocess.run([sys.executable, "-c", STEP_CHECK, str(REPO / "tests" / "plugins")], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert "--compile auto or none" in out["xla_error"]
    # the global batch's loss is the mean of the replicas' (equal slices)
    assert out["loss_dp"] == pytest.approx(sum(out["loss_halves"]) / 2, rel=1e-5)
    # weights and BN running statistics: the mean of the two single-device updates (measured <= 1.2e-7)
    worst = max(out["weight_err"].values())
    print(f"worst |w_dp - mean(w_half)| / max(1, |w|) = {worst:.2g}")
    assert worst <= 1e-5, {k: v for k, v in out["weight_err"].items() if v > 1e-5}
    assert out["replicas_equal"] and out["reproducible"]
    assert out["tracing"]["train_step"] == 1
    assert out["world_size"] == 2
    assert out["forward_equal"] and out["evaluate_equal"]
