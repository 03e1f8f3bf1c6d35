"""The Ray executor: a real local Ray cluster runs two cells into one run directory."""
from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
from helpers import REGISTRIES, ClusterRay, needs, run_cli
from test_plan import args, gpu_probe

from harness.orchestrator.executors import RayExecutor
from harness.orchestrator.plan import Plan, prepare_cell, resolve_settings

ray_installed = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@pytest.mark.e2e
@ray_installed
@needs("torch")
def test_two_cells_on_a_local_ray_cluster(tmp_path):
    proc = run_cli("run", "--executor", "ray", "--frameworks", "torch", "--models", "lenet5,simple_cnn",
                   "--epochs", "1", "--batch-size", "64", "--lr", "0.05", "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = tmp_path.iterdir()
    df = pd.read_csv(run_dir / "results.csv")
    assert sorted(df["model"]) == ["lenet5", "simple_cnn"] and (df["status"] == "ok").all()
    assert df["note"].str.contains("ran on ray node").all()
    for cell in df["cell"]:
        assert json.loads((run_dir / "cells" / cell / "epochs.json").read_text())[0]["epoch"] == 1
        assert (run_dir / "cells" / cell / "checkpoint.npz").exists()
    assert len((run_dir / "journal.jsonl").read_text().splitlines()) == 2
    again = run_cli("run", "--resume", str(run_dir))   # resume reads the same journal: nothing left to run
    assert again.returncode == 0 and again.stdout.count("ok in an earlier attempt; kept") == 2




def ray_executor(ray: ClusterRay) -> RayExecutor:
    executor = object.__new__(RayExecutor)
    executor.ray, executor.pending, executor.remote = ray, {}, ray.remote(None)
    return executor


def planned_cell(*argv: str):  # type: ignore[no-untyped-def]
    plan = Plan("r", None, [], ["torch"], ["lenet5"], [0], resolve_settings(args(*argv), REGISTRIES))  # type: ignore[arg-type]
    return prepare_cell("torch", "lenet5", 0, plan, gpu_probe(), REGISTRIES)[0]


def test_ray_cells_fit_on_one_node_of_a_gpu_cluster_with_a_cpu_only_head():
    """Defect 3: CPUs per GPU came from cluster totals (here (64 + 2 x 16) / 8 = 12) and a GPU task asked for
    min(threads, that): more than any GPU node has per GPU (16 / 4 = 4), so with every GPU busy no second task on a
    node, and with the driver's 96 threads a CPU task asked 96 CPUs of a cluster whose largest node has 64: never
    scheduled. Now: CPUs per GPU from the GPU nodes (ray.nodes()), never more CPUs than one node has."""
    head, gpu_node = {"CPU": 64.0}, {"CPU": 16.0, "GPU": 4.0}
    ray = ClusterRay(head, gpu_node, gpu_node, dead=({"CPU": 128.0, "GPU": 1.0},))
    executor = ray_executor(ray)
    spec = REGISTRIES.frameworks.get("torch")
    executor.submit(planned_cell("--device", "cuda", "--threads", "96"), spec)
    assert ray.asked[-1] == {"num_gpus": 1, "num_cpus": 4, "max_retries": 0}
    assert list(executor.pending.values())[-1].run.threads == 4     # and runs that many threads
    executor.submit(planned_cell("--threads", "96"), spec)
    assert ray.asked[-1] == {"num_cpus": 64, "max_retries": 0}      # the largest node, not the cluster's 96
    assert list(executor.pending.values())[-1].run.threads == 64
    executor.cpu_peak(96, None)
    assert ray.asked[-1] == {"num_cpus": 64, "max_retries": 0}


def test_ray_gpu_nodes_of_different_sizes_give_each_gpu_task_the_smallest_share():
    ray = ClusterRay({"CPU": 8.0}, {"CPU": 32.0, "GPU": 4.0}, {"CPU": 24.0, "GPU": 8.0})
    executor = ray_executor(ray)
    executor.submit(planned_cell("--device", "cuda", "--threads", "16"), REGISTRIES.frameworks.get("torch"))
    assert ray.asked[-1] == {"num_gpus": 1, "num_cpus": 3, "max_retries": 0}   # 24 / 8 fits on either GPU node
