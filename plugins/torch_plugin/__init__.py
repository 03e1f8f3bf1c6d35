"""PyTorch plugin. Torch is imported only by the hooks that run inside a torch worker."""
from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.frameworks import DeviceInfo, FrameworkSpec

NAME = "torch"
SPEC = FrameworkSpec(NAME, "torch", ("torch",), ("cpu", "cuda"), data_parallel="processes")


@hookimpl
def convbench_add_frameworks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(NAME, SPEC)


@hookimpl
def convbench_build_model(framework: str, model, device: str, settings: dict[str, Any]):  # type: ignore[no-untyped-def]
    if framework != NAME:
        return None
    from plugins.torch_plugin.model import TorchModel
    return TorchModel(model, device, settings)


@hookimpl
def convbench_discover_devices(framework: str) -> list[DeviceInfo] | None:
    if framework != NAME:
        return None
    from plugins.torch_plugin.device import discover
    return discover()


@hookimpl
def convbench_synchronize(framework: str, device: str) -> bool | None:
    if framework != NAME or not device.startswith("cuda"):
        return None
    import torch
    torch.cuda.synchronize(device)
    return True


@hookimpl
def convbench_peak_memory_mb(framework: str, device: str, reset: bool) -> float | None:
    if framework != NAME or not device.startswith("cuda"):
        return None
    import torch
    if reset:
        torch.cuda.reset_peak_memory_stats(device)
        return 0.0
    return torch.cuda.max_memory_allocated(device) / 2**20
