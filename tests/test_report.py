"""convbench report: report.md and PNG plots from run directories (synthetic ones in the exact layout, one real)."""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from conftest import needs, run_cli

from harness.errors import ConvbenchError
from harness.records import COLUMNS, cell_id, make_row
from harness.report import write_csv
from harness.report_command import load_run, write_report
from harness.stats import summarize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PHASES = ("forward", "forward_backward", "train_step")


def make_run(root: Path, *, run_id: str = "synthetic", mode: str = "train", dataset: str = "digits",
             frameworks: Sequence[str] = ("torch",), models: Sequence[str] = ("lenet5",), seeds: Sequence[int] = (0,),
             failed: dict[tuple[str, str], str] | None = None, step_s: float = 0.010, noise: float = 0.05,
             n_samples: int = 100, rng_seed: int = 0, epochs: int = 3, target: float | None = None) -> Path:
    """A run directory in the layout `convbench run` writes: results.csv, meta.json, cells/<cell>/
    epochs.json (train) or samples.json (speed). ``failed`` maps (framework, model) to a status."""
    run_dir = root / run_id
    (run_dir / "cells").mkdir(parents=True)
    rng = np.random.default_rng(rng_seed)
    rows = []
    for fw in frameworks:
        for model in models:
            for seed in seeds:
                cell = {"run_id": run_id, "framework": fw, "framework_version": "1.0", "model": model, "device": "cpu",
                        "device_name": "x86_64", "dataset": dataset, "batch_size": 128,
                        "epochs": epochs if mode == "train" else None, "seed": seed, "lr": 0.1, "threads": 2,
                        "mode": mode, "precision": "fp32", "compile": "eager", "layout": "nchw"}
                name = cell_id(fw, model, "cpu") + (f"-s{seed}" if len(seeds) > 1 else "")
                cell_dir = run_dir / "cells" / name
                cell_dir.mkdir()
                status = (failed or {}).get((fw, model))
                if status:
                    row = make_row(cell, status=status, error=f"worker {status}: boom | details")
                    rows.append(dict(row, cell=name, phase=None if mode == "speed" else "train"))
                    continue
                if mode == "train":
                    per_epoch = 5.0 * (1 + frameworks.index(fw)) * (1 + 0.03 * rng.standard_normal())
                    history = [{"epoch": e, "lr": 0.1, "train_loss": 2.0 / e, "test_loss": 2.1 / e,
                                "test_accuracy": min(0.99, 0.5 + 0.1 * e + 0.01 * rng.standard_normal()),
                                "train_time_s": per_epoch * e, "eval_time_s": 0.2 * e} for e in range(1, epochs + 1)]
                    (cell_dir / "epochs.json").write_text(json.dumps(history, indent=1))
                    last = history[-1]
                    rows.append(dict(make_row(cell, status="ok", params=62006, test_accuracy=last["test_accuracy"],
                                              test_loss=last["test_loss"], train_loss=last["train_loss"],
                                              train_time_s=last["train_time_s"], eval_time_s=last["eval_time_s"],
                                              images_per_sec=1437 * epochs / last["train_time_s"]), cell=name))
                    hit = next((e for e in history if target is not None and e["test_accuracy"] >= target), None)
                    rows[-1].update(target=target, time_to_target_s=hit and hit["train_time_s"],
                                    epochs_to_target=hit and hit["epoch"], epochs_run=epochs)
                    continue
                samples = {p: list(step_s * (i + 1) * rng.lognormal(0.0, noise, n_samples))
                           for i, p in enumerate(PHASES)}
                (cell_dir / "samples.json").write_text(json.dumps(samples, indent=1))
                for phase, values in samples.items():
                    s = summarize(values).scaled(1000)
                    rows.append(dict(make_row(cell, status="ok", phase=phase, steps=n_samples, warmup=10,
                                              images_per_sec=128e3 / s["median"],
                                              **{f"ms_{k}": v for k, v in s.items() if k != "n"}), cell=name))
    write_csv(rows, run_dir / "results.csv")
    settings = {"mode": mode, "dataset": dataset, "epochs": epochs if mode == "train" else None, "batch_size": None,
                "seed": seeds[0], "seeds": len(seeds), "threads": 2, "device": "cpu", "precision": "fp32"}
    meta = {"run_id": run_id, "started": "2026-01-01T00:00:00+00:00", "command": ["convbench", "run"],
            "settings": settings, "harness_version": "0.1.0", "python": "3.11.7", "platform": "Linux", "cpu_count": 2,
            "host": "test", "git_commit": "0" * 40,
            "frameworks": {fw: {"framework": fw, "available": True, "reason": "", "version": "1.0",
                                "devices": [{"name": "cpu", "description": "x86_64"}]} for fw in frameworks}}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return run_dir


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    width, height = struct.unpack(">II", data[16:24])   # IHDR
    assert width >= 300 and height >= 200 and len(data) > 5000, (path, width, height, len(data))


