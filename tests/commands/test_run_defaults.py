"""`convbench run`'s defaults do the expected thing: without --frameworks the installed frameworks (the others named
once, with why); cpu unless asked, the first line naming a GPU a framework sees; options the mode does not read
named; contradictions and refusals in one line, leaving no run folder behind.

The missing framework is real: a test-only plugin registers "ghost", whose module does not exist, beside the
test-only "faulty" framework (plain numpy, tests/faulty_plugin.py), so the runs are quick and need no framework."""
from __future__ import annotations

import json
import os

import pandas as pd
import pytest
from helpers import FAULT_ENV, REGISTRIES, run_cli

from harness.commands.cli import build_parser
from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.orchestrator import run as orchestrator_run
from harness.orchestrator.defaults import device_note, frameworks_to_run
from harness.orchestrator.plan import Plan, resolve_settings, resume_plan
from harness.orchestrator.probes import Probe
from harness.registry import Registry

GHOST = FrameworkSpec("ghost", "convbench_ghost_not_installed", ("ghost-framework",), ("cpu",))
GHOST_PLUGIN = """from harness import hookimpl
from harness.frameworks import FrameworkSpec


@hookimpl
def convbench_add_frameworks(registry):
    registry.add("ghost", FrameworkSpec("ghost", "convbench_ghost_not_installed", ("ghost-framework",), ("cpu",)))
"""
GHOST_REASON = ("python module 'convbench_ghost_not_installed' is not installed (pip install ghost-framework; a GPU "
                "needs the framework's GPU build)")
GPUS = [{"name": "cpu", "description": "x86"}, {"name": "cuda:0", "description": "NVIDIA H100 80GB HBM3"},
        {"name": "cuda:1", "description": "NVIDIA H100 80GB HBM3"}]
CPU_ONLY = [{"name": "cpu", "description": "x86"}]


def args(*argv: str):
    return build_parser().parse_args(["run", *argv])


