"""Paddle device discovery and selection; convbench's ``cuda:N`` is paddle's ``gpu:N``."""
from __future__ import annotations

import functools
import platform

import paddle

from harness.errors import ConvbenchError
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
def paddle_place(device: str) -> str:
    """The paddle device string for a convbench device; ConvbenchError if it is absent."""
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not paddle.is_compiled_with_cuda():
            raise ConvbenchError(f"device {device!r} asked for, but this paddle build has no CUDA "
                                 "(install paddlepaddle-gpu from PaddlePaddle's package index)")
        index_text = device.split(":", 1)[1] if ":" in device else "0"
        if not index_text.isdigit():
            raise ConvbenchError(f"bad device {device!r}; use cpu or cuda[:N]")
        count = _gpu_count()
        if int(index_text) >= count:
            raise ConvbenchError(f"device {device!r} does not exist; paddle sees {count} CUDA device(s)")
        return f"gpu:{index_text}"
    raise ConvbenchError(f"paddle cannot run on device {device!r}; use cpu or cuda[:N]")
