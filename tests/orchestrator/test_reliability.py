"""Faults cost only their own cell; the journal survives kill -9; --resume completes the run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAULT_ENV, PATIENCE_S, TESTS, run_cli, wait_for

from harness.results import journal
from harness.results.rundir import new_run_dir


def faulty_run(tmp_path: Path, models: str, *extra: str) -> tuple[subprocess.CompletedProcess, pd.DataFrame, Path]:
    proc = run_cli("run", "--frameworks", "faulty", "--models", models, "--epochs", "1", "--batch-size", "64",
                   "--output", str(tmp_path), *extra, env=FAULT_ENV)
    run_dir = max(tmp_path.iterdir())
    return proc, pd.read_csv(run_dir / "results.csv"), run_dir


@pytest.mark.e2e
def test_every_fault_gets_its_status_and_the_others_finish(tmp_path):
    models = "fault_crash,fault_ok,fault_segv,fault_hang,fault_nan,fault_error,fault_oom"
    proc, df, run_dir = faulty_run(tmp_path, models, "--timeout", "20", "--oom-retry")
    assert proc.returncode == 1, proc.stderr
    status = dict(zip(df["model"], df["status"]))
    assert status == {"fault_crash": "crashed", "fault_ok": "ok", "fault_segv": "crashed", "fault_hang": "timeout",
                      "fault_nan": "diverged", "fault_error": "error", "fault_oom": "ok"}
    error = dict(zip(df["model"], df["error"].fillna("")))
    assert "SIGABRT" in error["fault_crash"] and "SIGSEGV" in error["fault_segv"]
    assert "--timeout 20s" in error["fault_hang"] and "nan" in error["fault_nan"]
    assert "RuntimeError: boom" in error["fault_error"] and "worker.log" in error["fault_error"]
    oom = df[df["model"] == "fault_oom"].iloc[0]
    assert oom["batch_size"] == 32 and "halved from 64 to 32" in oom["note"]
    assert df.loc[df["model"] == "fault_ok", "test_accuracy"].iloc[0] > 0.1
    assert len(journal.attempts(run_dir)) == 7


@pytest.mark.e2e
def test_a_training_that_collapses_to_chance_is_diverged_with_its_figures(tmp_path):
    """Seen on a GPU: a finite loss back at ln 10 after the network had learned; the row must not read as a result."""
    proc, df, run_dir = faulty_run(tmp_path, "fault_collapse,fault_ok", "--epochs", "3")
    assert proc.returncode == 1, proc.stderr
    row = df.set_index("model").loc["fault_collapse"]
    assert row["status"] == "diverged" and "training collapsed to chance" in row["error"], row["error"]
    assert "from epoch 2 on" in row["error"] and "ln 10 = 2.3026" in row["error"]
    assert row["test_accuracy"] < 0.125 and row["epochs_run"] == 3   # the figures as measured stay in the row
    history = json.loads((run_dir / "cells" / "faulty-fault_collapse-cpu" / "epochs.json").read_text())
    assert history[0]["test_accuracy"] > 0.2
    assert df.set_index("model").loc["fault_ok", "status"] == "ok"
    assert "diverged" in proc.stdout


@pytest.mark.e2e
def test_oom_without_retry(tmp_path):
    proc, df, _ = faulty_run(tmp_path, "fault_oom")
    assert proc.returncode == 1 and df["status"].tolist() == ["oom"]
    assert "MemoryError" in df["error"][0]


@pytest.mark.e2e
def test_unavailable_framework_is_decided_before_the_cell(tmp_path):
    proc = run_cli("run", "--frameworks", "faulty", "--models", "fault_ok", "--output", str(tmp_path),
                   env={**FAULT_ENV, "CONVBENCH_DISABLE_PLUGINS": ""})
    assert proc.returncode == 0
    env = dict(FAULT_ENV, CONVBENCH_PLUGINS="faulty_plugin", FAULTY_FAKE="1")
    del env["PYTHONPATH"]  # the worker cannot import the plugin module: the probe must say so
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                           "from harness.commands.cli import main; sys.exit(main(sys.argv[2:]))", str(TESTS), "run",
                           "--frameworks", "faulty", "--models", "fault_ok", "--output", str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "faulty: unavailable" in proc.stdout
    df = pd.read_csv(max(tmp_path.iterdir()) / "results.csv")
    assert df["status"].tolist() == ["unavailable"] and not (max(tmp_path.iterdir()) / "cells").exists()



def start_run(tmp_path: Path, release: Path) -> subprocess.Popen:
    env = {**os.environ, **FAULT_ENV, "FAULTY_RELEASE": str(release)}
    return subprocess.Popen([sys.executable, "-m", "harness", "run", "--frameworks", "faulty", "--models",
                             "fault_ok,fault_slow_ok,fault_nan", "--epochs", "1", "--batch-size", "64",
                             "--output", str(tmp_path / "out")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def slow_worker_pids(tmp_path: Path) -> list[int]:
    """This test's slow worker only (its run folder in the pattern): others' runs of the same tests may be running."""
    out = subprocess.run(["pgrep", "-f", f"{tmp_path}/out/.*/faulty-fault_slow_ok-cpu/cell.json"], capture_output=True,
                         text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.e2e
def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    release = tmp_path / "release"
    proc = start_run(tmp_path, release)
    wait_for(lambda: (tmp_path / "out").exists() and any((tmp_path / "out").iterdir()))
    run_dir = next((tmp_path / "out").iterdir())
    wait_for(lambda: len(journal.attempts(run_dir)) == 1 and slow_worker_pids(tmp_path))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not slow_worker_pids(tmp_path), 30)  # the worker died with its orchestrator
    assert list(journal.latest(run_dir)) == ["faulty-fault_ok-cpu"]
    release.write_text("")
    resumed = run_cli("run", "--resume", str(run_dir), env={**FAULT_ENV, "FAULTY_RELEASE": str(release)})
    assert resumed.returncode == 1, resumed.stderr  # fault_nan diverges
    assert "ok in an earlier attempt; kept" in resumed.stdout
    assert [a["rows"][0]["model"] for a in journal.attempts(run_dir)] == ["fault_ok", "fault_slow_ok", "fault_nan"]
    df = pd.read_csv(run_dir / "results.csv")
    assert df["status"].tolist() == ["ok", "ok", "diverged"]
    again = run_cli("run", "--resume", str(run_dir), env=FAULT_ENV)  # only the diverged cell runs again
    assert [a["rows"][0]["model"] for a in journal.attempts(run_dir)][3:] == ["fault_nan"] and again.returncode == 1
    assert len(pd.read_csv(run_dir / "results.csv")) == 3


@pytest.mark.e2e
def test_ctrl_c_stops_the_worker_and_prints_the_resume_command(tmp_path):
    proc = start_run(tmp_path, tmp_path / "never")
    wait_for(lambda: slow_worker_pids(tmp_path))
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 130
    assert "Resume with: convbench run --resume" in out
    run_dir = next((tmp_path / "out").iterdir())
    assert pd.read_csv(run_dir / "results.csv")["model"].tolist() == ["fault_ok"]
    assert json.loads((run_dir / "meta.json").read_text())["interrupted"] is True
    wait_for(lambda: not slow_worker_pids(tmp_path), 30)


@pytest.mark.e2e
def test_sigterm_at_any_moment_leaves_a_resumable_run(tmp_path):
    """SIGTERM as soon as the run announces itself (while frameworks are probed, or in the first cell)."""
    proc = start_run(tmp_path, tmp_path / "never")
    assert proc.stdout is not None and proc.stdout.readline().startswith("run ")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 130, err[-2000:]
    assert "Resume with: convbench run --resume" in out and "Traceback" not in err
    run_dir = next((tmp_path / "out").iterdir())
    assert json.loads((run_dir / "meta.json").read_text())["interrupted"] is True
    wait_for(lambda: not slow_worker_pids(tmp_path), 30)


@pytest.mark.e2e
@pytest.mark.parametrize("args,message", [
    (["--resume", "/nonexistent"], "is not a convbench run directory"),
    (["--resume", ".", "--models", "lenet5"], "drop --models"),
])
def test_bad_resume(args, message):
    proc = run_cli("run", *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_a_second_run_never_reuses_a_directory(tmp_path):
    ids = {new_run_dir(tmp_path)[0] for _ in range(3)}
    assert len(ids) == 3
