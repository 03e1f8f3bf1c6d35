"""convbench doctor on this CPU: every check that applies passes, the rest say why not; a broken framework fails."""
from __future__ import annotations

import dataclasses
import re

import pytest
from helpers import FAULT_ENV, REGISTRIES, needs, run_cli

from harness.devices import CPU, Device
from harness.orchestrator.doctor import pick_device
from harness.orchestrator.probes import Probe

CHECKS = ("device", "synchronize", "peak memory", "switches", "numerics", "logits", "identity", "clocks", "peak sanity",
          "train mode", "speed cell")


@pytest.mark.e2e
@needs("torch")
def test_doctor_passes_on_this_cpu():
    proc = run_cli("doctor", "--frameworks", "torch", "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "convbench doctor on cpu"
    assert lines[1].split() == ["framework", "switches", "check", "result", "measured"]
    for switches in ("tf32 on, autotune on", "tf32 off, autotune off"):
        rows = [line for line in lines if line.startswith("torch") and switches in line]
        assert [next(c for c in CHECKS if re.search(f"  {c} +(ok|n/a)  ", r)) for r in rows] == list(CHECKS), rows
    assert any(re.search(r"synchronize +ok .*runs synchronously here", line) for line in lines)
    assert any(re.search(r"peak memory +n/a .*ru_maxrss", line) for line in lines)
    assert sum(bool(re.search(r"numerics +ok .*tf32 recorded off", line)) for line in lines) == 2
    assert sum(bool(re.search(r"peak sanity +ok .*numpy GEMM peak measured here", line)) for line in lines) == 2
    assert sum(bool(re.search(r"train mode +ok +3 steps of lenet5", line)) for line in lines) == 2
    assert any(re.search(r"^torch +- +data parallel +n/a", line) for line in lines)
    assert lines[-1] == "verdict: PASS: 14 checks passed, 0 failed, 9 not applicable on cpu"
    said = proc.stderr.splitlines()   # each check as its worker returns it: a GPU's doctor takes minutes
    assert said[0].startswith("[doctor] checking on cpu: per framework two workers")
    assert len(said) == 1 + 14 + 9 and said[-1].startswith("[doctor] torch data parallel: n/a: cpu:")
    assert "[doctor] torch (tf32 on, autotune on) device: ok: " in said[1]


@pytest.mark.e2e
def test_a_framework_that_cannot_time_fails_the_verdict():
    """The test-only "faulty" framework (numpy softmax regression) cannot build the real networks: its checks fail."""
    proc = run_cli("doctor", "--frameworks", "faulty", env=FAULT_ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"synchronize +FAIL", proc.stdout) and re.search(r"speed cell +FAIL", proc.stdout)
    assert proc.stdout.splitlines()[-1].startswith("verdict: FAIL")


def test_bad_input_is_one_line():
    proc = run_cli("doctor", "--device", "gpu0")
    assert proc.returncode == 2 and "unknown device 'gpu0'" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_default_device_is_the_first_gpu_any_framework_sees():
    cpu_only = {"torch": Probe("torch", True, "", "2", [{"name": "cpu"}])}
    assert pick_device(None, cpu_only) == CPU
    gpus = {**cpu_only, "jax": Probe("jax", True, "", "0.1", [{"name": "cpu"}, {"name": "cuda:1"}, {"name": "cuda:0"}]),
            "tf": Probe("tf", False, "no", None, [{"name": "cuda:0"}])}
    assert pick_device(None, gpus) == Device("cuda", 0) and pick_device(Device("cuda", 1), gpus) == Device("cuda", 1)


def two_gpus(name: str = "torch") -> Probe:
    return Probe(name, True, "", "2", [{"name": "cpu"}, {"name": "cuda:0", "description": "NVIDIA H100 80GB HBM3"},
                                       {"name": "cuda:1", "description": "NVIDIA H100 80GB HBM3"}])


@pytest.mark.parametrize("status", ["ok", "crashed"])
def test_with_two_gpus_the_doctor_trains_one_cell_on_two_ranks(status):
    """The smoke run is the cell ``convbench run --devices cuda:1,cuda:0`` would make (its two GPUs, the plugin's
    engine, one epoch of lenet5 on synthetic data); its row's status is the check's."""
    from harness.orchestrator.doctor import data_parallel_smoke
    spec, ran = REGISTRIES.frameworks.get("torch"), []

    def run(cell, spec, cell_dir, on_line):
        ran.append(cell)
        return [{"status": status, "error": None if status == "ok" else "rank 1: NCCL error", "test_accuracy": 0.1,
                 "world_size": 2}]
    result, detail = data_parallel_smoke(spec, two_gpus(), Device("cuda", 1), 4, run=run)
    assert result == ("ok" if status == "ok" else "FAIL"), detail
    cell = ran[0]
    assert cell.world_size == 2 and cell.devices == (Device("cuda", 1), Device("cuda", 0)) and cell.dp_mode == "processes"
    assert cell.model == "lenet5" and cell.run.dataset == "synthetic" and cell.run.epochs == 1 and cell.run.timeout
    assert ("NCCL error" in detail) == (status != "ok")


def test_the_data_parallel_smoke_run_does_not_apply_below_two_gpus_or_without_an_engine():
    from harness.orchestrator.doctor import data_parallel_smoke
    never = lambda *a: pytest.fail("no run expected")   # noqa: E731
    torch = REGISTRIES.frameworks.get("torch")
    assert data_parallel_smoke(torch, two_gpus(), CPU, 4, run=never)[0] == "n/a"
    one = Probe("torch", True, "", "2", [{"name": "cpu"}, {"name": "cuda:0"}])
    assert data_parallel_smoke(torch, one, Device("cuda", 0), 4, run=never) == \
        ("n/a", "torch sees 1 GPU: a two-rank run needs two")
    no_engine = dataclasses.replace(torch, data_parallel=None)
    assert data_parallel_smoke(no_engine, two_gpus(), Device("cuda", 0), 4, run=never) == \
        ("n/a", "the torch plugin has no data-parallel engine")
