"""What a worker's environment holds: GPU memory limits equal across frameworks (a user's own kept, all recorded),
and a data-parallel group's ports all free."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
from helpers import REGISTRIES, framework_installed, needs
from test_dp_failures import dp_cell

from harness.orchestrator import cells
from harness.orchestrator.workers import WorkerResult, recorded_env, worker_env

MEMORY_VARS = ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION",
               "XLA_PYTHON_CLIENT_ALLOCATOR", "TF_FORCE_GPU_ALLOW_GROWTH", "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF",
               "FLAGS_allocator_strategy", "FLAGS_fraction_of_gpu_memory_to_use")


@pytest.fixture
def no_memory_settings(monkeypatch):
    for var in MEMORY_VARS:
        monkeypatch.delenv(var, raising=False)


def test_jax_may_use_nearly_all_gpu_memory_as_the_others_do(no_memory_settings, monkeypatch):
    """XLA's GPU allocator is capped at 75% of the GPU (memory_fraction) with or without preallocation, while
    torch's caching allocator, TF's memory growth and Paddle's auto_growth allocator are not: JAX OOMed first."""
    if not framework_installed("jax"):
        pytest.skip("jax is not installed")
    from jaxlib.xla_client import generate_pjrt_gpu_plugin_options  # what JAX's CUDA backend is started with
    env = worker_env(REGISTRIES.frameworks.get("jax"), 2)
    for var in MEMORY_VARS:
        if var in env:
            monkeypatch.setenv(var, env[var])
    options = generate_pjrt_gpu_plugin_options()
    assert options["memory_fraction"] == pytest.approx(0.95) and options["preallocate"] is False
    assert recorded_env(env)["XLA_CLIENT_MEM_FRACTION"] == "0.95"


@needs("jax")
def test_a_users_own_memory_settings_are_kept_and_recorded(no_memory_settings, monkeypatch):
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")
    monkeypatch.setenv("XLA_CLIENT_MEM_FRACTION", "0.5")
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    env = worker_env(REGISTRIES.frameworks.get("jax"), 2)
    assert (env["XLA_PYTHON_CLIENT_PREALLOCATE"], env["XLA_CLIENT_MEM_FRACTION"]) == ("true", "0.5")
    assert recorded_env(worker_env(REGISTRIES.frameworks.get("torch"), 2))["PYTORCH_CUDA_ALLOC_CONF"] == \
        "expandable_segments:True"


def test_a_data_parallel_group_gets_free_ports(monkeypatch, tmp_path):
    """Paddle's rank endpoints were the master port + 1 + rank, never checked free: a port in use there
    failed the cell. Here the master's next port is taken; no rank may be given it."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    monkeypatch.setattr(cells, "free_port", lambda: busy - 1, raising=False)
    envs = []

    class FakeWorker:
        def __init__(self, job, env, log: Path, python=None, job_file=None):
            envs.append(env)
            self.log = log

        def run(self, timeout, on_line, stall=None) -> WorkerResult:
            return WorkerResult(1, {"error": "stopped"}, self.log)

        def kill(self) -> None:
            pass
    monkeypatch.setattr(cells, "Worker", FakeWorker)
    try:
        cells.run_process_group_cell(dp_cell("--batch-size", "64"), REGISTRIES.frameworks.get("torch"), tmp_path,
                                     lambda line: None, {"CUDA_VISIBLE_DEVICES": ""})
    finally:
        taken.close()
    endpoints = [e.split(":")[1] for e in envs[0]["PADDLE_TRAINER_ENDPOINTS"].split(",")]
    ports = [int(p) for p in (envs[0]["MASTER_PORT"], *endpoints)]
    assert len(set(ports)) == 3 and busy not in ports
    assert all(env["PADDLE_TRAINER_ENDPOINTS"] == envs[0]["PADDLE_TRAINER_ENDPOINTS"] for env in envs)
    assert [env["PADDLE_CURRENT_ENDPOINT"].split(":")[1] for env in envs] == endpoints


WORKSPACE = {"torch": "CUDNN_CONV_WSCAP_DBG", "tensorflow": "TF_CUDNN_WORKSPACE_LIMIT_IN_MB",
             "paddle": "FLAGS_conv_workspace_size_limit"}


def test_one_cudnn_workspace_limit_in_every_framework_that_has_one(monkeypatch):
    """Autotuning chose among algorithms within different workspace limits: torch up to the free memory, TF 4 GB,
    Paddle 512 MB. Each now gets the same limit, recorded; a user's own value is kept."""
    for var in WORKSPACE.values():
        monkeypatch.delenv(var, raising=False)
    limits = {fw: recorded_env(worker_env(REGISTRIES.frameworks.get(fw), 2)).get(var)
              for fw, var in WORKSPACE.items() if fw in REGISTRIES.frameworks.names()}
    assert set(limits.values()) == {"4096"}, limits
    monkeypatch.setenv("TF_CUDNN_WORKSPACE_LIMIT_IN_MB", "1024")
    assert worker_env(REGISTRIES.frameworks.get("tensorflow"), 2)["TF_CUDNN_WORKSPACE_LIMIT_IN_MB"] == "1024"
