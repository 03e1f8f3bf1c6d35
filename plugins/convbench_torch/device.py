"""Torch device discovery and selection."""
from __future__ import annotations

import platform

import torch

from harness.devices import Device, absent
from harness.frameworks import DeviceInfo


def discover() -> list[DeviceInfo]:
    devices = [DeviceInfo("cpu", platform.processor() or platform.machine())]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(DeviceInfo(f"cuda:{i}", props.name, props.total_memory / 2**20))
    return devices


def torch_device(device: Device) -> torch.device:
    """The torch device of a parsed convbench device; ConvbenchError if torch does not see it."""
    if not device.is_gpu:
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.index is None or device.index >= count:
        raise absent(device, "torch", count)
    return torch.device("cuda", device.index)
