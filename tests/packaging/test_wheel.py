"""The wheels as a user gets them: convbench's and convbench-jax's wheels installed (not editable) into a fresh
virtual environment, then `convbench list`, a tiny `convbench run` and `convbench report` from outside the checkout,
whose report holds the articles' figures (package data, read with importlib.resources)."""
from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
from helpers import make_release, needs
from venvs import ROOT, clean_env, everything_but_convbench, make_venv

import harness
from harness.results.schema import SCHEMAS


def test_the_version_is_written_once_and_read_from_pyproject_in_a_checkout():
    from harness.orchestrator.recipes import tomllib  # tomli on Python 3.10
    assert harness.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert '__version__ = "' not in (ROOT / "harness" / "__init__.py").read_text()


def test_a_pyproject_that_is_not_convbench_s_is_not_read(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "9.9"\n')
    assert harness._checkout_version(tmp_path / "pyproject.toml") is None
    assert harness._checkout_version(tmp_path / "missing.toml") is None


@pytest.mark.e2e
def test_the_wheel_ships_the_results_schemas(wheels):
    """docs/results.md points users at them: they are package data, as in the checkout."""
    with zipfile.ZipFile(wheels["convbench"]) as whl:
        for name in SCHEMAS:
            assert whl.read(f"harness/results/schema/{name}") == (ROOT / "harness" / "results" / "schema" / name).read_bytes()


@pytest.mark.e2e
@needs("torch")
def test_the_wheels_installed_in_a_fresh_environment(tmp_path, wheels):
    bin_dir = make_venv(tmp_path / "venv", everything_but_convbench(), [wheels["convbench"], wheels["convbench-jax"]])
    env = clean_env(CONVBENCH_DATA=str(tmp_path / "cache"))

    def convbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_dir / "convbench"), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    where = subprocess.run([str(bin_dir / "python"), "-c", "import harness, convbench_jax, importlib.metadata as m; "
                            "print(harness.__file__); print(convbench_jax.__file__); "
                            "print(harness.__version__, m.version('convbench'))"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    site = tmp_path / "venv" / "lib"
    assert all(Path(p).is_relative_to(site) for p in where[:2]), where   # the wheels' code, not this checkout's
    assert where[2] == f"{harness.__version__} {harness.__version__}"   # the metadata's, the same as pyproject's

    schemas = subprocess.run([str(bin_dir / "python"), "-c", "from harness.results.schema import SCHEMAS, load; "
                              "print(*(load(n)['title'] for n in SCHEMAS), sep=';')"],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert schemas.stdout == "convbench results row;convbench meta.json\n", schemas.stderr   # package data, installed

    listed = convbench("list")
    assert listed.returncode == 0 and "lenet5" in listed.stdout, listed.stderr
    plugins = convbench("plugins")
    assert "jax: convbench-jax 0.1.0 (entry point)" in plugins.stdout, plugins.stdout + plugins.stderr

    make_release(tmp_path / "data", per_batch=20)   # a CIFAR-10 release in the real format: 100 + 20 images
    run = convbench("run", "--frameworks", "torch", "--models", "lenet5", "--epochs", "1", "--batch-size", "50",
                    "--dataset", "cifar10", "--data-dir", "data", "--no-checksum", "--threads", "1", "--output", "out")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    [run_dir] = (tmp_path / "out").iterdir()
    report = convbench("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    text = (run_dir / "report.md").read_text()
    section = text[text.index("## The articles' published figures"):]
    assert "89.11% / 16 h 21 min" in section and "89.18% / 18 h 12 min" in section and "missing" not in section
    assert "| LeNet-5 | lenet5 | paddle |" in section
