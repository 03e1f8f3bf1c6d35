"""TensorFlow plugin. TensorFlow is imported only by the hooks that run inside a tensorflow worker."""
from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.frameworks import DeviceInfo, FrameworkSpec

NAME = "tensorflow"
# data parallel: one worker drives every device with tf.distribute.MirroredStrategy (parallel.py)
SPEC = FrameworkSpec(NAME, "tensorflow", ("tensorflow", "tensorflow-cpu"), ("cpu", "cuda"), data_parallel="devices")


def _handles(framework: str, device: str) -> bool:
    return framework == NAME and device.startswith("cuda")


@hookimpl
def convbench_add_frameworks(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(NAME, SPEC)


@hookimpl
def convbench_build_model(framework: str, model, device: str, settings: dict[str, Any]):  # type: ignore[no-untyped-def]
    if framework != NAME:
        return None
    from plugins.tensorflow_plugin.model import TFModel
    return TFModel(model, device, settings)


@hookimpl
def convbench_discover_devices(framework: str) -> list[DeviceInfo] | None:
    if framework != NAME:
        return None
    from plugins.tensorflow_plugin.device import discover
    return discover()


@hookimpl
def convbench_synchronize(framework: str, device: str) -> bool | None:
    if not _handles(framework, device):
        return None
    import tensorflow as tf
    tf.test.experimental.sync_devices()
    return True


@hookimpl
def convbench_peak_memory_mb(framework: str, device: str, reset: bool) -> float | None:
    if not _handles(framework, device):
        return None
    import tensorflow as tf

    from plugins.tensorflow_plugin.device import memory_key
    if reset:
        tf.config.experimental.reset_memory_stats(memory_key(device))
        return 0.0
    return tf.config.experimental.get_memory_info(memory_key(device))["peak"] / 2**20
