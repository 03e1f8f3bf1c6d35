"""``convbench run`` started by an external launcher: torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) or srun (``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``, ``SLURM_LOCALID``, with
``MASTER_ADDR`` and ``MASTER_PORT`` exported by the job script). Every launched process is one rank of every cell:
each runs the same plan, in the same order, and starts only its own rank's worker, on its node's GPU ``LOCAL_RANK``
(or the CPU), meeting the others at ``MASTER_ADDR``. Rank 0 writes the run folder; the other ranks' rows go to a
folder of their own in the temporary directory. docs/scale-out.md says how to launch it."""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Mapping

from harness.errors import ConvbenchError

DEFAULT_PORT = 29500   # torchrun's default master port; srun sets none


@dataclass(frozen=True)
class Launched:
    source: str          # "torchrun" or "srun"
    rank: int
    world: int
    local_rank: int
    local_world: int
    master_addr: str
    master_port: int

    def describe(self) -> str:
        return (f"{self.source}: rank {self.rank} of {self.world} (local rank {self.local_rank} of {self.local_world}), "
                f"rendezvous {self.master_addr}:{self.master_port}")

    def rank_env(self, port: int) -> dict[str, str]:
        """What this rank's worker gets: torchrun's variables with this cell's own port (a fresh rendezvous per cell,
        hosted by rank 0's worker), and Paddle's endpoints when every rank is on this node."""
        env = {"RANK": str(self.rank), "WORLD_SIZE": str(self.world), "LOCAL_RANK": str(self.local_rank),
               "LOCAL_WORLD_SIZE": str(self.local_world), "MASTER_ADDR": self.master_addr, "MASTER_PORT": str(port),
               "PADDLE_TRAINER_ID": str(self.rank), "PADDLE_TRAINERS_NUM": str(self.world)}
        if self.local_world == self.world:
            endpoints = [f"127.0.0.1:{port + 1 + r}" for r in range(self.world)]
            env.update(PADDLE_TRAINER_ENDPOINTS=",".join(endpoints), PADDLE_CURRENT_ENDPOINT=endpoints[self.rank])
        return env


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name)
    if value is None and default is not None:
        return default
    try:
        return int(str(value))
    except ValueError:
        raise ConvbenchError(f"${name} is {value!r}, not a whole number: is this process really started by a "
                             "launcher (torchrun, srun)?") from None


def launched(env: Mapping[str, str] | None = None) -> Launched | None:
    """This process's place in an external launch of two or more processes, or None (an ordinary run: also under
    ``torchrun --nproc-per-node 1`` or inside a one-task Slurm step, such as --executor slurm's jobs)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int(env, "WORLD_SIZE")
        if world < 2:
            return None
        if not env.get("MASTER_ADDR"):
            raise ConvbenchError("$RANK and $WORLD_SIZE are set but $MASTER_ADDR is not: start convbench with torchrun, "
                                 "or set MASTER_ADDR and MASTER_PORT as torchrun would")
        rank, local = _int(env, "RANK"), _int(env, "LOCAL_RANK", 0)
        return _checked(Launched("torchrun", rank, world, local, _int(env, "LOCAL_WORLD_SIZE", world),
                                 env["MASTER_ADDR"], _int(env, "MASTER_PORT", DEFAULT_PORT)))
    if "SLURM_PROCID" in env and "SLURM_STEP_NUM_TASKS" in env:   # srun's step, not the batch script's own shell
        world = _int(env, "SLURM_STEP_NUM_TASKS")
        if world < 2:
            return None
        if not env.get("MASTER_ADDR"):
            raise ConvbenchError("started by srun with several tasks but $MASTER_ADDR is not set: in the job script, "
                                 "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1) "
                                 "and MASTER_PORT (default 29500)")
        tasks_here = env.get("SLURM_STEP_TASKS_PER_NODE", "").split("(")[0]
        return _checked(Launched("srun", _int(env, "SLURM_PROCID"), world, _int(env, "SLURM_LOCALID", 0),
                                 int(tasks_here) if tasks_here.isdigit() else world, env["MASTER_ADDR"],
                                 _int(env, "MASTER_PORT", DEFAULT_PORT)))
    return None


def _checked(launch: Launched) -> Launched:
    if not 0 <= launch.rank < launch.world or not 0 <= launch.local_rank < launch.local_world:
        raise ConvbenchError(f"{launch.source}'s variables disagree: {launch.describe()}")
    if not 0 < launch.master_port < 65536 - 2 * launch.world - 256:
        raise ConvbenchError(f"$MASTER_PORT {launch.master_port} leaves no room for one port per cell above it")
    return launch


_cells = itertools.count()


def next_port(launch: Launched) -> int:
    """The rendezvous port of the next data-parallel cell: MASTER_PORT + 1 + (2 + N) x its place in the run. Every
    rank runs the same cells in the same order, so they agree; each cell's process group gets a store of its own
    (rank 0's worker hosts it), and a port the previous cell's store left in TIME_WAIT is never reused."""
    return launch.master_port + 1 + (2 + launch.world) * next(_cells)


# options an external launch cannot take: the launcher makes the ranks, and every rank must run exactly the same
# cells in the same order (a retry or a resume that one rank decides alone would leave the others waiting)
REFUSED = {"nproc": "--nproc", "devices": "--devices", "resume": "--resume", "oom_retry": "--oom-retry"}
