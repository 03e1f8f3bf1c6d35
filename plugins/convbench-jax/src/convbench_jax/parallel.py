"""Data parallel inside one worker, as a JAX user writes it: a ``Mesh`` over this process's devices with one axis
("data"), the global batch sharded along it, everything else replicated, the train step under ``shard_map``.

``--nproc N`` (``DataParallel`` of mode "devices", ``world_size`` N, ``devices`` N x ``cpu``) splits XLA's host
platform into N CPU devices (``jax_num_cpu_devices``, the config form of
``--xla_force_host_platform_device_count``; both are read when the CPU backend starts, so the first model built
in the worker sets it); ``--devices cuda:0,cuda:1`` meshes over those GPUs (XLA's collectives, NCCL on GPUs).

Placement: the batch is ``NamedSharding(mesh, P("data"))``, so replica i holds the i-th contiguous slice of the
global batch (the slices the harness's ``shard_of`` would give process i); parameters, batch-norm statistics,
momentum buffers, the PRNG key and the fp16 loss scale are ``P()``, one identical copy per device.

Why shard_map rather than jit's automatic partitioning of the one-device step: under plain ``jax.jit`` with a
sharded batch, XLA (GSPMD) computes the *global* program, so batch norm would normalise with the statistics of
the whole global batch (a cross-replica sync batch norm), which is not what the other frameworks do and not what
a user of per-device data parallel gets. Inside ``shard_map`` the step body runs per replica on its own slice, so
the rule every other framework here follows is explicit in the code: batch norm normalises with the replica's
own slice (like torch's DDP without SyncBatchNorm, TF's MirroredStrategy, paddle.DataParallel), then
``lax.pmean`` over the axis gives the loss (the global batch's mean, as the slices are equal) and the batch-norm
running statistics (averaged, as TF's MirroredStrategy aggregates them; torch's DDP broadcasts rank 0's and Paddle
keeps each rank's); the gradient of that mean loss with respect to the replicated parameters is the mean of the
replicas' gradients, all-reduced by shard_map's autodiff, and every copy applies the same update (``steps``).
shard_map's replication check (``check_vma``) proves at trace time that every output declared ``P()`` really is
the same on every replica. Dropout draws a replica's masks from the step key folded with its index on the axis,
so the replicas' masks are independent, as one device's over the whole batch would be.

Forward and evaluation are the one-device functions under jit on the sharded (or, when the batch does not split
evenly, replicated) input: no batch statistics are involved, so GSPMD's global program computes them exactly.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from convbench_jax.device import jax_device
from convbench_jax.steps import Steps
from harness.devices import Device, parse_gpu_list
from harness.errors import ConvbenchError
from harness.settings import DataParallel

AXIS = "data"


def replica_devices(device: Device, parallel: DataParallel | None) -> list[Any] | None:
    """The jax devices of a data-parallel cell (None for a single-device one). For CPU replicas this also
    splits XLA's host platform into ``world_size`` devices, which JAX allows only before its CPU backend starts."""
    if parallel is None or parallel.world_size <= 1:
        return None
    if parallel.mode != "devices":
        raise ConvbenchError(f"jax data parallel: one worker drives every device (mode 'devices'), "
                             f"not {parallel.mode!r}")
    if not hasattr(jax, "shard_map"):   # the plugin's floor (jax 0.4.30) predates it; single-device cells run
        raise ConvbenchError(f"jax data parallel needs jax.shard_map, which jax {jax.__version__} lacks; "
                             f"upgrade jax (pip install -U jax) or run jax single-device")
    world, listed = parallel.world_size, list(parallel.devices or ())
    if any(d.is_gpu for d in listed):
        gpus = parse_gpu_list([d.name for d in listed])  # GPUs only, each once
        if len(gpus) != world:
            raise ConvbenchError(f"jax data parallel: {world} devices needed, got {', '.join(d.name for d in listed)}")
        return [jax_device(d) for d in gpus]
    if device.is_gpu:
        raise ConvbenchError(f"--nproc {world} means {world} CPU replicas, but the cell's device is {device.name!r}; "
                             f"use --devices cuda:0,cuda:1 for GPUs")
    return cpu_devices(world)


def cpu_devices(n: int) -> list[Any]:
    """``n`` devices of XLA's host platform (they share its thread pool, as TF's logical CPU devices do)."""
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backend started already (another model in this process): use what is there
        pass
    have = jax.devices("cpu")
    if len(have) < n:
        raise ConvbenchError(f"jax data parallel needs {n} CPU devices, but the CPU backend of this process "
                             f"started with {len(have)}; run the cell in a fresh process") from None
    return list(have[:n])


class Replicas:
    """A one-axis mesh over ``devices`` and the placements and step wrapping the model needs of it."""

    def __init__(self, devices: list[Any]) -> None:
        self.devices = devices
        self.world = len(devices)
        self.mesh = Mesh(np.array(devices), (AXIS,))
        self.replicated = NamedSharding(self.mesh, P())
        self.split = NamedSharding(self.mesh, P(AXIS))

    def shard(self, array: np.ndarray) -> jax.Array:
        """The global batch as one array, replica i holding the i-th contiguous slice (it must split evenly)."""
        if len(array) % self.world:
            raise ConvbenchError(f"a batch of {len(array)} does not split evenly over {self.world} replicas")
        return jax.device_put(array, self.split)

    def spread(self, array: np.ndarray) -> jax.Array:
        """An evaluation batch: sharded when it splits evenly, else one copy on every replica."""
        return jax.device_put(array, self.replicated if len(array) % self.world else self.split)

    def steps(self, steps: Steps) -> Steps:
        """The data-parallel steps from ``make_steps(..., axis=AXIS)``'s: gradients and the train step per replica
        under shard_map (batch ``P("data")``, all else ``P()``); logits and evaluation as they are."""
        batch = (P(AXIS), P(AXIS))
        grads = self._map(steps.grads, (P(), P(), P(), P(), *batch))  # (params, stats, key, scale, x, y)
        train = self._map(steps.train, (P(), P(), P(), P(), P(), *batch, P()))  # (..., x, y, lr)
        return Steps(steps.logits, steps.evaluate, grads, train)

    def _map(self, fn: Callable[..., Any], in_specs: tuple[Any, ...]) -> Callable[..., Any]:
        # check_vma: outputs declared P() are proven equal on every replica, and the gradient's mean relies on it
        return jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=P(), check_vma=True)
