"""Data-parallel training with paddle's own engine: ``paddle.distributed.init_parallel_env`` and
``paddle.DataParallel``, one process per device, started by the harness with the variables
``paddle.distributed.launch`` would set (PADDLE_TRAINER_ID, PADDLE_TRAINERS_NUM, ...)."""
from __future__ import annotations

import os

import numpy as np
import paddle
import paddle.distributed as dist

from harness.devices import Device
from harness.errors import ConvbenchError


def init_process_group(device: Device, rank: int, world: int) -> None:
    """Joins the job's default process group: gloo for CPU processes, NCCL for GPUs.

    On CPU, paddle's default backend ("auto") takes the legacy GLOOParallelContext path, which makes
    no default group, and ``paddle.DataParallel`` then fails with "Call
    paddle.distributed.init_parallel_env first"; PADDLE_DISTRI_BACKEND=gloo selects the
    ProcessGroupGloo path instead. The TCP store listens on PADDLE_MASTER (else on the first trainer
    endpoint, a port nobody checked was free): point it at MASTER_ADDR:MASTER_PORT, the port the
    harness picked as free."""
    env = os.environ  # paddle reads these at init_parallel_env (the C++ store too: os.environ sets putenv)
    given = (env.get("PADDLE_TRAINER_ID"), env.get("PADDLE_TRAINERS_NUM"))
    if given != (str(rank), str(world)):
        raise ConvbenchError(f"paddle data parallel: rank {rank} of {world} asked for, but the environment has "
                             f"PADDLE_TRAINER_ID={given[0]} PADDLE_TRAINERS_NUM={given[1]}")
    if device.is_gpu:
        env["PADDLE_DISTRI_BACKEND"] = "nccl"
        env["FLAGS_selected_gpus"] = str(device.index)  # init_parallel_env requires it on CUDA builds
    else:
        env["PADDLE_DISTRI_BACKEND"] = "gloo"
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        env["PADDLE_MASTER"] = f"{env['MASTER_ADDR']}:{env['MASTER_PORT']}"
    dist.init_parallel_env()


def wrap(layer: paddle.nn.Layer) -> paddle.DataParallel:
    """Gradients are averaged over the processes during backward; the parameters are broadcast from
    rank 0 here. Batch-norm statistics stay each process's own (paddle does not broadcast buffers
    at each forward as torch's DDP does; either way rank 0's come from rank 0's slices only)."""
    return paddle.DataParallel(layer)


def mean_over_processes(values: paddle.Tensor, world: int) -> list[float]:
    """The mean over every process of the job, element by element (each process's losses -> the global batch's)."""
    total = values.detach().clone()
    dist.all_reduce(total)  # sum
    return [float(v) / world for v in total.numpy().reshape(-1)]


def from_rank_0(values: list[float]) -> list[float]:
    """Rank 0's ``values`` on every process (a broadcast), so a decision made on them is the same everywhere."""
    shared = paddle.to_tensor(np.asarray(values, dtype=np.float64))
    dist.broadcast(shared, src=0)
    return [float(v) for v in shared.numpy().reshape(-1)]
