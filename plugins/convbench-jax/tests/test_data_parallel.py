"""JAX data parallel: one worker, a mesh over several devices of this process (``--nproc N``: N CPU devices of
XLA's host platform; ``--devices cuda:0,cuda:1``: those GPUs), the train step under shard_map.

The step check proves the engine the way tests/plugins/test_tensorflow_data_parallel.py does for TensorFlow: a
2-replica step on a batch equals the mean of two single-device steps on its halves (first SGD step, so the
update is linear in the gradient: mean gradient, per-replica batch-norm statistics, running statistics
averaged), for lenet5 (no batch norm) and a resnet-style net with 4-D and 2-D batch norm, a residual block
with a projection shortcut and an auxiliary head; every replica's copy is the same, the batch is split in
contiguous slices, a new learning rate does not retrace. It runs in a fresh process: the CPU's device count
is fixed when XLA's CPU backend starts. The CLI run proves the harness side (baseline and -x2 cells, one
worker, the rows' data-parallel columns, epoch losses equal to the single-device run's).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.devices import Device, parse_device
from harness.errors import ConvbenchError
from harness.settings import DataParallel

HERE = Path(__file__).resolve().parent

STEP_CHECK = r"""
import json
import numpy as np
from harness.model import graph as g
from harness.model.verification import verification_weights
from harness.plugin_manager import build_registries, get_plugin_manager
from convbench_jax import plugin

def seq(name, *nodes):
    return g.Seq(name, tuple(nodes))

block = g.Residual("block", seq("body", g.Conv("conv1", 8, 3, 2, 1, bias=False), g.BatchNorm("bn1"), g.ReLU("relu"),
                                g.Conv("conv2", 8, 3, 1, 1, bias=False), g.BatchNorm("bn2")),
                   seq("shortcut", g.Conv("conv", 8, 1, 2, 0, bias=False), g.BatchNorm("bn")))
resnet_bn = g.ModelDef("resnet_bn", (3, 16, 16), 10, seq("net",
    seq("stem", g.Conv("conv", 4, 3, 1, 1, bias=False), g.BatchNorm("bn", 1e-3, 0.3), g.ReLU("relu")),
    g.Aux("aux", seq("head", g.AvgPool("pool", 4, 4), g.Flatten("flatten"), g.Linear("fc", 10)), 0.3),
    block, g.ReLU("relu"), g.GlobalAvgPool("gap"),
    g.Linear("fc1", 16), g.BatchNorm("bn1d"), g.ReLU("relu1"), g.Linear("fc2", 10)))
models = {"lenet5": build_registries(get_plugin_manager()).models.get("lenet5"), "resnet_bn": resnet_bn}

