"""JAX devices: discovery, convbench device strings -> jax.Device, synchronisation and peak memory."""
from __future__ import annotations

import os
import platform
import sys
from typing import Any

from harness.devices import Device, absent
from harness.frameworks import DeviceInfo

# Outputs of steps dispatched since the last synchronisation (small arrays: a loss or the logits), per stream of
# steps (a phase). A stream whose steps are chained (each takes the previous one's outputs: a train step's
# parameters, a forward_backward's key) or run in order (a GPU's one compute stream) keeps only its latest output:
# it is ready only when all before it are. Independent forwards on the CPU may run concurrently, so all of theirs
# are kept, up to _MAX_INDEPENDENT, far above any timed window's --steps: no wait falls inside a pipelined window,
# as none does in the other frameworks.
_PENDING: dict[str, list[Any]] = {}
_MAX_INDEPENDENT = 4096


def configure_threads(threads: int | None) -> None:
    """XLA's CPU thread pool is sized from $NPROC when the backend starts; later calls change nothing."""
    if threads and "jax" not in sys.modules:
        os.environ["NPROC"] = str(int(threads))


def _gpus() -> list[Any]:
    import jax
    try:
        return list(jax.devices("gpu"))
    except RuntimeError:  # a CPU-only jaxlib, or no usable GPU
        return []


def discover() -> list[DeviceInfo]:
    devices = [DeviceInfo("cpu", platform.processor() or platform.machine())]
    for i, gpu in enumerate(_gpus()):
        stats = gpu.memory_stats() or {}
        limit = stats.get("bytes_limit")
        devices.append(DeviceInfo(f"cuda:{i}", str(gpu.device_kind), limit / 2**20 if limit else None))
    return devices


def runtime_versions() -> dict[str, str | None]:
    """XLA's GPU backend reports its CUDA platform version; jaxlib's CUDA plugin the cuDNN it loaded."""
    gpus = _gpus()
    cuda = str(gpus[0].client.platform_version) if gpus else None
    cudnn = None
    if gpus:
        try:
            from jax._src.lib import cuda_versions  # jaxlib's CUDA plugin (absent in CPU-only jaxlib)
            cudnn = str(cuda_versions.cudnn_get_version()) if cuda_versions else None
        except (ImportError, AttributeError):
            pass
    return {"cuda_runtime": cuda, "cudnn": cudnn, "nccl": None}


def jax_device(device: Device) -> Any:
    """``cpu`` -> the CPU device, ``cuda:N`` -> the N-th GPU; a one-line ConvbenchError if absent."""
    import jax
    if not device.is_gpu:
        return jax.devices("cpu")[0]
    gpus = _gpus()
    if device.index is None or device.index >= len(gpus):
        hint = "" if gpus else " (CPU-only jaxlib? pip install 'convbench-jax[cuda]')"
        raise absent(device, "jax", len(gpus), hint)
    return gpus[device.index]


def track(output: Any, stream: str, ordered: bool) -> None:
    """Remembers a dispatched step's output for the next ``synchronize``. ``ordered``: the stream's steps finish
    in order (chained, or on a GPU), so its latest output stands for all; else all are kept (bounded)."""
    kept = _PENDING.setdefault(stream, [])
    if ordered:
        kept.clear()
    elif len(kept) >= _MAX_INDEPENDENT:
        synchronize()
    _PENDING.setdefault(stream, []).append(output)


def synchronize() -> None:
    """Blocks until every tracked step has finished (JAX has no device-wide barrier for computations)."""
    outputs = [o for kept in _PENDING.values() for o in kept]
    if outputs:
        import jax
        jax.block_until_ready(outputs)
    _PENDING.clear()


def peak_memory_mb(device: Device, reset: bool) -> float | None:
    """Peak bytes in use by XLA's GPU allocator. JAX cannot reset the counter (``peak_bytes_in_use`` is the
    process's maximum), so it covers the process's life, like ru_maxrss on cpu: ``reset`` answers None, the
    contract's "this counter cannot be reset"."""
    if reset:
        return None
    stats = jax_device(device).memory_stats() or {}
    return stats.get("peak_bytes_in_use", 0) / 2**20
