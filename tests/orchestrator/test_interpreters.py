"""One environment per framework: --python FRAMEWORK=PATH, $CONVBENCH_PYTHON_*, a config file; real interpreters.

The second environment is a real virtual environment made by the test: ``venv --without-pip`` over this test
environment's packages (a .pth file, so torch needs no second install), with convbench installed into it by
pip, without dependencies; the workers of one framework demonstrably run there.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest
from helpers import REGISTRIES, needs, run_cli

from harness import __version__
from harness.errors import ConvbenchError
from harness.orchestrator.interpreters import from_config, parse, problem, resolve_pythons

ROOT = Path(__file__).resolve().parents[2]
KNOWN = REGISTRIES.frameworks.names()


def test_entries_config_and_environment_with_their_precedence(tmp_path):
    config = tmp_path / "convbench.toml"
    config.write_text('[python]\ntorch = "/from/config"\ntensorflow = "/from/config/tf"\n')
    environ = {"CONVBENCH_PYTHON_TORCH": "/from/env", "CONVBENCH_PYTHON_PADDLE": "/from/env/paddle"}
    got = resolve_pythons(["torch=/from/cli"], str(config), KNOWN, environ)
    assert got == {"torch": "/from/cli", "tensorflow": "/from/config/tf", "paddle": "/from/env/paddle"}
    assert resolve_pythons(None, None, KNOWN, {"CONVBENCH_CONFIG": str(config)})["torch"] == "/from/config"
    assert resolve_pythons(["torch=rel/python"], None, KNOWN, {})["torch"] == str(Path("rel/python").absolute())


@pytest.mark.parametrize("call, message", [
    (lambda tmp: parse(["torch"]), "--python takes FRAMEWORK=PATH"),
    (lambda tmp: resolve_pythons(["pytorch=/x"], None, KNOWN, {}), "unknown framework 'pytorch' (did you mean 'torch'?)"),
    (lambda tmp: from_config(tmp / "missing.toml"), "cannot read config file"),
    (lambda tmp: from_config((tmp / "bad.toml", (tmp / "bad.toml").write_text("python = 3"))[0]), "[python] maps"),
])
def test_bad_entries_are_one_line_errors(tmp_path, call, message):
    with pytest.raises(ConvbenchError) as info:
        call(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_what_cannot_be_an_interpreter(tmp_path):
    assert "does not exist" in problem(str(tmp_path / "nothing"))
    (tmp_path / "text").write_text("hello")
    assert "is not an executable interpreter" in problem(str(tmp_path / "text"))
    assert problem(sys.executable) is None


def make_env(where: Path, version: str | None = None) -> Path:
    """A virtual environment that sees this test environment's packages and has its own convbench
    (this checkout, or a copy with another version number) installed by pip without dependencies."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    (Path(purelib) / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = where.parent / f"convbench-{version or __version__}"   # a copy: pip builds in the source tree
    top = {".venv", ".git", "results", "tests", "build", "benchmarks", "docs"}   # the checkout's own, not harness/results
    shutil.copytree(ROOT, source, ignore=lambda folder, names: [
        n for n in names if (Path(folder) == ROOT and n in top) or n == "__pycache__" or n.endswith(".egg-info")])
    if version is not None:   # the same code under another version number (pyproject.toml: the one place)
        path = source / "pyproject.toml"
        path.write_text(path.read_text().replace(f'version = "{__version__}"', f'version = "{version}"', 1))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-build-isolation", str(source)], check=True, capture_output=True, env={**os.environ,
                                                                                               "PIP_NO_INPUT": "1"})
    return python


@pytest.fixture(scope="module")
def torch_env(tmp_path_factory) -> Path:
    return make_env(tmp_path_factory.mktemp("torch-env") / "env")


@pytest.mark.e2e
@needs("torch")
@needs("jax")
def test_a_framework_runs_in_its_own_interpreter(tmp_path, torch_env):
    proc = run_cli("run", "--frameworks", "torch,jax", "--models", "lenet5", "--epochs", "1", "--batch-size", "64",
                   "--python", f"torch={torch_env}", "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    df = pd.read_csv(next(tmp_path.iterdir()) / "results.csv")
    where = dict(zip(df["framework"], df["interpreter"]))
    assert where["torch"] == str(torch_env) and where["jax"] == sys.executable
    assert f"in {torch_env}" in proc.stdout and (df["python"] == df["python"][0]).all()
    plugins = run_cli("plugins", env={"CONVBENCH_PYTHON_TORCH": str(torch_env)})
    assert f"framework torch: available (torch {df['framework_version'][0]}) in {torch_env}" in plugins.stdout


@pytest.mark.e2e
@needs("torch")
def test_another_convbench_version_is_refused_in_one_line(tmp_path):
    other = make_env(tmp_path / "env", version="0.0.9")
    proc = run_cli("run", "--frameworks", "torch", "--models", "lenet5", "--epochs", "1",
                   "--python", f"torch={other}", "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"has convbench 0.0.9, this convbench is {__version__}" in proc.stderr


@pytest.mark.e2e
def test_interpreters_that_cannot_run_convbench(tmp_path):
    (tmp_path / "notes.txt").write_text("not a python")
    for python, message in ((tmp_path / "notes.txt", "is not an executable interpreter"),
                            (tmp_path / "missing", "does not exist"),
                            (Path(sys.base_prefix) / "bin" / "python3", "has no convbench installed")):
        # the base installation's interpreter (sys.base_prefix: in a virtualenv, tox's, sys._base_executable is the
        # environment's own, convbench and all), from tmp_path: run from the checkout, a bare interpreter would import
        # this checkout's harness from its working directory
        proc = run_cli("run", "--frameworks", "torch", "--python", f"torch={python}", "--output", str(tmp_path / "o"),
                       cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.e2e
@needs("torch")
def test_a_bad_interpreter_for_a_framework_not_asked_for_leaves_it_unavailable(tmp_path):
    """Not asked for by name: the framework is unavailable, with the reason, and the others run."""
    proc = run_cli("run", "--models", "lenet5", "--epochs", "1", "--python", f"paddle={tmp_path / 'missing'}",
                   "--output", str(tmp_path / "o2"), env={"CONVBENCH_DISABLE_PLUGINS": "tensorflow,jax"})
    df = pd.read_csv(next((tmp_path / "o2").iterdir()) / "results.csv")
    status = dict(zip(df["framework"], df["status"]))
    assert status["paddle"] == "unavailable" and "does not exist" in df.set_index("framework")["error"]["paddle"]
    assert status["torch"] == "ok" and proc.returncode == 1
