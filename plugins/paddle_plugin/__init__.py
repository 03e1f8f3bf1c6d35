"""PaddlePaddle plugin. Paddle is imported only by the hooks that run inside a paddle worker:
importing it here would load it into the orchestrator (and it sets OMP_NUM_THREADS=1 when unset)."""
from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.frameworks import DeviceInfo, FrameworkSpec

NAME = "paddle"
SPEC = FrameworkSpec(NAME, "paddle", ("paddlepaddle", "paddlepaddle-gpu"), ("cpu", "cuda"),
                     data_parallel="processes")  # paddle.DataParallel, one worker per device (gloo on CPU)


@hookimpl
def convbench_add_frameworks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(NAME, SPEC)


@hookimpl
def convbench_build_model(framework: str, model, device: str, settings: dict[str, Any]):  # type: ignore[no-untyped-def]
    if framework != NAME:
        return None
    from plugins.paddle_plugin.model import PaddleModel
    return PaddleModel(model, device, settings)


@hookimpl
def convbench_discover_devices(framework: str) -> list[DeviceInfo] | None:
    if framework != NAME:
        return None
    from plugins.paddle_plugin.device import discover
    return discover()


@hookimpl
def convbench_synchronize(framework: str, device: str) -> bool | None:
    # paddle.device.synchronize() raises on CPU builds: the built-in cpu plugin answers for "cpu"
    if framework != NAME or not device.startswith("cuda"):
        return None
    import paddle

    from plugins.paddle_plugin.device import paddle_place
    paddle.device.synchronize(paddle_place(device))
    return True


@hookimpl
def convbench_peak_memory_mb(framework: str, device: str, reset: bool) -> float | None:
    if framework != NAME or not device.startswith("cuda"):
        return None
    import paddle

    from plugins.paddle_plugin.device import paddle_place
    place = paddle_place(device)
    if reset:
        paddle.device.cuda.reset_max_memory_allocated(place)
        return 0.0
    return paddle.device.cuda.max_memory_allocated(place) / 2**20
