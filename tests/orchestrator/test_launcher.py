"""convbench started by torchrun or srun: every launched process is one rank of every cell, meeting the others at the
launcher's MASTER_ADDR instead of 127.0.0.1."""
from __future__ import annotations

import csv
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FAULT_ENV, needs, run_cli

from harness.errors import ConvbenchError
from harness.orchestrator.launcher import Launched, launched, next_port

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "node7",
            "MASTER_PORT": "29400"}
SRUN = {"SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1", "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
        "MASTER_ADDR": "node7"}


def test_torchrun_and_srun_variables_are_read_as_the_launcher_set_them():
    assert launched(TORCHRUN) == Launched("torchrun", 1, 4, 1, 2, "node7", 29400)
    assert launched(SRUN) == Launched("srun", 3, 4, 1, 2, "node7", 29500)   # srun sets no port: torchrun's default
    assert launched(TORCHRUN).describe() == "torchrun: rank 1 of 4 (local rank 1 of 2), rendezvous node7:29400"


@pytest.mark.parametrize("env", [
    {},                                                                   # an ordinary run
    {**TORCHRUN, "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"},      # torchrun --nproc-per-node 1
    {"SLURM_PROCID": "0", "SLURM_NTASKS": "4"},                           # a batch script's own shell, not srun's step
    {**SRUN, "SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"},           # a one-task step (--executor slurm's jobs)
])
def test_no_launch_of_several_processes_is_an_ordinary_run(env):
    assert launched(env) is None


@pytest.mark.parametrize("env, says", [
    ({**TORCHRUN, "MASTER_ADDR": ""}, "$MASTER_ADDR is not"),
    ({k: v for k, v in SRUN.items() if k != "MASTER_ADDR"}, "export MASTER_ADDR=$(scontrol show hostnames"),
    ({**TORCHRUN, "RANK": "one"}, "$RANK is 'one', not a whole number"),
    ({**TORCHRUN, "RANK": "4"}, "variables disagree: torchrun: rank 4 of 4"),
    ({**TORCHRUN, "MASTER_PORT": "65530"}, "leaves no room for one port per cell"),
])
def test_a_launch_that_does_not_add_up_is_one_line(env, says):
    with pytest.raises(ConvbenchError) as err:
        launched(env)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_each_cell_has_its_own_port_and_paddle_endpoints_only_on_one_node():
    one_node = Launched("torchrun", 1, 2, 1, 2, "127.0.0.1", 29400)
    first, second = next_port(one_node), next_port(one_node)
    assert 29400 < first < second and second - first >= 2 + one_node.world   # room for Paddle's endpoints between
    env = one_node.rank_env(first)
    assert env["RANK"] == "1" and env["WORLD_SIZE"] == "2" and env["MASTER_PORT"] == str(first)
    assert env["PADDLE_CURRENT_ENDPOINT"] == f"127.0.0.1:{first + 2}"
    assert "PADDLE_TRAINER_ENDPOINTS" not in launched(TORCHRUN).rank_env(first)   # two nodes: endpoints unknown here


LAUNCHED = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29400"}


@pytest.mark.parametrize("args, says", [
    (("--nproc", "2"), "the launcher makes the ranks and every rank runs the same cells; drop --nproc"),
    (("--mode", "speed"), "data-parallel runs are for train mode"),
    (("--batch-size", "32,64"), "give one --batch-size"),
    (("--device", "cuda:3"), "each rank trains on its node's GPU LOCAL_RANK (cuda:0 here)"),
    (("--resume", "results/x"), "a resume decides from rank 0's journal alone"),
])
def test_what_a_launch_cannot_take_is_refused_in_one_line(tmp_path, args, says):
    proc = run_cli("run", "--output", str(tmp_path), *args, env=LAUNCHED)
    assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.e2e
def test_a_framework_whose_engine_is_not_one_process_per_rank_is_unavailable_under_a_launcher(tmp_path):
    proc = run_cli("run", "--frameworks", "faulty", "--models", "fault_ok", "--epochs", "1", "--output", str(tmp_path),
                   env={**FAULT_ENV, **LAUNCHED, "MASTER_PORT": str(free_port())})
    rows = {r["cell"]: r for r in csv.DictReader(open(next(tmp_path.iterdir()) / "results.csv"))}
    assert rows["faulty-fault_ok-cpu-x2"]["status"] == "unavailable", proc.stdout + proc.stderr
    assert "no data-parallel engine" in rows["faulty-fault_ok-cpu-x2"]["error"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_rank0_run(out: Path, source: str) -> None:
    (run_dir,) = out.iterdir()   # rank 0's run alone: the other rank wrote its own under the temporary directory
    rows = {r["cell"]: r for r in csv.DictReader(open(run_dir / "results.csv"))}
    assert set(rows) == {"torch-lenet5-cpu", "torch-lenet5-cpu-x2"}
    dp, baseline = rows["torch-lenet5-cpu-x2"], rows["torch-lenet5-cpu"]
    assert dp["status"] == baseline["status"] == "ok", dp["error"] + baseline["error"]
    assert dp["world_size"] == "2" and float(dp["per_device_batch"]) == 16 and float(dp["scaling_efficiency"]) > 0
    assert f"started by {source}: rank 0 of 2" in dp["note"] and "this cell's port" in dp["note"]
    assert "the single-process baseline, trained by every rank alone" in baseline["note"]
    assert (run_dir / "cells" / "torch-lenet5-cpu-x2" / "checkpoint.npz").is_file()   # rank 0's


ARGS = ("run", "--frameworks", "torch", "--models", "lenet5", "--dataset", "synthetic", "--epochs", "1", "--batch-size",
        "32", "--threads", "2")


@pytest.mark.e2e
@needs("torch")
def test_torchrun_starts_one_convbench_per_rank_and_rank_0_writes_the_run(tmp_path):
    """The real torchrun (torch.distributed.run, --standalone): two convbench processes, each one rank of the
    data-parallel cell, meeting at the MASTER_ADDR and MASTER_PORT torchrun gave them."""
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "harness", *ARGS, "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "torchrun: rank 1 of 2 (local rank 1 of 2)" in proc.stdout and "rank 0 writes the run's results" in proc.stdout
    check_rank0_run(out, "torchrun")
