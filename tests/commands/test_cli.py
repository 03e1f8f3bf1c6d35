"""The command line end to end, in real subprocesses, and its one-line errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers import ALL_MODELS, needs, run_cli

REQUIRED_COLUMNS = ["run_id", "framework", "framework_version", "model", "mode", "phase", "device", "dataset",
                    "batch_size", "epochs", "seed", "status", "error", "params", "flops_per_image",
                    "test_accuracy", "train_time_s", "images_per_sec"]


@pytest.mark.e2e
@needs("torch")
def test_run_two_cells_end_to_end(tmp_path):
    proc = run_cli("run", "--frameworks", "torch", "--models", "lenet5,simple_cnn", "--epochs", "1",
                   "--batch-size", "32", "--lr", "0.05", "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = tmp_path.iterdir()
    df = pd.read_csv(run_dir / "results.csv")
    assert list(df.columns[:len(REQUIRED_COLUMNS)]) != [] and set(REQUIRED_COLUMNS) <= set(df.columns)
    assert df["status"].tolist() == ["ok", "ok"] and df["model"].tolist() == ["lenet5", "simple_cnn"]
    assert (df["params"] == [62006, 672212]).all()
    assert (df["test_accuracy"] > 0.2).all() and (df["train_time_s"] > 0).all() and (df["images_per_sec"] > 0).all()
    assert df["framework_version"].str.startswith("2.").all()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["frameworks"]["torch"]["version"] == df["framework_version"][0]
    assert {"python", "harness_version", "host", "git_commit", "command", "platform"} <= set(meta)
    assert meta["command"][:2] == ["convbench", "run"]
    lines = proc.stdout.splitlines()
    header = next(x for x in lines if x.startswith("model"))
    assert header.split() == ["model", "torch"]
    assert any(x.startswith("lenet5") and "%" in x and "s" in x for x in lines)
    epochs = json.loads((run_dir / "cells" / "torch-lenet5-cpu" / "epochs.json").read_text())
    assert len(epochs) == 1 and epochs[0]["epoch"] == 1
    assert (run_dir / "cells" / "torch-lenet5-cpu" / "checkpoint.npz").exists()


@pytest.mark.e2e
@pytest.mark.parametrize("args,message", [
    (["run", "--models", "vgg15"], "unknown model 'vgg15'"),
    (["run", "--models", "lenet5,vgg16,lenet5"], "lenet5 given twice in 'lenet5,vgg16,lenet5'"),
    (["run", "--frameworks", "pytorch"], "unknown framework 'pytorch'"),
    (["run", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["run", "--batch-size", "0"], "must be at least 1"),
    (["run", "--epochs", "-3"], "must be at least 1"),
    (["run", "--device", "gpu"], "unknown device 'gpu'"),
    (["run", "--lr", "abc"], "expected a number"),
    (["run", "--models", "vgg16_imagenet"], "use --dataset synthetic"),
    (["run", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "does not exist"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    proc = run_cli(*args, "--output", str(tmp_path)) if args[0] == "run" else run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.e2e
def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_cli("run", "--frameworks", "torch", "--output", str(blocker / "sub"))
    assert proc.returncode == 2 and "not writable" in proc.stderr


@pytest.mark.e2e
@needs("torch")
def test_gpu_on_a_machine_without_one(tmp_path):
    proc = run_cli("run", "--frameworks", "torch", "--device", "cuda:0", "--output", str(tmp_path))
    assert proc.returncode == 2 and "device 'cuda:0' not found" in proc.stderr


@pytest.mark.e2e
def test_list_json_has_every_model():
    proc = run_cli("list", "--format", "json")
    rows = {r["id"]: r for r in json.loads(proc.stdout)}
    assert list(rows) == ALL_MODELS
    assert rows["lenet5"]["params"] == 62006 and rows["vgg16_imagenet"]["input_shape"] == [3, 224, 224]
    assert all(r["flops_per_image"] > 0 for r in rows.values())
    table = run_cli("list").stdout
    assert "vgg19_imagenet" in table and "143,667,240" in table


@pytest.mark.e2e
def test_plugins_lists_versions_hooks_and_availability():
    proc = run_cli("plugins")
    assert proc.returncode == 0
    assert "torch: convbench 0.1.0" in proc.stdout
    assert "convbench_build_model" in proc.stdout
    assert "framework torch:" in proc.stdout


@pytest.mark.e2e
def test_plugins_shows_disabled(tmp_path):
    proc = run_cli("plugins", env={"CONVBENCH_DISABLE_PLUGINS": "paddle"})
    assert "paddle: disabled by CONVBENCH_DISABLE_PLUGINS" in proc.stdout
    assert "framework paddle" not in proc.stdout


SPEED_COLUMNS = ["ms_mean", "ms_std", "ms_median", "ms_iqr", "ms_min", "ms_max", "steps", "first_step_s",
                 "images_per_sec", "flops_per_image", "achieved_gflops", "peak_fraction", "peak_mem_mb",
                 "precision", "compile", "layout", "tf32"]


@pytest.mark.e2e
@needs("torch")
def test_speed_mode_rows_and_raw_samples(tmp_path):
    proc = run_cli("run", "--mode", "speed", "--frameworks", "torch", "--models", "lenet5", "--steps", "7",
                   "--warmup", "2", "--batch-size", "16", "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = tmp_path.iterdir()
    df = pd.read_csv(run_dir / "results.csv")
    assert df["phase"].tolist() == ["forward", "forward_backward", "train_step"]
    assert set(SPEED_COLUMNS) <= set(df.columns) and (df["steps"] == 7).all()
    assert (df["dataset"] == "synthetic").all() and (df["compile"] == "eager").all()
    assert (df["ms_min"] <= df["ms_median"]).all() and (df["ms_median"] <= df["ms_max"]).all()
    assert (df["peak_fraction"] > 0).all() and (df["achieved_gflops"] > 0).all()
    assert df["images_per_sec"].iloc[0] == pytest.approx(16 / (df["ms_median"].iloc[0] / 1000))
    samples = json.loads((run_dir / "cells" / "torch-lenet5-cpu" / "samples.json").read_text())
    assert {k: len(v) for k, v in samples.items()} == {"forward": 7, "forward_backward": 7, "train_step": 7,
                                                       # --steps N's one window of N steps, its seconds per step
                                                       "forward pipelined": 1, "forward_backward pipelined": 1,
                                                       "train_step pipelined": 1}
    for phase, pipelined_ms in zip(df["phase"], df["pipelined_ms"]):
        assert pipelined_ms == pytest.approx(1000 * samples[f"{phase} pipelined"][0])
    assert "Forward across 7 steps," in proc.stdout and "Forward-backward across 7 steps," in proc.stdout
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["cpu_peak_gflops"] > 0
    assert "devices" in meta["gpus"] or meta["gpus"]["nvml"].startswith("unavailable: ")   # said, not failed
    assert (df["pipelined_images_per_sec"] > 0).all() and (df["pipelined_ms"] > 0).all()
    assert (df["tf32"] == False).all() and df["autotune"].isna().all()  # noqa: E712 - what ran on a CPU


@pytest.mark.e2e
@needs("torch")
def test_unsupported_execution_variant_is_an_error_row(tmp_path):
    proc = run_cli("run", "--mode", "speed", "--frameworks", "torch", "--models", "lenet5", "--steps", "2",
                   "--compile", "xla", "--output", str(tmp_path))
    assert proc.returncode == 1
    df = pd.read_csv(next(tmp_path.iterdir()) / "results.csv")
    assert df["status"].tolist() == ["error"] and "torch has no compile mode 'xla'" in df["error"][0]