@pytest.fixture
def ghost_env(tmp_path):
    """faulty (installed) and ghost (not) registered; the real frameworks disabled to keep the runs quick."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "ghost_plugin.py").write_text(GHOST_PLUGIN)
    return {"CONVBENCH_PLUGINS": "faulty_plugin,ghost_plugin", "CONVBENCH_DISABLE_PLUGINS": "torch,tensorflow,paddle,jax",
            "PYTHONPATH": os.pathsep.join([str(folder), FAULT_ENV["PYTHONPATH"]])}


QUICK = ("--models", "fault_ok", "--epochs", "1", "--batch-size", "64")


@pytest.mark.e2e
def test_without_frameworks_the_installed_ones_run_and_the_others_are_named(tmp_path, ghost_env):
    """Was: every registered framework, so an install without one of them got an unavailable row and exit 1."""
    proc = run_cli("run", *QUICK, "--output", str(tmp_path / "out"), env=ghost_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = proc.stdout.splitlines()[:2]
    assert first.startswith("run ") and " 1 framework(s) x 1 model(s) on cpu, digits, " in first   # no GPU here: no note
    assert second == f"  left out (not installed; --frameworks NAME requires one): ghost: {GHOST_REASON}"
    (run_dir,) = (tmp_path / "out").iterdir()
    assert pd.read_csv(run_dir / "results.csv")["framework"].tolist() == ["faulty"]
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["frameworks"] == ["faulty"] and plan["left_out"] == {"ghost": GHOST_REASON}
    asked = run_cli("run", "--frameworks", "faulty,ghost", *QUICK, "--output", str(tmp_path / "asked"), env=ghost_env)
    assert asked.returncode == 1 and "left out" not in asked.stdout   # asked for by name: still fails the run
    df = pd.read_csv(next((tmp_path / "asked").iterdir()) / "results.csv")
    assert dict(zip(df["framework"], df["status"])) == {"faulty": "ok", "ghost": "unavailable"}


@pytest.mark.e2e
@pytest.mark.parametrize("refusal, message", [
    (("--device", "cuda:0"), "device 'cuda:0' not found: no available framework sees it on this machine"),
    (("--python", "faulty=/nonexistent/python3"), "--python faulty=/nonexistent/python3: interpreter /nonexistent/python3 "
                                                  "does not exist"),
])
def test_a_refusal_leaves_no_run_folder(tmp_path, refusal, message):
    """Was: plan.json, meta.json, .lock and probe.log left in a folder that --resume could only refuse again."""
    out = tmp_path / "out"
    proc = run_cli("run", "--frameworks", "faulty", *QUICK, *refusal, "--output", str(out), env=FAULT_ENV)
    assert proc.returncode == 2 and proc.stderr == f"convbench: error: {message}\n", proc.stderr
    assert list(out.iterdir()) == []


def test_a_resumed_run_keeps_its_folder_on_a_refusal(tmp_path):
    plan = Plan("r", tmp_path / "r", [], ["faulty"], ["fault_ok"], [0], resolve_settings(args(), REGISTRIES))
    plan.run_dir.mkdir()
    with pytest.raises(ConvbenchError, match="no GPU"):
        orchestrator_run.refuse(plan, {"run_id": "r"}, "no GPU")
    assert json.loads((plan.run_dir / "meta.json").read_text()) == {"run_id": "r"}
    plan.new = True
    with pytest.raises(ConvbenchError, match="no GPU"):
        orchestrator_run.refuse(plan, {"run_id": "r"}, "no GPU")
    assert not plan.run_dir.exists()


def test_the_default_frameworks_are_the_installed_ones_and_those_given_an_interpreter():
    registry: Registry[FrameworkSpec] = Registry("framework")
    registry.add("numpy", FrameworkSpec("numpy", "numpy", ("numpy",)))
    registry.add("ghost", GHOST)
    assert frameworks_to_run(None, registry, lambda fw: None) == (["numpy"], {"ghost": GHOST_REASON})
    # its own interpreter: asked for, so its probe decides (a broken one is an unavailable row that fails the run)
    assert frameworks_to_run(None, registry, lambda fw: "/envs/ghost/bin/python" if fw == "ghost" else None) == (
        ["numpy", "ghost"], {})
    assert frameworks_to_run(["ghost"], registry, lambda fw: None) == (["ghost"], {})
    alone: Registry[FrameworkSpec] = Registry("framework")
    alone.add("ghost", GHOST)
    with pytest.raises(ConvbenchError) as err:
        frameworks_to_run(None, alone, lambda fw: None)
    assert str(err.value) == f"no framework is installed: ghost: {GHOST_REASON}"


def probe(name: str, devices: list, available: bool = True) -> Probe:
    return Probe(name, available, "" if available else "not installed", "1.0", devices if available else [])


def test_on_a_gpu_machine_the_first_line_says_cpu_is_the_default_and_how_to_use_the_gpu(capsys, tmp_path):
    """Decision: cpu stays the default everywhere (orchestrator/defaults.py says why); the first line says so."""
    probes = {"torch": probe("torch", GPUS), "tensorflow": probe("tensorflow", CPU_ONLY), "paddle": probe("paddle", [], False)}
    note = device_note(probes)
    assert note == (" (the default; torch sees cuda:0 (NVIDIA H100 80GB HBM3) and 1 more GPU; tensorflow sees no GPU: "
                    "--device cuda:0 runs there)")
    assert device_note({"torch": probe("torch", GPUS[:2]), "jax": probe("jax", GPUS[:2])}) == (
        " (the default; torch, jax see cuda:0 (NVIDIA H100 80GB HBM3): --device cuda:0 runs there)")
    assert device_note({"torch": probe("torch", CPU_ONLY)}) == ""
    assert device_note({"torch": probe("torch", GPUS, available=False)}) == ""
    plan = Plan("r", tmp_path, [], ["torch", "tensorflow", "paddle"], ["lenet5"], [0],
                resolve_settings(args(), REGISTRIES), new=True, default_device=True)
    orchestrator_run.announce(plan, probes)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"run r: 3 framework(s) x 1 model(s) on cpu{note}, digits, 10 epoch(s)")
    plan.default_device = False   # --device cpu given (or a resumed run): nothing to add
    orchestrator_run.announce(plan, probes)
    assert " on cpu, digits" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("argv, warning", [
    (("--mode", "speed", "--epochs", "5", "--target", "0.9"), "--epochs, --target apply to train mode; ignored in this "
                                                              "speed-mode run"),
    (("--mode", "speed", "--lr", "0.5", "--augment"), "--lr, --augment apply to train mode; ignored in this speed-mode run"),
    (("--warmup", "3", "--steps", "7"), "--warmup, --steps apply to speed mode; ignored in this train-mode run"),
    (("--steps", "7",), "--steps applies to speed mode; ignored in this train-mode run"),
    (("--mode", "speed", "--steps", "7", "--warmup", "0"), None),
    (("--epochs", "3", "--lr", "0.2"), None),
])
def test_options_the_mode_does_not_read_are_named_in_one_line(capsys, argv, warning):
    """Was: dropped (speed: --epochs, --target) or ignored (train: --warmup, --steps) without a word."""
    resolve_settings(args(*argv), REGISTRIES)
    err = capsys.readouterr().err
    assert err == (f"convbench: warning: {warning}\n" if warning else "")


def test_plain_sgd_with_a_momentum_is_a_contradiction(tmp_path):
    """Was: --optimizer sgd zeroed an explicit --momentum without a word."""
    with pytest.raises(ConvbenchError, match=r"optimizer sgd is plain SGD \(momentum 0\), but --momentum 0.5 asks"):
        resolve_settings(args("--optimizer", "sgd", "--momentum", "0.5"), REGISTRIES)
    recipe = tmp_path / "r.toml"
    recipe.write_text('optimizer = "sgd"\nmomentum = 0.9\n')
    with pytest.raises(ConvbenchError, match="the recipe file's momentum 0.9 asks for momentum"):
        resolve_settings(args("--recipe", str(recipe)), REGISTRIES)
    recipe.write_text("momentum = 0.95\n")   # the command line overrides the file, as for every option
    assert resolve_settings(args("--recipe", str(recipe), "--optimizer", "sgd"), REGISTRIES).momentum == 0.0
    assert resolve_settings(args("--optimizer", "sgd"), REGISTRIES).momentum == 0.0


def test_output_with_resume_is_refused(tmp_path):
    """Was: ignored; the resumed run went on in its own folder."""
    with pytest.raises(ConvbenchError, match="--resume continues the run in its own folder with its own settings; "
                                             "drop --output"):
        resume_plan(args("--resume", str(tmp_path), "--output", str(tmp_path / "elsewhere")), REGISTRIES)
