"""Device strings: one parser, one set of messages, wherever a device is typed."""
from __future__ import annotations

import pytest

from harness.devices import CPU, Device, absent, parse_device, parse_gpu_list, visible_ids
from harness.errors import ConvbenchError


@pytest.mark.parametrize("text, device", [("cpu", CPU), ("cuda", Device("cuda", 0)), ("cuda:0", Device("cuda", 0)),
                                          ("cuda:12", Device("cuda", 12))])
def test_parse(text: str, device: Device):
    assert parse_device(text) == device and parse_device(device) is device
    assert parse_device(text).name == device.name and str(device) == device.name


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:x", "CPU", "cuda:-1", "tpu", "", "cpu:0"])
def test_bad_strings_are_one_line_errors(text: str):
    with pytest.raises(ConvbenchError, match=r"^unknown device .*; use cpu, cuda or cuda:N$"):
        parse_device(text)


def test_gpu_lists_refuse_cpus_and_duplicates():
    assert [d.name for d in parse_gpu_list(["cuda:1", "cuda"])] == ["cuda:1", "cuda:0"]
    with pytest.raises(ConvbenchError, match="takes GPUs as cuda:N, got cpu"):
        parse_gpu_list(["cpu", "cuda:0"])
    with pytest.raises(ConvbenchError, match="names cuda:0 twice"):
        parse_gpu_list(["cuda:0", "cuda"])


def test_absent_gpu_message():
    assert str(absent(Device("cuda", 3), "torch", 2)) == "device 'cuda:3' is not available: torch sees 2 GPU(s)"
    assert "sees no GPU (hint)" in str(absent(Device("cuda", 0), "jax", 0, " (hint)"))


def test_a_worker_names_its_visible_gpus_from_zero():
    visible = (Device("cuda", 3), Device("cuda", 1))
    assert Device("cuda", 1).local(visible) == Device("cuda", 1) and Device("cuda", 3).local(visible) == Device("cuda", 0)
    assert CPU.local(visible) is CPU and Device("cuda", 3).local(None) == Device("cuda", 3)
    assert CPU.is_cpu and not CPU.is_gpu and Device("cuda", 0).is_gpu


def test_visible_ids_follow_a_parent_list():
    gpus = [Device("cuda", 1), Device("cuda", 0)]
    assert visible_ids(gpus, None) == ["1", "0"] and visible_ids(gpus, "GPU-a, GPU-b") == ["GPU-b", "GPU-a"]
    with pytest.raises(ConvbenchError, match="CUDA_VISIBLE_DEVICES='5' shows 1 GPU"):
        visible_ids(gpus, "5")
