"""meta.json's GPU facts come from where the cells run: under Ray, a task on a GPU node, not the driver."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from helpers import REGISTRIES

from harness.commands.cli import build_parser
from harness.hardware import nvml
from harness.orchestrator import executors
from harness.orchestrator.plan import new_plan
from harness.orchestrator.probes import Probe
from harness.orchestrator.run import probe_all

GPUS = [{"name": "cpu", "description": "x86"}, {"name": "cuda:0", "description": "NVIDIA H100 80GB HBM3"}]
DRIVER = {"nvml": "unavailable: nvidia-ml-py is not installed"}      # a login node without a GPU
NODE = {"driver": "550.54.15", "gpus": 8, "devices": [{"name": "NVIDIA H100 80GB HBM3"}]}


class FakeRay:
    """Ray's task API as RayExecutor uses it: what each task asked for, its function run in place."""
    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.inside = False

    def remote(self, fn):
        ray = self

        class Task:
            def options(self, **options):
                ray.asked.append((fn.__name__, options))
                return self

            def remote(self, *args):
                ray.inside = True
                try:
                    return fn(*args)
                finally:
                    ray.inside = False
        return Task()

    def get(self, value):
        return value


def test_under_ray_the_gpu_facts_are_a_gpu_nodes(tmp_path, monkeypatch):
    """The driver (a login node, often without a GPU) wrote its own NVML facts into meta.json's gpus."""
    fake = FakeRay()
    monkeypatch.setattr(executors, "probe_framework", lambda spec, threads, log, python: Probe("torch", True, "", "2.13",
                                                                                             GPUS))
    monkeypatch.setattr(nvml, "machine", lambda *a: dict(NODE) if fake.inside else dict(DRIVER))
    ray = executors.RayExecutor.__new__(executors.RayExecutor)
    ray.ray, ray.run_dir, ray.pending = fake, tmp_path, {}
    plan = new_plan(build_parser().parse_args(["run", "--frameworks", "torch", "--models", "lenet5", "--device", "cuda",
                                               "--executor", "ray", "--output", str(tmp_path)]), ["run"], REGISTRIES)
    meta: dict[str, Any] = {}
    probe_all(plan, meta, REGISTRIES, ray)
    assert meta["gpus"] == {**NODE, "node": os.uname().nodename}
    assert ("gpu_facts_remotely", {"num_gpus": 1, "num_cpus": 1, "max_retries": 0}) in fake.asked


def test_locally_and_for_cpu_runs_the_facts_are_this_machines(tmp_path, monkeypatch):
    monkeypatch.setattr(nvml, "machine", lambda *a: dict(DRIVER))
    assert executors.LocalExecutor(Path(tmp_path)).gpu_facts(True) == DRIVER
    ray = executors.RayExecutor.__new__(executors.RayExecutor)
    ray.ray = FakeRay()
    assert ray.gpu_facts(False) == DRIVER and not ray.ray.asked
