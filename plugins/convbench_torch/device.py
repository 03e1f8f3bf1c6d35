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
            devices.append(DeviceInfo(f"cuda:{i}", props.name, props.total_memory / 2**20, pci_bus_id(props)))
    return devices


def pci_bus_id(props: object) -> str | None:
    """The GPU's PCI address from torch's device properties (``pci_domain_id``, ``pci_bus_id``, ``pci_device_id``,
    as torch/numa/binding.py reads them), None on a torch without them."""
    parts = [getattr(props, f"pci_{part}_id", None) for part in ("domain", "bus", "device")]
    if not all(isinstance(p, int) for p in parts):
        return None
    domain, bus, device = parts
    return f"{domain:04x}:{bus:02x}:{device:02x}.0"


class CudaEvents:
    """The device's own clock: CUDA events recorded on the current stream (``convbench doctor``'s clock check)."""

    def mark(self) -> object:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start: object, end: object) -> float:
        end.synchronize()  # type: ignore[attr-defined]
        return start.elapsed_time(end) / 1000   # type: ignore[attr-defined]


def torch_device(device: Device) -> torch.device:
    """The torch device of a parsed convbench device; ConvbenchError if torch does not see it."""
    if not device.is_gpu:
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.index is None or device.index >= count:
        raise absent(device, "torch", count)
    return torch.device("cuda", device.index)
