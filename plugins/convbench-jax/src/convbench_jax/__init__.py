"""JAX plugin for convbench. JAX is imported only by the hooks that run inside a jax worker.

Registered through the ``convbench`` entry-point group under the name ``jax`` (see pyproject.toml).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness import hookimpl
from harness.frameworks import DeviceInfo, FrameworkSpec

if TYPE_CHECKING:
    from harness.graph import ModelDef
    from harness.native import NativeModel
    from harness.registry import Registry

__version__ = "0.1.0"

NAME = "jax"
# No preallocation: JAX would otherwise map 75% of GPU memory at start (like TF without memory growth).
SPEC = FrameworkSpec(NAME, "jax", ("jax",), ("cpu", "cuda"), env={"XLA_PYTHON_CLIENT_PREALLOCATE": "false"})


def _handles(framework: str, device: str) -> bool:
    return framework == NAME and (device == "cpu" or device == "cuda" or device.startswith("cuda:"))


@hookimpl
def convbench_add_frameworks(registry: "Registry[FrameworkSpec]") -> None:
    registry.add(NAME, SPEC)


@hookimpl
def convbench_build_model(framework: str, model: "ModelDef", device: str,
                          settings: dict[str, Any]) -> "NativeModel | None":
    if framework != NAME:
        return None
    from convbench_jax.device import configure_threads
    configure_threads(settings.get("threads"))
    from convbench_jax.model import JaxModel
    return JaxModel(model, device, settings)


@hookimpl
def convbench_discover_devices(framework: str) -> list[DeviceInfo] | None:
    if framework != NAME:
        return None
    from convbench_jax.device import discover
    return discover()


@hookimpl
def convbench_synchronize(framework: str, device: str) -> bool | None:
    # JAX dispatches asynchronously on the CPU too, so this answers for cpu before the built-in plugin.
    if not _handles(framework, device):
        return None
    from convbench_jax.device import synchronize
    synchronize()
    return True


@hookimpl
def convbench_peak_memory_mb(framework: str, device: str, reset: bool) -> float | None:
    if not _handles(framework, device) or device == "cpu":
        return None  # cpu: the built-in plugin answers ru_maxrss
    from convbench_jax.device import peak_memory_mb
    return peak_memory_mb(device, reset)
