"""Data-parallel training with torch's own engine: DistributedDataParallel, one process per device, started by
the harness with the variables torchrun would set (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def distributed(net: torch.nn.Module, device: torch.device, rank: int, world: int) -> torch.nn.Module:
    """DistributedDataParallel over a process group set up from torchrun's variables (the harness
    sets them): gloo on CPU, NCCL on GPUs. Gradients are averaged; batch-norm statistics are each
    process's own, with rank 0's buffers broadcast at every forward (DDP's default)."""
    cuda = device.type == "cuda"
    if cuda:  # NCCL binds the communicator to the current device: set it to this rank's before init
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://", rank=rank, world_size=world)
    return DistributedDataParallel(net, device_ids=[device.index] if cuda else None)


def mean_over_processes(values: torch.Tensor, world: int) -> torch.Tensor:
    """The mean over every process of the job, element by element (each process's losses -> the global batch's)."""
    dist.all_reduce(values)
    return values / world