base = {"momentum": 0.9, "weight_decay": 5e-4, "seed": 7, "threads": 2}
dp_settings = {**base, "world_size": 2, "dp_mode": "devices", "devices": ["cpu", "cpu"]}
rng = np.random.default_rng(0)
out = {}
for name, model in models.items():
    w0 = verification_weights(model, 7)
    x = rng.random((8, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, 10, 8)
    dp = plugin.native(model, "cpu", dp_settings)   # the first model of the process: CPU devices set here
    dp.set_weights(w0)
    xs, ys = dp.prepare_batch(x, y)
    r = {"world_size": dp.execution_info().get("world_size"),
         "devices": sorted(str(d) for d in xs.sharding.device_set),
         "slices": sorted((s.index[0].start, s.index[0].stop, bool(np.array_equal(np.asarray(s.data), x[s.index[0]])))
                          for s in xs.addressable_shards)}
    r["loss_dp"] = dp.train_step(x, y, 0.05)
    after = dp.get_weights()
    halves = []
    single = plugin.native(model, "cpu", base)   # one model (one compile) for both halves, reset in between
    for lo, hi in ((0, 4), (4, 8)):
        single.set_weights(w0)
        single.set_momentum({k: np.zeros_like(v) for k, v in w0.items() if k in single.params})
        halves.append((single.train_step(x[lo:hi], y[lo:hi], 0.05), single.get_weights()))
    single.set_weights(w0)
    single.set_momentum({k: np.zeros_like(v) for k, v in w0.items() if k in single.params})
    r["loss_whole"] = single.train_step(x, y, 0.05)
    r["loss_halves"] = [h[0] for h in halves]
    r["weight_err"] = {k: float(np.abs(after[k] - (halves[0][1][k] + halves[1][1][k]) / 2).max()
                                / max(1.0, float(np.abs(after[k]).max()))) for k in w0}
    dp.train_step(x, y, 0.02)   # another learning rate: no retrace
    r["cache_size"] = dp._train._cache_size()
    state = {**dp.params, **dp.stats, **dp.velocity}
    r["replicated"] = all(len(v.sharding.device_set) == 2 and v.sharding.is_fully_replicated for v in state.values())
    r["replicas_equal"] = all(np.array_equal(np.asarray(v.addressable_shards[0].data),
                                             np.asarray(v.addressable_shards[1].data)) for v in state.values())
    reference = plugin.native(model, "cpu", base)
    reference.set_weights(dp.get_weights())
    for n in (8, 5):   # an evaluation batch that does not split over the replicas runs too
        r[f"forward_err_{n}"] = float(np.abs(dp.forward(x[:n]) - reference.forward(x[:n])).max())
        (l_dp, c_dp), (l_ref, c_ref) = dp.evaluate(x[:n], y[:n]), reference.evaluate(x[:n], y[:n])
        r[f"evaluate_{n}"] = [l_dp, l_ref, c_dp, c_ref]
    out[name] = r

# GPU-only paths traced and run on the CPU mesh: dropout (each replica's key folded with its index) and fp16's
# loss-scaled step (the plugin refuses fp16 on a CPU device, so the steps are wrapped here as JaxModel does)
import jax
import jax.numpy as jnp
from convbench_jax.layers import Layout
from convbench_jax.optim import initial_scale
from convbench_jax.parallel import AXIS
from convbench_jax.steps import make_steps
drop = g.ModelDef("drop", (3, 8, 8), 10, seq("net", g.Flatten("flatten"), g.Dropout("drop", 0.5), g.Linear("fc", 10)))
dp = plugin.native(drop, "cpu", dp_settings)
dp.set_weights(verification_weights(drop, 7))
x, y = rng.random((8, 3, 8, 8), dtype=np.float32), rng.integers(0, 10, 8)
losses = [dp.train_step(x, y, 0.05) for _ in range(2)]
state = {**dp.params, **dp.velocity}
out["dropout"] = {"finite": bool(np.isfinite(losses).all()),
                  "replicas_equal": all(np.array_equal(np.asarray(v.addressable_shards[0].data),
                                                       np.asarray(v.addressable_shards[1].data)) for v in state.values())}
model = models["lenet5"]
lenet = plugin.native(model, "cpu", dp_settings)
lenet.set_weights(verification_weights(model, 7))
fp16 = jax.jit(lenet.replicas.steps(make_steps(model, Layout("nhwc"), jnp.float16, 0.9, 5e-4, loss_scaling=True,
                                               axis=AXIS)).train)
x, y = rng.random((8, *model.input_shape), dtype=np.float32), rng.integers(0, 10, 8)
scale = jax.device_put(initial_scale(), lenet.placement)
res = fp16(lenet.params, lenet.stats, lenet.velocity, lenet.key, scale, *lenet.prepare_batch(x, y), np.float32(0.05))
out["fp16"] = {"loss": float(res[-1]), "scale": float(res[4]["scale"]), "initial": float(initial_scale()["scale"]),
               "params_replicated": all(v.sharding.is_fully_replicated for v in res[0].values())}
print("RESULT " + json.dumps(out))
"""


def run_step_check() -> dict:
    env = {**os.environ}
    env.pop("XLA_FLAGS", None)   # the plugin itself asks XLA for the CPU devices
    proc = subprocess.run([sys.executable, "-c", STEP_CHECK], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("RESULT ", 1)[1])


@pytest.fixture(scope="module")
def step_check() -> dict:
    return run_step_check()


@pytest.mark.parametrize("model", ["lenet5", "resnet_bn"])
def test_two_replica_step_is_the_mean_of_single_device_steps_on_the_slices(step_check, model):
    r = step_check[model]
    assert r["world_size"] == 2 and r["devices"] == ["cpu:0", "cpu:1"]
    assert r["slices"] == [[0, 4, True], [4, 8, True]]   # replica i holds the i-th contiguous slice
    # the global batch's loss is the mean of the replicas' (equal slices)
    assert r["loss_dp"] == pytest.approx(sum(r["loss_halves"]) / 2, rel=1e-5)
    # weights and BN running statistics: the mean of the two single-device updates
    worst = max(r["weight_err"].values())
    print(f"{model}: worst |w_dp - mean(w_half)| / max(1, |w|) = {worst:.2g}")
    assert worst <= 1e-5, {k: v for k, v in r["weight_err"].items() if v > 1e-5}
    assert r["replicated"] and r["replicas_equal"]
    assert r["cache_size"] == 1
    for n in (8, 5):
        assert r[f"forward_err_{n}"] <= 1e-5
        l_dp, l_ref, c_dp, c_ref = r[f"evaluate_{n}"]
        assert l_dp == pytest.approx(l_ref, rel=1e-5) and c_dp == c_ref


def test_batch_norm_normalises_with_each_replica_slice(step_check):
    """The check above tells the rules apart: with batch norm, one step on the whole batch (global statistics)
    is not the replicas' step, without it it is."""
    bn, plain = step_check["resnet_bn"], step_check["lenet5"]
    assert bn["loss_whole"] != pytest.approx(bn["loss_dp"], rel=1e-4)
    assert plain["loss_whole"] == pytest.approx(plain["loss_dp"], rel=1e-5)


def test_dropout_and_fp16_loss_scaling_run_per_replica(step_check):
    """Paths no step check above reaches: a dropout layer's per-replica key, and fp16's loss-scaled step (GPU
    only in a run) traced under shard_map's replication check and run on the CPU mesh."""
    assert step_check["dropout"] == {"finite": True, "replicas_equal": True}
    fp16 = step_check["fp16"]
    assert np.isfinite(fp16["loss"]) and fp16["scale"] == fp16["initial"] and fp16["params_replicated"]


class FakeGpu:
    def __init__(self, i: int) -> None:
        self.id = i


@pytest.fixture
def fake_gpus(monkeypatch):
    from convbench_jax import device
    gpus = [FakeGpu(0), FakeGpu(1), FakeGpu(2)]
    monkeypatch.setattr(device, "_gpus", lambda: gpus)
    return gpus


def devices_parallel(*names: str) -> DataParallel:
    return DataParallel("devices", len(names), 0, tuple(parse_device(n) for n in names))


def test_devices_are_the_listed_gpus(fake_gpus):
    from convbench_jax.parallel import replica_devices
    assert replica_devices(Device("cuda", 2), devices_parallel("cuda:2", "cuda:0")) == [fake_gpus[2], fake_gpus[0]]
    assert replica_devices(Device("cuda", 0), None) is None
    assert replica_devices(Device("cuda", 0), DataParallel("devices", 1)) is None


@pytest.mark.parametrize("device, parallel, message", [
    ("cuda:0", DataParallel("devices", 2, 0, (Device("cuda", 0),)), "2 devices needed, got cuda:0"),
    ("cuda:0", DataParallel("devices", 2, 0, (Device("cuda", 0), Device("cuda", 7))), "sees 3 GPU"),
    ("cuda:0", DataParallel("devices", 2, 0, None), "--nproc 2 means 2 CPU replicas"),
    ("cpu", DataParallel("processes", 2, 1, None), "one worker drives every device"),
])
def test_device_errors_are_one_line(fake_gpus, device, parallel, message):
    from convbench_jax.parallel import replica_devices
    with pytest.raises(ConvbenchError, match=message):
        replica_devices(parse_device(device), parallel)


def test_a_jax_without_shard_map_is_one_line(monkeypatch):
    import jax
    from convbench_jax.parallel import replica_devices
    monkeypatch.delattr(jax, "shard_map")
    with pytest.raises(ConvbenchError, match="needs jax.shard_map, which jax .* lacks"):
        replica_devices(Device("cpu"), devices_parallel("cpu", "cpu"))


def test_cpu_replicas_after_the_backend_started_need_a_fresh_process():
    import jax
    from convbench_jax.parallel import replica_devices
    have = len(jax.devices("cpu"))   # starts the CPU backend of this (pytest) process
    with pytest.raises(ConvbenchError, match=f"started with {have}; run the cell in a fresh process"):
        replica_devices(Device("cpu"), DataParallel("devices", have + 1, 0, (Device("cpu"),) * (have + 1)))


def test_spec_offers_data_parallel_in_one_worker():
    from convbench_jax import plugin
    assert plugin.spec.data_parallel == "devices"


@pytest.mark.e2e
def test_nproc_two_trains_like_the_single_device_cell(tmp_path):
    import pandas as pd
    env = {**os.environ}
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--frameworks", "jax", "--models", "lenet5",
                           "--epochs", "1", "--nproc", "2", "--batch-size", "64", "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = next(tmp_path.iterdir())
    df = pd.read_csv(run_dir / "results.csv")
    assert df["cell"].tolist() == ["jax-lenet5-cpu", "jax-lenet5-cpu-x2"]
    assert (df["status"] == "ok").all(), df[["cell", "status", "error"]].to_dict("records")
    base, dp = df.iloc[0], df.iloc[1]
    assert base["world_size"] == 1
    assert dp["world_size"] == 2 and dp["per_device_batch"] == 32 and dp["scaling_efficiency"] > 0

    def losses(cell: str) -> list[float]:
        return [e["train_loss"] for e in json.loads((run_dir / "cells" / cell / "epochs.json").read_text())]
    single, parallel = losses("jax-lenet5-cpu"), losses("jax-lenet5-cpu-x2")
    print(f"train_loss per epoch: single {single}, mesh x2 {parallel}")
    assert len(single) == 1 and parallel == pytest.approx(single, rel=1e-4)   # lenet5: no BN, no dropout
    cell_dir = run_dir / "cells" / "jax-lenet5-cpu-x2"
    assert json.loads((cell_dir / "cell.json").read_text())["dp_mode"] == "devices"
    assert (cell_dir / "worker.log").exists() and not (cell_dir / "worker.rank1.log").exists()   # one worker
