"""Data parallel inside one worker: tf.distribute.MirroredStrategy over several devices of this process.

``--nproc N`` (``DataParallel`` of ``world_size`` N, ``devices`` None or N x ``cpu``) splits the physical CPU into N
logical CPU devices; ``--devices cuda:0,cuda:1`` mirrors over those GPUs. Every variable created under
``scope()`` is a MirroredVariable: one copy per device, all equal. A train step runs once per replica
(``strategy.run``) on the replica's contiguous slice of the global batch; gradients are averaged by an
all-reduce (MEAN) inside the replica function, so each replica applies the same update to its own copy.

Reductions: on CPU, ``ReductionToOneDevice`` (each replica's tensor copied to the first device, summed
there with add_n in replica order, divided by N, copied back): every replica gets the same bits, and a
run reproduces them. On GPUs, TF's default for one machine (NCCL all-reduce), deterministic for a fixed
set of devices.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import tensorflow as tf

from convbench_tensorflow.device import tf_device
from harness.devices import Device, parse_gpu_list
from harness.errors import ConvbenchError
from harness.settings import DataParallel

MEAN = tf.distribute.ReduceOp.MEAN


class ReplicaDevices(NamedTuple):
    """The TF devices of a data-parallel cell; ``cpu``: logical devices of the physical CPU (from the cell's
    typed devices), else GPUs."""
    names: list[str]
    cpu: bool


def replica_devices(device: Device, parallel: DataParallel | None) -> ReplicaDevices | None:
    """The TF devices of a data-parallel cell (None for a single-device one). For CPU replicas this
    also splits the physical CPU into logical devices, which TF allows only before its runtime starts."""
    if parallel is None or parallel.mode != "devices" or parallel.world_size <= 1:
        return None
    world, listed = parallel.world_size, list(parallel.devices or ())
    if any(d.is_gpu for d in listed):
        gpus = parse_gpu_list([d.name for d in listed])  # GPUs only, each once
        if len(gpus) != world:
            raise ConvbenchError(f"tensorflow data parallel: {world} devices needed, got "
                                 f"{', '.join(d.name for d in listed)}")
        return ReplicaDevices([tf_device(d) for d in gpus], cpu=False)
    if device.is_gpu:
        raise ConvbenchError(f"--nproc {world} means {world} CPU replicas, but the cell's device is {device.name!r}; "
                             f"use --devices cuda:0,cuda:1 for GPUs")
    split_cpu(world)
    return ReplicaDevices([f"/CPU:{i}" for i in range(world)], cpu=True)


def split_cpu(n: int) -> None:
    """N logical CPU devices on the physical CPU (they share its thread pools)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError:  # the runtime started already (another model in this process): use what is there
        have = len(tf.config.list_logical_devices("CPU"))
        if have < n:
            raise ConvbenchError(f"tensorflow data parallel needs {n} logical CPU devices, but the runtime of this "
                                 f"process started with {have}; run the cell in a fresh process") from None


class Replicas:
    """A MirroredStrategy over ``devices`` and the few operations the model needs of it."""

    def __init__(self, replica_devices: ReplicaDevices) -> None:
        self.devices = devices = replica_devices.names
        ops = (tf.distribute.ReductionToOneDevice(reduce_to_device=devices[0])
               if replica_devices.cpu else None)  # None: TF picks NCCL for GPUs
        self.strategy = tf.distribute.MirroredStrategy(devices, cross_device_ops=ops)
        self.world = self.strategy.num_replicas_in_sync

    def scope(self) -> Any:
        return self.strategy.scope()

    def distribute(self, array: np.ndarray, convert: Callable[[np.ndarray], tf.Tensor]) -> Any:
        """PerReplica values: replica i gets ``convert`` of the i-th contiguous slice, made on its device
        (the same slices as the harness's ``shard_of`` would give process i)."""
        n = len(array)

        def slice_for(ctx: tf.distribute.experimental.ValueContext) -> tf.Tensor:
            i = ctx.replica_id_in_sync_group
            with tf.device(self.devices[i]):
                return convert(array[i * n // self.world:(i + 1) * n // self.world])
        return self.strategy.experimental_distribute_values_from_function(slice_for)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.strategy.run(fn, args=args)

    def mean(self, per_replica: Any) -> tf.Tensor:
        """The mean over replicas of a per-replica scalar (a replica's loss -> the global batch's, as the
        slices are equal)."""
        return self.strategy.reduce(MEAN, per_replica, axis=None)

    def local(self, value: Any) -> tuple[Any, ...]:
        return self.strategy.experimental_local_results(value)


def all_reduce_mean(grads: list[tf.Tensor | None]) -> list[tf.Tensor | None]:
    """In a replica function: every replica's gradients averaged over the replicas (None stays None).
    Outside a strategy (one replica) the gradients are returned as they are."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return grads
    present = [i for i, gr in enumerate(grads) if gr is not None]
    reduced = ctx.all_reduce(MEAN, [grads[i] for i in present])
    out = list(grads)
    for i, gr in zip(present, reduced):
        out[i] = gr
    return out
