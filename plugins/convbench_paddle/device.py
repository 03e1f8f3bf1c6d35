"""Paddle device discovery and selection; convbench's ``cuda:N`` is paddle's ``gpu:N``."""
from __future__ import annotations

import functools
import platform

import paddle

from harness.devices import Device, absent
from harness.frameworks import DeviceInfo


def _gpu_count() -> int:
    if not paddle.is_compiled_with_cuda():
        return 0
    return paddle.device.cuda.device_count()


def discover() -> list[DeviceInfo]:
    devices = [DeviceInfo("cpu", platform.processor() or platform.machine())]
    for i in range(_gpu_count()):
        props = paddle.device.cuda.get_device_properties(i)
        devices.append(DeviceInfo(f"cuda:{i}", props.name, props.total_memory / 2**20))
    return devices


@functools.lru_cache(maxsize=None)  # called before every clock reading on a GPU
def paddle_place(device: Device) -> str:
    """The paddle device string for a convbench device (``cuda:N`` is paddle's ``gpu:N``); ConvbenchError if absent."""
    if not device.is_gpu:
        return "cpu"
    count = _gpu_count()
    if device.index is None or device.index >= count:
        hint = "" if paddle.is_compiled_with_cuda() else \
            " (this paddle build has no CUDA: install paddlepaddle-gpu from PaddlePaddle's package index)"
        raise absent(device, "paddle", count, hint)
    return f"gpu:{device.index}"
