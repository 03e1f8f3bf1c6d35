"""The doctor's checks inside a worker, with fake devices where a GPU is needed: a JAX-like peak-memory counter
that cannot be reset, a framework that claims TF32 but computes in strict fp32, a peak table off by 7x, a device
timer that disagrees with the harness's clock, two GPUs that are not the same one."""
from __future__ import annotations

import types

import pytest

from harness.devices import Device
from harness.plugin_manager import get_plugin_manager
from harness.worker import doctor

GPU = Device("cuda", 0)


class JaxLikeDevice:
    """XLA's GPU allocator statistics: ``peak_bytes_in_use`` is the process's maximum, and nothing resets it."""

    def __init__(self) -> None:
        self.in_use = self.peak = 0

    def allocate(self, mib: float) -> None:
        self.peak = max(self.peak, self.in_use + int(mib * 2**20))

    def memory_stats(self) -> dict[str, int]:
        return {"bytes_in_use": self.in_use, "peak_bytes_in_use": self.peak}


def test_a_peak_memory_counter_that_cannot_be_reset_is_not_applicable_not_a_failure(monkeypatch):
    """Defect 1: JAX's reset was a no-op answering 0.0, so "low < high after a reset" read FAIL on every healthy JAX
    GPU box (the earlier synchronisation check had already set the process maximum). Through the real JAX plugin and
    the real hook, with a fake device whose counter is the process maximum."""
    from convbench_jax import device as jax_device_module
    fake = JaxLikeDevice()
    monkeypatch.setattr(jax_device_module, "jax_device", lambda device: fake)
    fake.allocate(3000)   # the synchronisation check's vgg16_imagenet steps ran first in the same worker
    pm = get_plugin_manager()
    assert pm.hook.convbench_peak_memory_mb(framework="jax", device="cuda:0", reset=True) is None

    def build(model: str, on: Device = GPU) -> object:
        return types.SimpleNamespace(forward=lambda x: fake.allocate({"vgg16": 800, "lenet5": 2}[model]))
    check = doctor.check_peak_memory(pm, "jax", GPU, build)
    assert check.status == doctor.NA, check
    assert "3000 MiB" in check.detail and "cannot be reset" in check.detail


class ResettableCounter(JaxLikeDevice):
    def reset(self) -> None:
        self.peak = self.in_use


@pytest.mark.parametrize("honest", [True, False])
def test_a_counter_that_resets_passes_and_one_that_only_says_so_fails(honest):
    fake = ResettableCounter()

    def hook(framework: str, device: str, reset: bool) -> float | None:
        if not reset:
            return fake.peak / 2**20
        if honest:
            fake.reset()
        return 0.0   # a no-op reset answering 0.0 is the lie the doctor must catch
    pm = types.SimpleNamespace(hook=types.SimpleNamespace(convbench_peak_memory_mb=hook))
    fake.allocate(3000)

    def build(model: str, on: Device = GPU) -> object:
        return types.SimpleNamespace(forward=lambda x: fake.allocate({"vgg16": 800, "lenet5": 2}[model]))
    check = doctor.check_peak_memory(pm, "torch", GPU, build)
    assert check.status == (doctor.OK if honest else doctor.FAIL), check
    assert ("800 MiB after vgg16" in check.detail) if honest else ("answer a reset with None" in check.detail)
