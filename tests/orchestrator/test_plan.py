"""Planning, without running anything: settings resolved once, devices where they belong, every cell's typed spec.

Probes are constructed as a GPU machine's would report them (no GPU needed): ``cpu`` plus ``cuda:0``/``cuda:1``.
"""
from __future__ import annotations

import argparse
import json

import pytest
from helpers import REGISTRIES, ClusterRay

from harness.commands.cli import build_parser
from harness.devices import Device
from harness.errors import ConvbenchError
from harness.orchestrator.cells import gpu_visibility, rank_cells
from harness.orchestrator.plan import Plan, new_plan, prepare_cell, resolve_settings, resume_plan
from harness.orchestrator.probes import Probe
from harness.orchestrator.run import check_devices
from harness.settings import BuildSettings
from harness.worker.protocol import read_job, write_job

GPU0, GPU1 = Device("cuda", 0), Device("cuda", 1)
GPUS = [{"name": "cpu", "description": "x86"}, {"name": "cuda:0", "description": "NVIDIA H100 80GB HBM3"},
        {"name": "cuda:1", "description": "NVIDIA H100 80GB HBM3"}]


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def gpu_probe(framework: str = "torch", devices: list | None = None) -> Probe:
    return Probe(framework, True, "", "2.13.0", GPUS if devices is None else devices)


def test_the_command_line_is_not_modified_and_defaults_come_from_settings():
    a = args("--frameworks", "torch")
    before = vars(a).copy()
    s = resolve_settings(a, REGISTRIES)
    assert vars(a) == before
    assert (s.mode, s.dataset, s.epochs, s.batch_size, s.lr, s.device.name, s.world_size) == ("train", "digits", 10, None,
                                                                                         0.1, "cpu", 1)
    speed = resolve_settings(args("--mode", "speed"), REGISTRIES)
    assert (speed.dataset, speed.epochs, speed.target, speed.warmup, speed.steps) == ("synthetic", None, None, None, None)
    assert speed.adaptive and speed.fixed_warmup == 10   # --steps auto, the default; 10 burn-in steps with --steps N


def test_devices_without_device_put_the_cell_on_the_first_gpu():
    """Defect 1: --devices cuda:0,cuda:1 alone kept device cpu, so the baseline trained on the CPU and the
    sync / memory hooks and scaling efficiency were the CPU's."""
    s = resolve_settings(args("--devices", "cuda:0,cuda:1", "--batch-size", "64"), REGISTRIES)
    assert (s.device, s.devices, s.world_size) == (GPU0, (GPU0, GPU1), 2)
    plan = Plan("r", None, [], ["torch"], ["lenet5"], [0], s)  # type: ignore[arg-type]
    base, rows = prepare_cell("torch", "lenet5", 0, plan, gpu_probe(), REGISTRIES, 1)
    assert rows is None and base.device == GPU0 and base.name == "torch-lenet5-cuda0" and base.devices is None
    dp, rows = prepare_cell("torch", "lenet5", 0, plan, gpu_probe(), REGISTRIES, 2)
    assert rows is None and dp.device == GPU0 and dp.devices == (GPU0, GPU1) and dp.dp_mode == "processes"
    assert dp.device_name == "NVIDIA H100 80GB HBM3"


def test_each_rank_synchronises_and_measures_its_own_device():
    """Defect 3: every rank used the cell's device (devices[0]) for sync and peak memory."""
    s = resolve_settings(args("--devices", "cuda:0,cuda:1", "--batch-size", "64", "--threads", "8"), REGISTRIES)
    plan = Plan("r", None, [], ["torch"], ["lenet5"], [0], s)  # type: ignore[arg-type]
    dp, _ = prepare_cell("torch", "lenet5", 0, plan, gpu_probe(), REGISTRIES, 2)
    ranks = rank_cells(dp.replace(checkpoint="/x/checkpoint.npz"))
    assert [(c.rank, c.device, c.run.threads, c.checkpoint) for c in ranks] == [
        (0, GPU0, 4, "/x/checkpoint.npz"), (1, GPU1, 4, None)]
    assert ranks[1].build_settings().to_dict()["rank"] == 1


