"""The shared framework-plugin base: the hook shell every framework plugin gets, on a fresh plugin manager."""
from __future__ import annotations

import pytest

from harness.devices import Device
from harness.errors import ConvbenchError
from harness.frameworks import DeviceInfo, FrameworkSpec
from harness.model.graph import Flatten, Linear, ModelDef, Seq
from harness.plugin_base import FrameworkPlugin
from harness.plugin_manager import build_registries, get_plugin_manager

MODEL = ModelDef("tiny", (1, 2, 2), 3, Seq("net", (Flatten("flatten"), Linear("fc", 3))))


class Fake(FrameworkPlugin):
    spec = FrameworkSpec("fakefw", "json", ("convbench",), ("cpu", "cuda"))
    compile_modes = {"auto": "eager", "none": "eager", "default": "jit"}
    layouts = {"native": "nhwc", "nhwc": "nhwc"}
    precisions = ("fp32", "bf16", "fp16")
    gpu_only_precisions = ("fp16",)

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def build(self, model, execution, settings):  # type: ignore[no-untyped-def]
        return ("built", execution)

    def discover(self) -> list[DeviceInfo]:
        return [DeviceInfo("cpu")]

    def synchronize(self, device: Device) -> None:
        self.calls.append(("sync", device.name))

    def peak_memory_mb(self, device: Device, reset: bool) -> float | None:
        self.calls.append(("peak", device.name))
        return 1.5


@pytest.fixture
def pm_and_plugin():
    pm = get_plugin_manager(load_entrypoints=False)
    plugin = Fake()
    pm.register(plugin, name="fake")
    return pm, plugin


def build(pm, device: str = "cpu", **settings):  # type: ignore[no-untyped-def]
    return pm.hook.convbench_build_model(framework="fakefw", model=MODEL, device=device, settings=settings)


def test_answers_for_its_own_framework_only(pm_and_plugin):
    pm, plugin = pm_and_plugin
    assert build_registries(pm).frameworks.names() == ["fakefw"]
    assert pm.hook.convbench_build_model(framework="other", model=MODEL, device="cpu", settings={}) is None
    assert pm.hook.convbench_discover_devices(framework="other") is None
    assert pm.hook.convbench_discover_devices(framework="fakefw")[0].name == "cpu"
    kind, execution = build(pm, "cuda", compile="default", layout="native", precision="fp16")
    assert kind == "built" and (execution.compile, execution.layout, execution.precision) == ("jit", "nhwc", "fp16")
    assert execution.device == Device("cuda", 0) and execution.half


def test_runtime_versions_come_from_the_plugin(pm_and_plugin):
    pm, plugin = pm_and_plugin
    assert pm.hook.convbench_runtime_versions(framework="other") is None
    assert pm.hook.convbench_runtime_versions(framework="fakefw") == {"cuda_runtime": None, "cudnn": None, "nccl": None}
    plugin.runtime_versions = lambda: {"cuda_runtime": "12.4", "cudnn": "9.1.0", "nccl": "2.21.5"}
    assert pm.hook.convbench_runtime_versions(framework="fakefw")["nccl"] == "2.21.5"


def test_sync_and_peak_are_for_gpus_unless_the_framework_is_asynchronous(pm_and_plugin):
    pm, plugin = pm_and_plugin
    assert pm.hook.convbench_synchronize(framework="fakefw", device="cpu") is None
    assert pm.hook.convbench_peak_memory_mb(framework="fakefw", device="cpu", reset=False) is None
    assert pm.hook.convbench_synchronize(framework="fakefw", device="cuda:1") is True
    assert pm.hook.convbench_peak_memory_mb(framework="fakefw", device="cuda:1", reset=False) == 1.5
    assert plugin.calls == [("sync", "cuda:1"), ("peak", "cuda:1")]
    plugin.async_on_cpu = True   # an instance attribute overrides the class default
    assert pm.hook.convbench_synchronize(framework="fakefw", device="cpu") is True and plugin.calls[-1] == ("sync", "cpu")


@pytest.mark.parametrize("device, settings, message", [
    ("tpu", {}, r"^unknown device 'tpu'; use cpu, cuda or cuda:N$"),
    ("cpu", {"compile": "xla"}, r"^fakefw has no compile mode 'xla'; use one of auto, none, default$"),
    ("cpu", {"compile": "jitt"}, r"^unknown compile mode 'jitt'; known: auto, default, none, xla$"),
    ("cpu", {"layout": "nchw"}, r"^fakefw has no layout 'nchw'; use one of native, nhwc$"),
    ("cpu", {"precision": "fp61"}, r"^unknown precision 'fp61' \(did you mean 'fp16'\?\); known: bf16, fp16, fp32$"),
    ("cpu", {"precision": "fp16"}, r"^fakefw fp16 needs a GPU; use --precision fp32 or bf16 on cpu$"),
])
def test_settings_are_refused_in_one_line(pm_and_plugin, device, settings, message):
    with pytest.raises(ConvbenchError, match=message):
        build(pm_and_plugin[0], device, **settings)


def test_a_device_kind_the_framework_lacks():
    class CpuOnly(Fake):
        spec = FrameworkSpec("cpuonly", "json", ("convbench",), ("cpu",))
    with pytest.raises(ConvbenchError, match="cpuonly cannot run on device 'cuda:0'; it supports cpu"):
        CpuOnly().native(MODEL, "cuda")
