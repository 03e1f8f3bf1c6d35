"""``convbench explain`` end to end in real subprocesses: torch's layer cells timed beside its network, a framework
whose plugin has no layer cells reported without losing the other's results, and bad input in one line."""
from __future__ import annotations

import csv
import json

import pytest
from helpers import FAULT_ENV, needs, run_cli

QUICK = ("--max-time", "0.2", "--min-steps", "3", "--batch-size", "8", "--threads", "1")


@needs("torch")
def test_a_framework_without_layer_cells_keeps_the_others(tmp_path):
    proc = run_cli("explain", "--model", "fault_ok", "--frameworks", "torch,faulty", *QUICK, "--output", str(tmp_path),
                   env=FAULT_ENV)
    assert proc.returncode == 1, proc.stderr
    assert "faulty: not timed: the faulty plugin has no layer cells (convbench_build_layer, docs/plugins.md)" \
        in proc.stdout.splitlines(), proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0] == "convbench explain: fault_ok train_step on cpu, batch 8 (layer cells: each node built alone)"
    assert [line.split()[0] for line in lines[3:8]] == ["flatten", "fc", "(sum", "(network)", "(unattributed)"]
    assert "[explain] torch: fc (2/2)" in proc.stderr and "Traceback" not in proc.stderr
    folder = next(tmp_path.iterdir())
    saved = json.loads((folder / "explain.json").read_text())
    torch, faulty = saved["frameworks"]
    assert faulty["framework"] == "faulty" and "error" in faulty
    assert [x["path"] for x in torch["layers"]] == ["flatten", "fc"]
    fc = torch["layers"][1]
    assert fc["flops_per_image"] == 2 * 3072 * 10 and len(fc["train_step"]["samples"]) == fc["train_step"]["n"] >= 3
    assert torch["execution"]["compile"] == "eager" and torch["worker_env"]["OMP_NUM_THREADS"] == "1"
    with open(folder / "explain.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["layer"] for r in rows] == ["flatten", "fc", "(sum of layers)", "(network)", "(unattributed)"]
    assert all(r["framework"] == "torch" and r["batch_size"] == "8" for r in rows)
    assert "faulty: not timed" in (folder / "report.html").read_text()


@needs("torch")
def test_blocks_of_a_network_forward_only(tmp_path):
    proc = run_cli("explain", "--model", "resnet32", "--frameworks", "torch", "--depth", "1", "--phase", "forward",
                   *QUICK, "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in table[3:9]] == ["stem", "stage1", "stage2", "stage3", "gap", "fc"]
    assert table[4].split()[1] == "Seq"
    with open(next(tmp_path.iterdir()) / "explain.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    assert row["forward_ms"] and "backward_ms" not in row and "train_step_ms" not in row


@pytest.mark.parametrize("args, message", [
    (("--model", "vgg17"), "unknown model 'vgg17'"),
    (("--model", "vgg16", "--depth", "0"), "argument --depth"),
    (("--model", "vgg16", "--phase", "backward"), "argument --phase"),
    (("--model", "vgg16", "--frameworks", "torch,mxnet"), "unknown framework 'mxnet'"),
    (("--model", "vgg16", "--max-time", "-1"), "argument --max-time"),
    (("--model", "vgg16", "--frameworks", "torch,torch"), "torch given twice in 'torch,torch'"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    proc = run_cli("explain", *args, "--output", str(tmp_path))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


@needs("torch")
def test_the_profiler_maps_every_layer_of_the_step(tmp_path):
    proc = run_cli("explain", "--model", "resnet32", "--frameworks", "torch", "--method", "profiler", "--depth", "1",
                   *QUICK, "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "(the profiler over the network's step)" in proc.stdout.splitlines()[0]
    saved = json.loads((next(tmp_path.iterdir()) / "explain.json").read_text())["frameworks"][0]
    assert saved["method"] == "profiler (CPU time of each op)"
    stages = {x["path"]: x["train_step"]["ms"] for x in saved["layers"]}
    assert list(stages) == ["stem", "stage1", "stage2", "stage3", "gap", "fc"] and all(v > 0 for v in stages.values())
    # every layer's ops lie inside the profiled step: their sum cannot exceed it
    assert sum(stages.values()) <= saved["profiled_step_ms"]["train_step"]
    assert "[profiler (CPU time of each op); the profiled step " in proc.stdout


@needs("torch")
def test_a_device_no_framework_sees_is_one_line_and_no_folder(tmp_path):
    proc = run_cli("explain", "--model", "lenet5", "--frameworks", "torch", "--device", "cuda:99", "--output", str(tmp_path))
    assert proc.returncode == 2 and not any(tmp_path.iterdir())
    assert proc.stderr.startswith("convbench: error: device 'cuda:99' not found by any framework asked for "
                                  "(torch sees cpu"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_plugin_without_a_profiler_mapping_is_told(tmp_path):
    proc = run_cli("explain", "--model", "fault_ok", "--frameworks", "faulty", "--method", "profiler", *QUICK,
                   "--output", str(tmp_path), env=FAULT_ENV)
    assert proc.returncode == 1
    assert "faulty: not timed: the faulty plugin maps no profiler to layers (profile_layers); use --method cells" \
        in proc.stdout.splitlines()


@needs("jax")
def test_jax_profiler_maps_the_compiled_step_to_layers(tmp_path):
    proc = run_cli("explain", "--model", "lenet5", "--frameworks", "jax", "--method", "profiler", *QUICK,
                   "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    saved = json.loads((next(tmp_path.iterdir()) / "explain.json").read_text())["frameworks"][0]
    assert saved["method"] == "profiler (XLA ops in the trace)"
    step = {x["path"]: x["train_step"]["ms"] for x in saved["layers"]}
    assert step["conv1.conv"] > 0 and step["conv2.conv"] > 0 and step["fc1"] > 0   # forward and backward ops named
    assert sum(step.values()) <= saved["profiled_step_ms"]["train_step"]