@pytest.mark.parametrize("argv, message", [
    (("--nproc", "2", "--device", "cuda"), "--nproc 2 trains on CPU processes; for GPUs use --devices"),
    (("--devices", "cuda:0,cuda:0"), "--devices names cuda:0 twice"),
    (("--devices", "cuda:0,cuda:1", "--device", "cuda:1"), "--device cuda:1 disagrees with --devices cuda:0,cuda:1"),
    (("--devices", "cuda:0,cpu"), "--devices takes GPUs as cuda:N, got cpu"),
    (("--devices", "gpu0,gpu1"), "unknown device 'gpu0'"),
    (("--nproc", "2", "--devices", "cuda:0,cuda:1"), "not both"),
])
def test_data_parallel_requests_refused_before_anything_runs(argv, message):
    """Defects 2 and 4: --nproc with a GPU trained on the CPU while the row said cuda:0; duplicate devices
    crashed a rank later."""
    with pytest.raises(ConvbenchError, match=message):
        resolve_settings(args(*argv), REGISTRIES)


def test_gpus_nobody_sees_are_refused_before_any_cell():
    """Defect 4: cuda:7 on a 2-GPU host is one line, not a crashed rank."""
    s = resolve_settings(args("--devices", "cuda:0,cuda:7", "--batch-size", "64"), REGISTRIES)
    with pytest.raises(ConvbenchError, match="device 'cuda:7' not found"):
        check_devices(s, {"torch": gpu_probe()})
    check_devices(resolve_settings(args("--devices", "cuda:1,cuda:0"), REGISTRIES), {"torch": gpu_probe()})
    with pytest.raises(ConvbenchError, match="device 'cuda:0' not found"):
        check_devices(resolve_settings(args("--device", "cuda"), REGISTRIES), {"torch": gpu_probe(devices=GPUS[:1])})


def test_a_framework_that_lacks_one_of_the_gpus_gets_an_unavailable_row():
    s = resolve_settings(args("--devices", "cuda:0,cuda:1", "--batch-size", "64"), REGISTRIES)
    plan = Plan("r", None, [], ["paddle"], ["lenet5"], [0], s)  # type: ignore[arg-type]
    cell, rows = prepare_cell("paddle", "lenet5", 0, plan, gpu_probe("paddle", GPUS[:2]), REGISTRIES, 2)
    assert rows and rows[0]["status"] == "unavailable" and "'cuda:1'" in rows[0]["error"]


def test_plan_and_cells_round_trip_typed(tmp_path):
    plan = new_plan(args("--frameworks", "torch", "--models", "lenet5", "--epochs", "3", "--seeds", "2",
                         "--output", str(tmp_path)), ["run"], REGISTRIES)
    data = json.loads((plan.run_dir / "plan.json").read_text())
    assert data["settings"]["epochs"] == 3 and data["seeds"] == [0, 1]
    again = Plan.load(plan.run_dir)
    assert again.settings == plan.settings and again.models == ["lenet5"]
    cell, _ = prepare_cell("torch", "lenet5", 1, again, Probe("torch", True, "", "2.13", GPUS[:1]), REGISTRIES)
    write_job(tmp_path / "cell.json", cell)
    assert read_job(tmp_path / "cell.json") == cell and cell.name == "torch-lenet5-cpu-s1" and cell.seed == 1


def test_a_gpu_cell_sees_only_its_own_gpus(monkeypatch):
    """Defect 6: TensorFlow and JAX created contexts on every GPU of the host for a cuda:1 cell."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    s = resolve_settings(args("--device", "cuda:1"), REGISTRIES)
    plan = Plan("r", None, [], ["paddle"], ["lenet5"], [0], s)  # type: ignore[arg-type]
    cell, _ = prepare_cell("paddle", "lenet5", 0, plan, gpu_probe("paddle"), REGISTRIES)
    seen, env = gpu_visibility(cell)
    assert env == {"CUDA_VISIBLE_DEVICES": "1"} and seen.device == GPU1 and seen.local_device == GPU0
    dp = resolve_settings(args("--devices", "cuda:1,cuda:0", "--batch-size", "64"), REGISTRIES)
    plan = Plan("r", None, [], ["tensorflow"], ["lenet5"], [0], dp)  # type: ignore[arg-type]
    mirrored, _ = prepare_cell("tensorflow", "lenet5", 0, plan, gpu_probe("tensorflow"), REGISTRIES, 2)
    seen, env = gpu_visibility(mirrored)
    assert env == {"CUDA_VISIBLE_DEVICES": "1,0"} and seen.build_settings().to_dict()["devices"] == ["cuda:0", "cuda:1"]
    ranks = rank_cells(seen)
    assert [r.local_device for r in ranks] == [GPU0, GPU1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa,GPU-bb")   # the user's (or Ray's) own choice is respected
    assert gpu_visibility(cell)[1] == {"CUDA_VISIBLE_DEVICES": "GPU-bb"}
    cpu_cell, _ = prepare_cell("paddle", "lenet5", 0, Plan("r", None, [], ["paddle"], ["lenet5"], [0],  # type: ignore[arg-type]
                               resolve_settings(args(), REGISTRIES)), gpu_probe("paddle"), REGISTRIES)
    assert gpu_visibility(cpu_cell) == (cpu_cell, {"CUDA_VISIBLE_DEVICES": ""})


def test_a_cpu_cell_on_a_gpu_host_sees_no_gpu(monkeypatch):
    """A CPU cell's worker on a GPU host: JAX would default to the GPU and TF place small ops on GPU:0, so its
    worker sees none (CUDA_VISIBLE_DEVICES empty), whatever the user's own list, and JAX is pinned to its CPU."""
    from harness.plugin_manager import get_plugin_manager
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    plan = Plan("r", None, [], ["tensorflow"], ["lenet5"], [0], resolve_settings(args(), REGISTRIES))  # type: ignore[arg-type]
    cpu_cell, _ = prepare_cell("tensorflow", "lenet5", 0, plan, gpu_probe("tensorflow"), REGISTRIES)
    assert gpu_visibility(cpu_cell)[1] == {"CUDA_VISIBLE_DEVICES": ""}
    jax = get_plugin_manager().get_plugin("jax")
    if jax is None:
        pytest.skip("the jax plugin is not installed")
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    cpu = jax.execution(BuildSettings(), jax.device("cpu"))
    assert jax.environment(cpu)["JAX_PLATFORMS"] == "cpu"
    assert "JAX_PLATFORMS" not in jax.environment(jax.execution(BuildSettings(), jax.device("cuda:0")))


