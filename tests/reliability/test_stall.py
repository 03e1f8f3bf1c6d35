"""The stall watchdog, --timeout and --stall-timeout on --resume, and SIGHUP: faults produced for real with the
test-only "faulty" framework (tests/faulty_plugin.py), with a short stall limit and hangs far longer."""
from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAULT_ENV, PATIENCE_S, run_cli, wait_for

from harness.commands.cli import main
from harness.devices import CPU
from harness.orchestrator import cells
from harness.orchestrator.cells import run_cell
from harness.orchestrator.workers import Silence
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.results import journal
from harness.settings import Cell, RunSettings
from harness.worker.protocol import describe_event

STALL = 10   # seconds: far above a healthy faulty cell's longest silence (about 1 s), far below the hang (an hour)


def test_silence_counts_announced_quiet_and_not_the_orchestrators_own_slowness():
    silence, stall = Silence(), 2.0
    before = time.monotonic()
    inside: list[float] = []
    lines = ['{"event": "region", "name": "forward", "state": "start", "quiet_s": 30}', "plain"]
    silence.listen(iter(line + "\n" for line in lines[:1]), lambda line: inside.append(silence.deadline(stall)))
    assert silence.deadline(stall) >= before + stall + 30        # the announced window adds to the limit
    assert inside[0] >= before + stall                            # while on_line runs the worker is not silent
    silence.listen(iter(["plain\n"]), lambda line: None)         # any line is progress; only events replace quiet_s
    assert silence.last is not None and silence.last["name"] == "forward"
    silence.listen(iter(['{"event": "epoch", "epoch": 1, "epochs": 2}\n']), lambda line: None)
    assert silence.deadline(stall) < time.monotonic() + stall + 1   # the next event ends the announced window
    assert describe_event(silence.last) == "epoch 1/2 finished"
    assert describe_event(None) == "none since the worker started"


