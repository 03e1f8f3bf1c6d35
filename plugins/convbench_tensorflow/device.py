"""TensorFlow device discovery, device-string mapping and one-time runtime settings."""
from __future__ import annotations

import platform
import warnings

import tensorflow as tf

from harness.devices import Device, absent
from harness.frameworks import DeviceInfo


def enable_memory_growth() -> None:
    """Stops TF from mapping nearly all GPU memory at start; must run before the first GPU op."""
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPUs were initialised already (a second model in one process)
            pass


def discover() -> list[DeviceInfo]:
    enable_memory_growth()
    devices = [DeviceInfo("cpu", platform.processor() or platform.machine())]
    for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
        details = tf.config.experimental.get_device_details(gpu)
        devices.append(DeviceInfo(f"cuda:{i}", str(details.get("device_name", gpu.name))))
    return devices


def tf_device(device: Device) -> str:
    """Maps convbench's ``cpu`` / ``cuda:N`` to TF's ``/CPU:0`` / ``/GPU:N``; raises for absent devices."""
    if not device.is_gpu:
        return "/CPU:0"
    count = len(tf.config.list_physical_devices("GPU"))
    if device.index is None or device.index >= count:
        raise absent(device, "tensorflow", count)
    return f"/GPU:{device.index}"


def memory_key(device: Device) -> str:
    """The device name tf.config.experimental.get_memory_info expects (``GPU:N``)."""
    return tf_device(device).lstrip("/")


def configure(threads: int | None, seed: int) -> None:
    """Thread pools (only settable before the runtime starts), GPU memory growth, global seed."""
    enable_memory_growth()
    if threads:
        inter = 1 if threads <= 2 else 2  # the same rule the runner puts in TF_NUM_INTEROP_THREADS
        for setter, value in ((tf.config.threading.set_intra_op_parallelism_threads, threads),
                              (tf.config.threading.set_inter_op_parallelism_threads, inter)):
            try:
                setter(value)
            except RuntimeError:
                warnings.warn(f"tensorflow runtime already started; {setter.__name__}({value}) ignored",
                              stacklevel=2)
    tf.random.set_seed(seed)