def test_synthetic_rows_follow_the_schema(tmp_path):
    run = load_run(make_run(tmp_path, seeds=(0, 1)))
    assert list(run.rows[0])[:len(COLUMNS)] == list(COLUMNS)
    assert set(run.histories) == {"torch-lenet5-cpu-s0", "torch-lenet5-cpu-s1"}


def test_train_report_with_seeds_and_a_failed_cell(tmp_path):
    run_dir = make_run(tmp_path, frameworks=("torch", "tensorflow", "paddle"), models=("lenet5", "simple_cnn"),
                       seeds=(0, 1, 2), failed={("paddle", "simple_cnn"): "crashed"})
    report = write_report(run_dir)
    assert report == run_dir / "report.md"
    text = report.read_text()
    assert "| network | torch | tensorflow | paddle |" in text
    lenet = next(line for line in text.splitlines() if line.startswith("| lenet5 |"))
    assert lenet.count("±") == 6 and "(n=3)" in lenet
    assert "| simple_cnn |" in text and "crashed" in text and "boom \\| details" in text
    assert "## Failed cells" in text and "published" not in text
    for name in ("accuracy_vs_time.png", "train_time.png"):
        assert f"]({name})" in text
        assert_png(run_dir / name)
    assert not (run_dir / "step_time.png").exists()
    assert "## Settings" in text and "| framework paddle | 1.0; devices: cpu (x86_64) |" in text


def test_cifar10_report_shows_the_articles_figures(tmp_path):
    run_dir = make_run(tmp_path, dataset="cifar10", frameworks=("tensorflow", "paddle"), models=("lenet5", "vgg16"))
    text = write_report(run_dir, tmp_path / "out").read_text()
    assert "## The articles' published figures" in text and "8 Tesla K80s" in text
    assert "89.11% / 16 h 21 min" in text and "89.18% / 18 h 12 min" in text and "91.46%" in text
    assert "60.00%" in text and "ranking only" in text
    vgg_tf = next(line for line in text.splitlines() if "| VGG-16 | vgg16 | tensorflow |" in line)
    assert "%" in vgg_tf.split("|")[6]   # our figure beside theirs
    assert "| AlexNet with LRN | alexnet_lrn | paddle |" in text and "not run" in text
    assert (tmp_path / "out" / "accuracy_vs_time.png").exists() and not (run_dir / "report.md").exists()


def test_speed_report(tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                       models=("lenet5", "vgg16_imagenet"), seeds=(0, 1))
    text = write_report(run_dir).read_text()
    assert "## Step time" in text and "95% CI of the median" in text
    row = next(line for line in text.splitlines() if line.startswith("| lenet5 | forward |"))
    assert row.count("ms [") == 2 and "img/s" in row
    assert_png(run_dir / "step_time.png")
    assert "## Accuracy and training time" not in text


def test_time_to_target(tmp_path):
    run_dir = make_run(tmp_path, frameworks=("torch", "paddle"), seeds=(0, 1), target=0.65)
    text = write_report(run_dir).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| lenet5 |"))
    assert row.count("65% in ") == 2 and "(2/2 reached)" in row


@pytest.mark.parametrize("kind", ["missing", "file", "empty_dir", "garbage"])
def test_not_a_run_directory(tmp_path, kind):
    target = tmp_path / "x"
    if kind == "file":
        target.write_text("hello")
    elif kind == "empty_dir":
        target.mkdir()
    elif kind == "garbage":
        target.mkdir()
        (target / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConvbenchError) as err:
        write_report(target)
    message = str(err.value)
    assert "\n" not in message and str(target) in message
    assert ("does not exist" if kind == "missing" else "not a convbench") in message


def test_run_without_finished_cells(tmp_path):
    run_dir = make_run(tmp_path)
    write_csv([], run_dir / "results.csv")
    text = write_report(run_dir).read_text()
    assert "No cell has finished" in text and "## Settings" in text


@needs("torch")
def test_report_on_a_real_run(tmp_path):
    proc = run_cli("run", "--frameworks", "torch", "--models", "lenet5", "--epochs", "1", "--batch-size", "64",
                   "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = tmp_path.iterdir()
    text = write_report(run_dir).read_text()
    assert "| network | torch |" in text
    assert next(line for line in text.splitlines() if line.startswith("| lenet5 |")).count("%") == 1
    assert "2." in text and "## Versions and machine" in text
    assert_png(run_dir / "accuracy_vs_time.png")
    assert_png(run_dir / "train_time.png")