@pytest.fixture
def own_signals():
    """``main`` installs its SIGTERM/SIGHUP handlers in this process: put pytest's back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("value,message", [("-1", "expected seconds (0 or more) or off, got -1"),
                                           ("soon", "expected seconds or off, got 'soon'")])
def test_bad_stall_timeout_is_one_line(value, message, capsys, own_signals):
    assert main(["run", "--stall-timeout", value]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_sighup_is_taken_as_ctrl_c_unless_started_ignored(own_signals):
    """`nohup convbench run` must survive the logout: an inherited SIG_IGN is kept."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    main(["run", "--stall-timeout", "-1"])
    assert signal.getsignal(signal.SIGHUP) is signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    main(["run", "--stall-timeout", "-1"])
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def faulty_run(out: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    proc = run_cli("run", "--frameworks", "faulty", "--output", str(out), *args, env={**FAULT_ENV, **(env or {})})
    return proc, next(out.iterdir())


@pytest.mark.e2e
def test_a_stalled_cell_is_killed_the_others_kept_and_resume_takes_new_limits(tmp_path):
    """fault_ok stalls in its second epoch (after its first checkpoint); fault_oom, at batch 32, trains normally.
    The resume gives the stalled cell new limits, recorded in plan.json, and continues it from its checkpoint."""
    out = tmp_path / "out"
    proc, run_dir = faulty_run(out, "--models", "fault_oom,fault_ok", "--epochs", "2", "--batch-size", "32",
                               "--stall-timeout", str(STALL), env={"FAULTY_STALL_AT": "fault_ok:60"})
    assert proc.returncode == 1, proc.stderr
    df = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    assert df["status"].tolist() == ["ok", "stalled"] and "Traceback" not in proc.stderr
    assert df["error"][1].startswith(f"no progress for {STALL}s (--stall-timeout); worker killed; its last progress: "
                                     "epoch 2/2")   # its training started (a step event is at most one a second)
    finished = journal.latest(run_dir)["faulty-fault_oom-cpu"]
    resumed = run_cli("run", "--resume", str(run_dir), "--timeout", "300", "--stall-timeout", "60", env=FAULT_ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert "resume: --timeout 300s, --stall-timeout 60s for the cells that run now (saved in plan.json)" in resumed.stdout
    assert "[faulty-fault_oom-cpu] ok in an earlier attempt; kept" in resumed.stdout
    assert "[faulty-fault_ok-cpu] start (batch 32): continuing after epoch 1 from its checkpoint" in resumed.stdout
    settings = json.loads((run_dir / "plan.json").read_text())["settings"]
    assert (settings["timeout"], settings["stall_timeout"]) == (300, 60)
    assert json.loads((run_dir / "meta.json").read_text())["settings"]["stall_timeout"] == 60
    df = pd.read_csv(run_dir / "results.csv", keep_default_na=False)
    assert df["status"].tolist() == ["ok", "ok"] and journal.latest(run_dir)["faulty-fault_oom-cpu"] == finished
    assert [e["epoch"] for e in json.loads((run_dir / "cells/faulty-fault_ok-cpu/epochs.json").read_text())] == [1, 2]
    assert [a["rows"][0]["status"] for a in journal.attempts(run_dir)] == ["ok", "stalled", "ok"]


def worker_pids(pattern: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@pytest.mark.e2e
def test_a_stalled_rank_kills_its_data_parallel_group(tmp_path, monkeypatch):
    """Both ranks of a process-group cell hang in their first step: the first rank found silent ends the cell as
    stalled, naming itself, and no rank is left running."""
    for key, value in FAULT_ENV.items():
        monkeypatch.setenv(key, value)
    spec = build_registries(get_plugin_manager()).frameworks.get("faulty")
    run = RunSettings(epochs=1, batch_size=64, threads=2, world_size=2, devices=(CPU, CPU), stall_timeout=STALL / 2)
    cell = Cell(run_id="dp", name="faulty-fault_hang-cpu-x2", framework="faulty", model="fault_hang", run=run,
                dp_mode="processes")
    rows = run_cell(cell, spec, tmp_path / "cell", io.StringIO().write)
    assert [r["status"] for r in rows] == ["stalled"]
    assert rows[0]["error"].startswith("rank ") and f"no progress for {STALL / 2:g}s (--stall-timeout)" in rows[0]["error"]
    assert not worker_pids(str(tmp_path / "cell"))


@pytest.mark.e2e
def test_a_rank_still_running_after_rank_0_finished_is_killed_after_a_grace_period(tmp_path, monkeypatch):
    """Issue 32, defect 2: rank 0 finished and wrote its row, rank 1 hangs (as one left in an all-reduce that rank 0
    will never join) and the cell has no --timeout nor --stall-timeout: the orchestrator waited forever. Now the
    survivors are killed after a grace period, the row stays rank 0's ok one, and its note says so."""
    for key, value in {**FAULT_ENV, "FAULTY_SURVIVOR_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(cells, "SURVIVOR_GRACE_S", 1.0)
    spec = build_registries(get_plugin_manager()).frameworks.get("faulty")
    run = RunSettings(epochs=1, batch_size=64, threads=2, world_size=2, devices=(CPU, CPU), stall_timeout=0)
    cell = Cell(run_id="dp", name="faulty-fault_ok-cpu-x2", framework="faulty", model="fault_ok", run=run,
                dp_mode="processes")
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(run_cell(cell, spec, tmp_path / "cell", io.StringIO().write)),
                              daemon=True)
    thread.start()
    thread.join(PATIENCE_S)
    pids = worker_pids(str(tmp_path / "cell"))
    for pid in pids:   # before the fix: rank 1, hanging; end it so the test leaves nothing behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert outcome, "the cell never ended: rank 1 hangs after rank 0 finished"
    rows = outcome[0]
    assert [r["status"] for r in rows] == ["ok"], rows[0].get("error")
    assert "rank 1 was still running 1s after rank 0 finished: killed" in rows[0]["note"]
    assert not pids


@pytest.mark.e2e
def test_sighup_leaves_a_resumable_run_and_the_cell_continues(tmp_path):
    """A dropped ssh session: SIGHUP while the cell is stuck in its second epoch. The run stops as for Ctrl-C (exit
    130, the resume command, meta.json says interrupted, no worker left); --resume continues the cell after
    epoch 1 instead of starting again."""
    out = tmp_path / "out"
    env = {**os.environ, **FAULT_ENV, "FAULTY_STALL_AT": "fault_ok:30"}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--frameworks", "faulty", "--models", "fault_ok",
                             "--epochs", "2", "--batch-size", "64", "--output", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(out.glob("*/cells/faulty-fault_ok-cpu/checkpoint.npz")))   # epoch 1 done; step 30 hangs
    proc.send_signal(signal.SIGHUP)
    stdout, stderr = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    run_dir = next(out.iterdir())
    assert f"Resume with: convbench run --resume {run_dir}" in stdout
    assert json.loads((run_dir / "meta.json").read_text())["interrupted"] is True
    wait_for(lambda: not worker_pids(str(run_dir)), 30)
    resumed = run_cli("run", "--resume", str(run_dir), env=FAULT_ENV)
    assert resumed.returncode == 0, resumed.stderr
    row = pd.read_csv(run_dir / "results.csv").iloc[0]
    assert row["status"] == "ok" and row["epochs_run"] == 2 and row["note"].startswith("continued after epoch 1")


@pytest.mark.e2e
def test_a_terminal_that_hangs_up_ends_the_run_as_interrupted(tmp_path):
    """The real dropped ssh session: the run's controlling terminal hangs up (its master side closes), so the
    kernel sends SIGHUP and every later write to the terminal fails. The run still ends interrupted with exit
    130 (its last lines go nowhere instead of failing), its folder resumable and no worker left."""
    out = tmp_path / "out"
    master, slave = pty.openpty()
    # a new session whose controlling terminal is the pty, made by the child itself (a preexec_fn would fork this
    # multithreaded test process), then convbench in its place
    on_the_terminal = ("import fcntl, os, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
                       "os.execv(sys.executable, [sys.executable, '-m', 'harness', *sys.argv[1:]])")
    proc = subprocess.Popen([sys.executable, "-c", on_the_terminal, "run", "--frameworks", "faulty", "--models",
                             "fault_ok", "--epochs", "2", "--batch-size", "64", "--output", str(out)],
                            env={**os.environ, **FAULT_ENV, "FAULTY_STALL_AT": "fault_ok:30"},
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    deadline = time.monotonic() + PATIENCE_S
    while not list(out.glob("*/cells/faulty-fault_ok-cpu/checkpoint.npz")):   # reading, so the terminal never fills
        assert time.monotonic() < deadline, "timed out waiting"
        if select.select([master], [], [], 0.1)[0]:
            os.read(master, 65536)
    os.close(master)
    assert proc.wait(timeout=PATIENCE_S) == 130
    run_dir = next(out.iterdir())
    assert json.loads((run_dir / "meta.json").read_text())["interrupted"] is True
    wait_for(lambda: not worker_pids(str(run_dir)), 30)