def test_ray_takes_the_gpu_of_its_task():
    with pytest.raises(ConvbenchError, match="use --device cuda, not cuda:1"):
        resolve_settings(args("--executor", "ray", "--device", "cuda:1"), REGISTRIES)
    assert resolve_settings(args("--executor", "ray", "--device", "cuda"), REGISTRIES).device == GPU0




def test_ray_gpu_cells_reserve_and_use_their_share_of_cpus():
    """Defect 5: GPU tasks reserved one CPU but ran all the driver's cores' threads."""
    from harness.orchestrator.executors import RayExecutor
    ray = ClusterRay({"CPU": 64, "GPU": 8})   # one node
    executor = object.__new__(RayExecutor)
    executor.ray, executor.pending, executor.remote = ray, {}, ray.remote(None)
    s = resolve_settings(args("--device", "cuda", "--threads", "32"), REGISTRIES)
    plan = Plan("r", None, [], ["torch"], ["lenet5"], [0], s)  # type: ignore[arg-type]
    cell, _ = prepare_cell("torch", "lenet5", 0, plan, gpu_probe(), REGISTRIES)
    executor.submit(cell, REGISTRIES.frameworks.get("torch"))
    (sent,) = executor.pending.values()
    assert ray.asked[-1] == {"num_gpus": 1, "num_cpus": 8, "max_retries": 0} and sent.run.threads == 8
    cpu_cell, _ = prepare_cell("torch", "lenet5", 0, Plan("r", None, [], ["torch"], ["lenet5"], [0],  # type: ignore[arg-type]
                               resolve_settings(args("--threads", "16"), REGISTRIES)), gpu_probe(), REGISTRIES)
    executor.submit(cpu_cell, REGISTRIES.frameworks.get("torch"))
    assert ray.asked[-1] == {"num_cpus": 16, "max_retries": 0}
    assert executor.probe(REGISTRIES.frameworks.get("torch"), 4, None, gpu=True, python=None)[0] == "ref"  # type: ignore[index]
    assert ray.asked[-1] == {"num_gpus": 1, "num_cpus": 1, "max_retries": 0}   # probed where a GPU cell will run


def test_compile_cache_is_stored_absolute_and_each_framework_gets_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = resolve_settings(args("--compile-cache", "caches"), REGISTRIES)
    assert s.compile_cache == str(tmp_path / "caches")
    assert resolve_settings(args(), REGISTRIES).compile_cache is None
    plan = Plan("r", None, [], ["torch"], ["lenet5"], [0], s)  # type: ignore[arg-type]
    cell, _ = prepare_cell("torch", "lenet5", 0, plan, gpu_probe(), REGISTRIES)
    assert cell.build_settings().compile_cache == str(tmp_path / "caches" / "torch")


def test_resume_takes_no_compile_cache(tmp_path):
    with pytest.raises(ConvbenchError, match="drop --compile-cache"):
        resume_plan(args("--resume", str(tmp_path), "--compile-cache", str(tmp_path)), REGISTRIES)
