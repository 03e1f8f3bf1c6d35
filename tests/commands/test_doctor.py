"""convbench doctor on this CPU: every check that applies passes, the rest say why not; a broken framework fails."""
from __future__ import annotations

import pytest
from helpers import FAULT_ENV, needs, run_cli

from harness.devices import CPU, Device
from harness.orchestrator.doctor import pick_device
from harness.orchestrator.probes import Probe

CHECKS = ("device", "synchronize", "peak memory", "switches", "logits", "speed cell")


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
        assert [next(c for c in CHECKS if f"  {c}  " in r) for r in rows] == list(CHECKS), rows
    assert any("synchronize  ok" in line and "runs synchronously here" in line for line in lines)
    assert any("peak memory  n/a" in line and "ru_maxrss" in line for line in lines)
    assert lines[-1] == "verdict: PASS: 8 checks passed, 0 failed, 4 not applicable on cpu"


@pytest.mark.e2e
def test_a_framework_that_cannot_time_fails_the_verdict():
    """The test-only "faulty" framework (numpy softmax regression) cannot build the real networks: its checks fail."""
    proc = run_cli("doctor", "--frameworks", "faulty", env=FAULT_ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "synchronize  FAIL" in proc.stdout and "speed cell   FAIL" in proc.stdout
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
