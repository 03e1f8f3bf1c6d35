"""A worker environment with convbench's core alone (numpy, pluggy, psutil): the real worker runs an interpreter check,
a probe and a training cell there (the test-only numpy framework, tests/faulty_plugin.py, on the shipped digits),
where pandas, SciPy, scikit-learn, Matplotlib, Plotly and rich are not installed; a command that needs them says so
in one line."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TESTS
from venvs import clean_env, distributions, make_venv

from harness.identity import build_id
from harness.results.libraries import LIBRARIES
from harness.settings import Cell, RunSettings
from harness.worker.protocol import EXIT_OK, InfoJob, ProbeJob, read_job, write_job

CORE = ("numpy", "pluggy", "psutil", *(("tomli",) if sys.version_info < (3, 11) else ()))


@pytest.fixture(scope="module")
def core_env(tmp_path_factory, wheels) -> Path:
    where = tmp_path_factory.mktemp("core")
    return make_venv(where / "venv", distributions(*CORE), [wheels["convbench"]])


def run_worker(bin_dir: Path, job, tmp: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """``python -m harness.worker JOB OUT`` in the core environment, with the faulty framework's plugin on its path."""
    plugins = tmp / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    shutil.copy2(TESTS / "faulty_plugin.py", plugins)
    write_job(tmp / "job.json", job)
    env = clean_env(CONVBENCH_PLUGINS="faulty_plugin", PYTHONPATH=str(plugins), CONVBENCH_DATA=str(tmp / "cache"))
    proc = subprocess.run([str(bin_dir / "python"), "-m", "harness.worker", str(tmp / "job.json"), str(tmp / "out.json")],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    return proc, json.loads((tmp / "out.json").read_text()) if (tmp / "out.json").exists() else {}


@pytest.mark.e2e
def test_the_core_environment_has_no_report_library(core_env, tmp_path):
    probe = "import importlib.util as u; print([n for n in {} if u.find_spec(n)])".format(
        [*LIBRARIES, "sklearn", "torch"])
    found = subprocess.run([str(core_env / "python"), "-c", probe], cwd=tmp_path, env=clean_env(), capture_output=True,
                           text=True, check=True)
    assert found.stdout.strip() == "[]"


@pytest.mark.e2e
def test_a_worker_runs_its_jobs_with_the_core_alone(core_env, tmp_path):
    proc, info = run_worker(core_env, InfoJob("faulty"), tmp_path / "info")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert info["executable"] == str(core_env / "python") and info["installed"] is True
    assert info["build"] == build_id()   # the wheel holds this checkout's code

    proc, probed = run_worker(core_env, ProbeJob("faulty"), tmp_path / "probe")
    assert proc.returncode == EXIT_OK and probed["devices"][0]["name"] == "cpu", proc.stderr

    cell = Cell(run_id="slim", name="faulty-fault_ok-cpu", framework="faulty", model="fault_ok",
                run=RunSettings(mode="train", dataset="digits", epochs=1, lr=0.1, threads=1, batch_size=64))
    proc, result = run_worker(core_env, cell, tmp_path / "cell")
    assert proc.returncode == EXIT_OK, proc.stderr
    [row] = result["rows"]
    assert (row["status"], row["dataset"], row["epochs_run"]) == ("ok", "digits", 1) and row["test_accuracy"] > 0.5
    assert read_job(tmp_path / "cell" / "job.json") == cell


@pytest.mark.e2e
def test_a_command_that_needs_the_report_extra_says_so_in_one_line(core_env, tmp_path):
    listed = subprocess.run([str(core_env / "convbench"), "list"], cwd=tmp_path, env=clean_env(), capture_output=True,
                            text=True)
    assert listed.returncode == 0 and "lenet5" in listed.stdout, listed.stderr
    for args in (["report", str(tmp_path)], ["run", "--models", "lenet5", "--output", str(tmp_path / "out")]):
        proc = subprocess.run([str(core_env / "convbench"), *args], cwd=tmp_path, env=clean_env(), capture_output=True,
                              text=True)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert (f"convbench {args[0]} needs {', '.join(LIBRARIES)}, which are not installed" in proc.stderr
                and "pip install 'convbench[report]'" in proc.stderr), proc.stderr
    assert not (tmp_path / "out").exists()
