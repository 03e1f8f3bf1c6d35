"""Recipes: defaults, files, overrides, schedules, and their one-line errors."""
from __future__ import annotations

import pytest
from conftest import needs, run_cli

from harness.errors import ConvbenchError
from harness.recipes import load_recipe_file, parse_schedule, resolve


def test_articles_recipe_is_the_default():
    r = resolve({}, {}, 200)
    assert (r["batch_size"], r["lr"], r["momentum"], r["weight_decay"], r["milestones"]) == (128, 0.1, 0.9, 2e-4, [100])


def test_file_then_command_line(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('epochs = 30\nlr = 0.05\nschedule = "step:10,20"\naugment = true\nweight_decay = 0\n')
    r = resolve(load_recipe_file(path), {"lr": 0.2, "epochs": None}, 200)
    assert (r["epochs"], r["lr"], r["milestones"], r["augment"], r["weight_decay"]) == (30, 0.2, [10, 20], True, 0.0)
    assert resolve({}, {"optimizer": "sgd"}, 5)["momentum"] == 0.0


@pytest.mark.parametrize("text,milestones", [("step", (5,)), ("constant", ()), ("step:2,7", (2, 7))])
def test_schedules(text, milestones):
    assert parse_schedule(text, 10) == milestones


@pytest.mark.parametrize("content,message", [
    ("epochs = ", "not valid TOML"),
    ("epoch = 3", "unknown key 'epoch'"),
    ('lr = "fast"', "lr must be float"),
    ("augment = 1", "augment must be bool"),
    ("epochs = 0", "epochs must be at least 1"),
    ('schedule = "cosine"', "bad schedule 'cosine'"),
    ("target = 89", "target is a test accuracy"),
])
def test_bad_recipe_files(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConvbenchError, match=message):
        resolve(load_recipe_file(path), {}, 10)


def test_missing_recipe_file_is_one_line_on_the_command_line(tmp_path):
    proc = run_cli("run", "--recipe", str(tmp_path / "nope.toml"), "--output", str(tmp_path))
    assert proc.returncode == 2 and "cannot read recipe file" in proc.stderr
    (tmp_path / "bad.toml").write_text("[[[")
    proc = run_cli("run", "--recipe", str(tmp_path / "bad.toml"), "--output", str(tmp_path))
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr and "Traceback" not in proc.stderr


@needs("torch")
def test_target_seeds_checkpoint_resume_and_eval(tmp_path):
    import pandas as pd
    out = tmp_path / "runs"
    proc = run_cli("run", "--frameworks", "torch", "--models", "lenet5", "--epochs", "3", "--batch-size", "32",
                   "--lr", "0.02", "--target", "0.5", "--seeds", "2", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    run_dir = next(out.iterdir())
    df = pd.read_csv(run_dir / "results.csv")
    assert df["cell"].tolist() == ["torch-lenet5-cpu-s0", "torch-lenet5-cpu-s1"] and df["seed"].tolist() == [0, 1]
    assert (df["time_to_target_s"] > 0).all() and (df["epochs_to_target"] >= 1).all()
    assert (df["time_to_target_s"] >= df["train_time_s"]).all()   # includes evaluation, from first touch
    assert "+/-" in proc.stdout
    ckpt = run_dir / "cells" / "torch-lenet5-cpu-s0" / "checkpoint.npz"
    resumed = run_cli("run", "--frameworks", "torch", "--models", "lenet5", "--epochs", "4", "--batch-size", "32",
                      "--lr", "0.02", "--resume-from", str(ckpt), "--output", str(out))
    assert resumed.returncode == 0, resumed.stderr
    row = pd.read_csv(max(out.iterdir()) / "results.csv").iloc[0]
    assert "resumed after epoch" in row["note"] and row["epochs_run"] >= 1
    ev = run_cli("eval", "--weights", str(ckpt), "--framework", "torch", "--model", "lenet5")
    assert ev.returncode == 0 and "test accuracy" in ev.stdout
    bad = run_cli("eval", "--weights", str(ckpt), "--framework", "torch", "--model", "simple_cnn")
    assert bad.returncode == 2 and "do not fit model 'simple_cnn'" in bad.stderr
