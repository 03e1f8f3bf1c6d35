"""Recipes: defaults, files, overrides, schedules, and their one-line errors."""
from __future__ import annotations

import pytest
from helpers import REGISTRIES, needs, run_cli

from harness.commands.cli import build_parser
from harness.errors import ConvbenchError
from harness.orchestrator.plan import resolve_settings
from harness.orchestrator.recipes import load_recipe_file
from harness.settings import RunSettings


def settings(*argv: str) -> RunSettings:
    return resolve_settings(build_parser().parse_args(["run", *argv]), REGISTRIES)


def test_articles_recipe_is_the_default():
    r = settings("--dataset", "cifar10", "--data-dir", "/nowhere")
    assert (r.epochs, r.batch_size, r.lr, r.momentum, r.weight_decay, r.milestones) == (200, None, 0.1, 0.9, 2e-4, (100,))


def test_file_then_command_line(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('epochs = 30\nlr = 0.05\nschedule = "step:10,20"\naugment = true\nweight_decay = 0\n'
                    'batch_size = 64\n')
    r = settings("--recipe", str(path), "--lr", "0.2")
    assert (r.epochs, r.lr, r.milestones, r.augment, r.weight_decay, r.batch_size) == (30, 0.2, (10, 20), True, 0.0, 64)
    assert settings("--optimizer", "sgd", "--momentum", "0").momentum == 0.0
    with pytest.raises(ConvbenchError, match="optimizer sgd is plain SGD .momentum 0., but --momentum 0.5 asks"):
        settings("--optimizer", "sgd", "--momentum", "0.5")   # was zeroed without a word (issue 33)
    assert load_recipe_file(path)["epochs"] == 30


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
        settings("--recipe", str(path))


@pytest.mark.e2e
def test_missing_recipe_file_is_one_line_on_the_command_line(tmp_path):
    proc = run_cli("run", "--recipe", str(tmp_path / "nope.toml"), "--output", str(tmp_path))
    assert proc.returncode == 2 and "cannot read recipe file" in proc.stderr
    (tmp_path / "bad.toml").write_text("[[[")
    proc = run_cli("run", "--recipe", str(tmp_path / "bad.toml"), "--output", str(tmp_path))
    assert proc.returncode == 2 and "not valid TOML" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.e2e
@needs("torch")
def test_target_seeds_checkpoint_and_eval(tmp_path):
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
    assert "±" in proc.stdout
    ckpt = run_dir / "cells" / "torch-lenet5-cpu-s0" / "checkpoint.npz"
    ev = run_cli("eval", "--weights", str(ckpt), "--framework", "torch", "--model", "lenet5")
    assert ev.returncode == 0 and "test accuracy" in ev.stdout
    bad = run_cli("eval", "--weights", str(ckpt), "--framework", "torch", "--model", "simple_cnn")
    assert bad.returncode == 2 and "do not fit model 'simple_cnn'" in bad.stderr


@pytest.mark.e2e
@needs("torch")
def test_resume_from_continues_the_run_exactly_with_its_momentum(tmp_path):
    """Epoch 3 resumed from epoch 2's checkpoint equals epoch 3 of a straight run; without the momentum
    buffers (an old checkpoint) it does not, so the comparison can tell."""
    import json

    import pandas as pd

    from harness.model.weights import load_checkpoint, save_weights
    common = ["--frameworks", "torch", "--models", "lenet5", "--batch-size", "64", "--lr", "0.05", "--schedule", "step:2"]

    def third_epoch(*args: str, note: str = "") -> tuple[dict, str]:
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        proc = run_cli("run", *common, *args, "--output", str(out))
        assert proc.returncode == 0, proc.stderr
        run_dir = next(out.iterdir())
        assert note in pd.read_csv(run_dir / "results.csv", keep_default_na=False)["note"].iloc[0]
        cell = run_dir / "cells" / "torch-lenet5-cpu"
        return json.loads((cell / "epochs.json").read_text())[-1], str(cell / "checkpoint.npz")

    straight, _ = third_epoch("--epochs", "3")
    _, ckpt = third_epoch("--epochs", "2")
    weights, momentum, meta = load_checkpoint(ckpt)
    assert meta["epoch"] == "2" and set(momentum) == {k for k in weights if "running" not in k} and momentum
    resumed, _ = third_epoch("--epochs", "3", "--resume-from", ckpt, note="resumed after epoch 2 with its momentum buffers")
    assert resumed["epoch"] == 3 and resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-6)
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    bad = {k: v[..., :1] for k, v in momentum.items()}
    save_weights(tmp_path / "bad.npz", weights, bad, epoch="2")
    refused = run_cli("run", *common, "--epochs", "3", "--resume-from", str(tmp_path / "bad.npz"),
                      "--output", str(tmp_path / "refused"))
    assert refused.returncode == 2 and "momentum buffers: " in refused.stderr and "Traceback" not in refused.stderr
    save_weights(tmp_path / "old.npz", weights, epoch="2")
    restarted, _ = third_epoch("--epochs", "3", "--resume-from", str(tmp_path / "old.npz"), note="restart at zero")
    assert abs(restarted["train_loss"] / straight["train_loss"] - 1) > 1e-4


def test_python_3_10_reads_recipes_with_tomli(monkeypatch, tmp_path):
    """requires-python is >= 3.10, where tomllib does not exist: the module must take tomli (the same parser,
    declared as a dependency for python < 3.11) and read recipe files with it."""
    import importlib
    import sys
    import types

    import harness.orchestrator.recipes as recipes
    parser = recipes.tomllib   # the standard library's on 3.11+, the real tomli on 3.10
    backport = types.ModuleType("tomli")
    backport.loads, backport.TOMLDecodeError = parser.loads, parser.TOMLDecodeError
    monkeypatch.setitem(sys.modules, "tomli", backport)
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    try:
        reloaded = importlib.reload(recipes)
        assert reloaded.tomllib is backport
        (tmp_path / "r.toml").write_text("epochs = 4\n")
        assert reloaded.load_recipe_file(tmp_path / "r.toml") == {"epochs": 4}
        (tmp_path / "bad.toml").write_text("epochs = = 4\n")
        with pytest.raises(ConvbenchError, match="not valid TOML"):
            reloaded.load_recipe_file(tmp_path / "bad.toml")
    finally:
        monkeypatch.undo()
        importlib.reload(recipes)
    assert recipes.tomllib is parser
