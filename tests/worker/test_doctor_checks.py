"""The doctor's checks inside a worker, with fake devices where a GPU is needed: a JAX-like peak-memory counter
that cannot be reset, a framework that claims TF32 but computes in strict fp32, a peak table off by 7x, a device
timer that disagrees with the harness's clock, two GPUs that are not the same one."""
from __future__ import annotations

import time
import types

import numpy as np
import pytest
from helpers import needs

from harness.devices import CPU, Device
from harness.frameworks import DeviceInfo
from harness.model.weights import init_weights
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import BuildSettings
from harness.worker import doctor
from harness.worker import doctor_numbers as numbers
from harness.worker.context import build_native

GPU = Device("cuda", 0)


class JaxLikeDevice:
    """XLA's GPU allocator statistics: ``peak_bytes_in_use`` is the process's maximum, and nothing resets it."""

    def __init__(self) -> None:
        self.in_use = self.peak = 0

    def allocate(self, mib: float) -> None:
        self.peak = max(self.peak, self.in_use + int(mib * 2**20))

    def memory_stats(self) -> dict[str, int]:
        return {"bytes_in_use": self.in_use, "peak_bytes_in_use": self.peak}


@needs("jax")
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


# ---- the checks that catch wrong numbers (harness/worker/doctor_numbers.py) ---------------------------------------

def tf32(a: np.ndarray) -> np.ndarray:
    """float32 rounded to TF32's 10-bit mantissa, as tensor cores read their inputs."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


class ArithmeticModel:
    """A framework's GEMM/conv in fp32 (float64 accumulation rounded once), or with TF32's inputs."""

    def __init__(self, model, tensor_cores: bool) -> None:
        self.model, self.round = model, tf32 if tensor_cores else (lambda a: a)

    def set_weights(self, weights) -> None:
        self.weights = {k: self.round(v) for k, v in weights.items()}

    def forward(self, x):
        return numbers.reference(self.model, self.weights, self.round(x)).astype(np.float32)


@pytest.mark.parametrize("recorded, ran, status", [(True, True, "ok"), (True, False, "FAIL"), (False, True, "FAIL"),
                                                   (False, False, "ok")])
def test_numerics_must_match_the_recorded_tf32_state(recorded, ran, status):
    """TF32 recorded but strict fp32 running (a switch that does not take effect) fails, and the other way round."""
    check = numbers.check_numerics(lambda model: ArithmeticModel(model, ran), recorded)
    assert check.status == status, check
    assert ("TF32 claimed, strict fp32 ran" in check.detail) == (recorded and not ran)


def test_numerics_reference_is_the_real_frameworks_arithmetic():
    """The float64 reference agrees with torch's own fp32 GEMM and conv on this CPU (strict: below 5e-5)."""
    pytest.importorskip("torch")
    pm = get_plugin_manager()
    check = numbers.check_numerics(lambda model: build_native(pm, "torch", model, CPU, BuildSettings(threads=1)), False)
    assert check.status == "ok", check


def fixed_timing(step_s: float):
    return lambda step, sync, warmup, steps: types.SimpleNamespace(samples_s=[step_s] * steps, first_step_s=step_s)


H100 = "NVIDIA H100 80GB HBM3"   # the table: 494.7 TFLOP/s TF32 dense, 66.9 FP32


@pytest.mark.parametrize("fraction, status", [(0.45, "ok"), (0.45 / 7, "FAIL"), (1.3, "FAIL")],
                         ids=["healthy", "peak-7x-too-high", "above-the-peak"])
def test_peak_sanity_catches_a_peak_table_off_by_7x(monkeypatch, fraction, status):
    """VGG-16 at batch 64 on a fake H100 whose step time gives ``fraction`` of the TF32 table peak: a table entry 7x too
    high (the step looks 7x too slow against it) fails the floor; more than the peak fails the ceiling."""
    from harness.hardware.peaks import gpu_peak_gflops
    from harness.model.shapes import model_summary
    regs = build_registries(get_plugin_manager())
    model = regs.models.get("vgg16_imagenet")
    peak, _ = gpu_peak_gflops(H100, "fp32", True)
    step_s = 3 * model_summary(model).flops * 64 / (fraction * peak * 1e9)
    monkeypatch.setattr(numbers, "time_phase", fixed_timing(step_s))
    native = types.SimpleNamespace(prepare_batch=lambda x, y: None, run_phase=lambda *a: None)
    check = numbers.check_peak_sanity(lambda name: native, regs, True, H100, True, lambda: None)
    assert check.status == status, check
    assert f"{fraction:.1%} of" in check.detail and "tf32 peak" in check.detail


