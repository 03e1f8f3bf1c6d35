"""Torch device discovery and selection."""
from __future__ import annotations

import platform

import torch

from harness.errors import ConvbenchError
from harness.frameworks import DeviceInfo


def discover() -> list[DeviceInfo]:
    devices = [DeviceInfo("cpu", platform.processor() or platform.machine())]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append(DeviceInfo(f"cuda:{i}", props.name, props.total_memory / 2**20))
    return devices


def torch_device(device: str) -> torch.device:
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConvbenchError(f"device {device!r} asked for, but torch sees no CUDA device")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConvbenchError(f"device {device!r} does not exist; torch sees {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise ConvbenchError(f"torch cannot run on device {device!r}; use cpu or cuda[:N]")
