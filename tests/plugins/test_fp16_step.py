"""fp16's loss-scaling step decides on the device, in every framework: no host read per step (which would make a
pipelined fp16 window drain the queue every step in some frameworks only), and an overflowing step changes no
weight nor momentum while the scale halves. Run on the CPU (each framework in its own process), with the real
plugins' steps; torch's fp16 is GPU-only in convbench, so its model is built here from an fp16 execution directly
(autocast and GradScaler both work on the CPU)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import FRAMEWORKS, framework_installed

COMMON = """
import json, sys
import numpy as np
from harness.plugin_manager import build_registries, get_plugin_manager
pm = get_plugin_manager()
model = build_registries(pm).models.get("lenet5")
rng = np.random.default_rng(0)
x = rng.random((4, 3, 32, 32), dtype=np.float32); y = np.arange(4) % 10
"""
CODE = {
    "torch": COMMON + """
import torch
from harness.devices import Device
from harness.plugin_base import Execution
from harness.settings import BuildSettings
from convbench_torch.model import TorchModel
m = TorchModel(model, Execution("fp16", "eager", "nchw", Device("cpu")), BuildSettings(threads=1))
assert m.scaler.is_enabled()
reads = []
item, tolist = torch.Tensor.item, torch.Tensor.tolist
torch.Tensor.item = lambda self: reads.append("item") or item(self)
torch.Tensor.tolist = lambda self: reads.append("tolist") or tolist(self)
batch = m.prepare_batch(x, y)
for _ in range(3):
    m.train_step_async(batch, 0.01)
host_reads = len(reads)
torch.Tensor.item, torch.Tensor.tolist = item, tolist
before, mom = m.get_weights(), m.get_momentum()
m.scaler.update(torch.tensor(3e38))      # the next step's scaled gradients overflow
scale = m.scaler.get_scale()
m.train_step_async(batch, 0.01)
after, mom_after = m.get_weights(), m.get_momentum()
print(json.dumps({"host_reads": host_reads, "scale_ratio": m.scaler.get_scale() / scale,
                  "weights_kept": all(np.array_equal(before[k], after[k]) for k in before),
                  "momentum_kept": all(np.array_equal(mom[k], mom_after[k]) for k in mom)}))
""",
    "tensorflow": COMMON + """
import tensorflow as tf
plugin = pm.get_plugin("tensorflow")
m = plugin.native(model, "cpu", {"precision": "fp16", "threads": 1})
assert m.scaler is not None
bx, by = m.steps.batch(x, y)
graph = m.steps.train.get_concrete_function(bx, by, tf.constant(0.01)).graph
ops = {op.type for op in graph.get_operations()}
host_reads = sorted(ops & {"If", "StatelessIf", "Switch", "Merge"})   # control flow: its predicate goes to the host
m.train_step(x, y, 0.01)
before, mom = m.get_weights(), m.get_momentum()
m.scaler.scale.assign(3e38)
m.train_step(x, y, 0.01)
after, mom_after = m.get_weights(), m.get_momentum()
print(json.dumps({"host_reads": len(host_reads), "ops": host_reads, "scale_ratio": float(m.scaler.scale.numpy()) / 3e38,
                  "weights_kept": all(np.array_equal(before[k], after[k]) for k in before),
                  "momentum_kept": all(np.array_equal(mom[k], mom_after[k]) for k in mom)}))
""",
}


@pytest.mark.parametrize("framework", [fw for fw in CODE if fw in FRAMEWORKS] or ["torch"])
def test_the_fp16_step_reads_nothing_to_the_host_and_skips_an_overflow(framework: str):
    if not framework_installed(framework):
        pytest.skip(f"{framework} is not installed")
    proc = subprocess.run([sys.executable, "-c", CODE[framework]], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["host_reads"] == 0, out
    assert out["weights_kept"] and out["momentum_kept"] and out["scale_ratio"] == pytest.approx(0.5), out