def test_peak_sanity_on_an_unknown_gpu_is_not_applicable():
    check = numbers.check_peak_sanity(lambda name: None, None, True, "NVIDIA Mystery 9000", True, lambda: None)
    assert check.status == "n/a" and "not in harness/hardware/peaks.py" in check.detail


class FakeEvents:
    """A device timer reading the host's clock, scaled: ``rate`` 1 is a device clock that agrees with the harness."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def mark(self) -> float:
        return time.perf_counter()

    def seconds(self, start: float, end: float) -> float:
        return (end - start) * self.rate


@pytest.mark.parametrize("rate, status", [(1.0, "ok"), (0.8, "FAIL")])
def test_clocks_compare_the_harness_timing_with_the_devices_events(rate, status):
    """Steps of 50 ms: the device's events agreeing gives ok; events 20% shorter (the harness timing something else
    than the device's work) fail."""
    check = numbers.check_clocks(FakeEvents(rate), lambda: time.sleep(0.05), lambda: None, steps=3)
    assert check.status == status, check


def test_clocks_without_a_device_timer_do_not_apply():
    assert numbers.check_clocks(None, lambda: None, lambda: None).status == "n/a"


def fake_nvml(bus_id: bytes, name: str, seen: list):
    def handle(index):
        seen.append(index)
        return f"gpu{index}"
    return types.SimpleNamespace(nvmlDeviceGetHandleByIndex=handle,
                                 nvmlDeviceGetPciInfo=lambda h: types.SimpleNamespace(busId=bus_id),
                                 nvmlDeviceGetName=lambda h: name)


@pytest.mark.parametrize("framework_bus, framework_name, status", [
    ("0000:3b:00.0", H100, "ok"), ("0000:5e:00.0", H100, "FAIL"), (None, H100, "n/a"), (None, "NVIDIA A100", "FAIL")],
    ids=["same-gpu", "other-gpu", "no-bus-id-same-name", "no-bus-id-other-name"])
def test_identity_matches_the_frameworks_gpu_with_nvmls_by_pci_bus_id(monkeypatch, framework_bus, framework_name, status):
    """The worker sees only host GPU 2 (CUDA_VISIBLE_DEVICES=2): NVML's GPU 2 must be the framework's cuda:0."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    asked: list = []
    nvml = fake_nvml(b"00000000:3B:00.0", H100, asked)
    seen = DeviceInfo("cuda:0", framework_name, 80_000, framework_bus)
    check = numbers.check_identity(seen, True, 0, load=lambda: (nvml, ""))
    assert check.status == status, check
    assert asked == [2]


def test_identity_does_not_apply_on_the_cpu_or_without_nvml():
    assert numbers.check_identity(None, False, 0).status == "n/a"
    check = numbers.check_identity(DeviceInfo("cuda:0", H100), True, 0, load=lambda: (None, "no driver"))
    assert check.status == "n/a" and "no driver" in check.detail


@needs("torch")
def test_torch_reports_its_gpus_pci_bus_id_as_nvml_writes_it():
    from convbench_torch.device import pci_bus_id
    props = types.SimpleNamespace(pci_domain_id=0, pci_bus_id=0x3B, pci_device_id=0)
    assert pci_bus_id(props) == "0000:3b:00.0"
    assert numbers.pci_address(pci_bus_id(props)) == numbers.pci_address(b"00000000:3B:00.0")
    assert pci_bus_id(types.SimpleNamespace()) is None   # a torch without the fields


@pytest.mark.parametrize("gpu", [False, True], ids=["inline", "prefetched-as-on-a-gpu"])
def test_train_mode_runs_three_steps_through_the_input_path(gpu):
    """Real torch on this CPU: three steps of run_epoch fed by the input path, inline and (as a GPU cell) prefetched."""
    pytest.importorskip("torch")
    pm = get_plugin_manager()
    model = build_registries(pm).models.get("lenet5")
    native = build_native(pm, "torch", model, CPU, BuildSettings(threads=1))
    native.set_weights(init_weights(model, 0))
    check = numbers.check_train_mode(native, gpu)
    assert check.status == "ok" and check.detail.startswith("3 steps of lenet5 x16"), check
