"""The Slurm executor through submitit's real local mode (each job a process here, as CI has no Slurm): the rows and
journal of a local run, a killed orchestrator's running job taken over by --resume, a cancelled job as its cell's
row, and its options' one-line errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from helpers import FAULT_ENV, PATIENCE_S, REGISTRIES, run_cli, wait_for
from test_plan import args

from harness.errors import ConvbenchError
from harness.orchestrator.plan import resolve_settings
from harness.orchestrator.slurm import JOBS, open_jobs
from harness.results import journal
from harness.results.schema import load
from harness.settings import SlurmSettings

LOCAL_SLURM = ("--executor", "slurm", "--slurm-cluster", "local")
FAULTY = ("--frameworks", "faulty", "--epochs", "1", "--batch-size", "64")
SLOW = "faulty-fault_slow_ok-cpu"


def jobs(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / JOBS).read_text().splitlines()]


@pytest.mark.e2e
def test_two_cells_as_jobs_give_the_rows_and_journal_of_a_local_run(tmp_path):
    cells = ("run", *FAULTY, "--models", "fault_ok", "--seeds", "2")
    local = run_cli(*cells, "--output", str(tmp_path / "local"), env=FAULT_ENV)
    slurm = run_cli(*cells, *LOCAL_SLURM, "--output", str(tmp_path / "slurm"), env=FAULT_ENV)
    assert local.returncode == 0 and slurm.returncode == 0, slurm.stderr[-2000:]
    (local_dir,), (run_dir,) = (tmp_path / "local").iterdir(), (tmp_path / "slurm").iterdir()
    ours, theirs = pd.read_csv(run_dir / "results.csv"), pd.read_csv(local_dir / "results.csv")
    assert list(ours.columns) == list(theirs.columns)
    same = ["cell", "status", "device_name", "seed", "batch_size", "threads", "epochs_run", "params", "test_accuracy",
            "test_loss", "train_loss", "interpreter"]
    pd.testing.assert_frame_equal(ours[same], theirs[same])   # the same work: deterministic figures agree
    assert [a["cell"] for a in journal.attempts(run_dir)] == [a["cell"] for a in journal.attempts(local_dir)]
    submitted = [j for j in jobs(run_dir) if j["event"] == "submitted"]
    for cell, job in zip(ours["cell"], submitted):
        assert job["cell"] == cell and f"ran in slurm job {job['job']} on " in ours.set_index("cell").loc[cell, "note"]
        assert sorted(f.name for f in (run_dir / "cells" / cell).iterdir()) == \
            sorted(f.name for f in (local_dir / "cells" / cell).iterdir())
        assert f"[{cell}] train ok" in (run_dir / "slurm" / f"{job['job']}_0_log.out").read_text()   # submitit's log
    assert open_jobs(run_dir) == {}   # every job collected
    meta = json.loads((run_dir / "meta.json").read_text())   # the results format, the Slurm settings recorded in it
    jsonschema.validate(meta, load("meta.schema.json"))
    for row in journal.latest_rows(run_dir):
        jsonschema.validate(row, load("row.schema.json"))
    assert meta["settings"]["executor"] == "slurm" and meta["settings"]["slurm"]["cluster"] == "local"


def start(tmp_path: Path, models: str, release: Path) -> subprocess.Popen:
    env = {**os.environ, **FAULT_ENV, "FAULTY_RELEASE": str(release)}
    return subprocess.Popen([sys.executable, "-m", "harness", "run", *LOCAL_SLURM, *FAULTY, "--models", models,
                             "--output", str(tmp_path / "out")], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def slow_worker_pids(tmp_path: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"{tmp_path}/out/.*/{SLOW}/cell.json"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def run_folder(tmp_path: Path) -> Path:
    wait_for(lambda: (tmp_path / "out").exists() and any((tmp_path / "out").iterdir()))
    return next((tmp_path / "out").iterdir())


@pytest.mark.e2e
def test_kill_9_leaves_the_job_running_and_resume_takes_it_over(tmp_path):
    release = tmp_path / "release"
    proc = start(tmp_path, "fault_ok,fault_slow_ok", release)
    run_dir = run_folder(tmp_path)
    wait_for(lambda: len(journal.attempts(run_dir)) == 1 and slow_worker_pids(tmp_path))
    proc.kill()
    proc.wait()
    job = open_jobs(run_dir)[SLOW]
    assert slow_worker_pids(tmp_path)   # a job outlives its orchestrator, as on Slurm
    resumed = subprocess.Popen([sys.executable, "-m", "harness", "run", "--resume", str(run_dir), "--slurm-time", "2:00:00"],
                               env={**os.environ, **FAULT_ENV, "FAULTY_RELEASE": str(release)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(resumed.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    wait_for(lambda: any(f"slurm job {job} of the earlier attempt" in line for line in lines))
    release.write_text("")   # only now does the job finish: under the resumed orchestrator
    assert resumed.wait(PATIENCE_S) == 0, resumed.stderr.read()[-2000:]  # type: ignore[union-attr]
    reader.join()
    assert any("ok in an earlier attempt; kept" in line for line in lines)
    assert any("resume: --slurm-time 120 min" in line for line in lines)   # for the jobs submitted from now on
    assert json.loads((run_dir / "plan.json").read_text())["settings"]["slurm"]["time"] == 120
    assert [a["rows"][0]["model"] for a in journal.attempts(run_dir)] == ["fault_ok", "fault_slow_ok"]
    assert pd.read_csv(run_dir / "results.csv")["status"].tolist() == ["ok", "ok"]
    assert [j["job"] for j in jobs(run_dir) if j["cell"] == SLOW] == [job, job]   # submitted once, then collected


@pytest.mark.e2e
def test_a_cancelled_job_is_its_cells_crashed_row_and_the_run_goes_on(tmp_path):
    proc = start(tmp_path, "fault_slow_ok,fault_ok", tmp_path / "never")
    run_dir = run_folder(tmp_path)
    wait_for(lambda: slow_worker_pids(tmp_path))
    job = open_jobs(run_dir)[SLOW]
    os.kill(int(job), signal.SIGINT)   # what submitit's LocalJob.cancel sends its controller (scancel on Slurm)
    assert proc.wait(PATIENCE_S) == 1, proc.stderr.read()[-2000:]  # type: ignore[union-attr]
    df = pd.read_csv(run_dir / "results.csv").set_index("model")
    assert df.loc["fault_ok", "status"] == "ok" and df.loc["fault_slow_ok", "status"] == "crashed"
    error = df.loc["fault_slow_ok", "error"]
    assert f"slurm job {job} (log: {run_dir / 'slurm' / job}_0_log.out) ended without a result" in error, error
    wait_for(lambda: not slow_worker_pids(tmp_path), 30)


@pytest.mark.e2e
def test_sigterm_cancels_the_jobs_and_leaves_a_resumable_run(tmp_path):
    proc = start(tmp_path, "fault_slow_ok", tmp_path / "never")
    run_dir = run_folder(tmp_path)
    wait_for(lambda: slow_worker_pids(tmp_path))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=PATIENCE_S)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert [j["event"] for j in jobs(run_dir)] == ["submitted", "cancelled"] and open_jobs(run_dir) == {}
    wait_for(lambda: not slow_worker_pids(tmp_path), 30)   # the job's worker ended with it


@pytest.mark.e2e
@pytest.mark.parametrize("argv,message", [
    (["--slurm-time", "1:75:00"], "argument --slurm-time: bad Slurm time '1:75:00'"),
    (["--slurm-partition", "gpu"], "--slurm-partition is for --executor slurm"),
    (["--executor", "slurm"], "sbatch and srun, which are not on PATH"),
])
def test_bad_slurm_options_are_one_line(tmp_path, argv, message):
    proc = run_cli("run", *argv, "--output", str(tmp_path), env={"PATH": str(tmp_path)})   # no sbatch on this PATH
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert not any(tmp_path.iterdir())   # refused before a run folder is made


@pytest.mark.e2e
def test_without_submitit_the_line_names_the_extra(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import sys; sys.modules['submitit'] = None; "
                           "from harness.commands.cli import main; sys.exit(main(sys.argv[1:]))", "run", *LOCAL_SLURM,
                           "--output", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "needs submitit" in proc.stderr and "pip install 'convbench[slurm]'" in proc.stderr


def test_the_config_table_gives_the_defaults_and_the_command_line_overrides_it(tmp_path):
    config = tmp_path / "site" / "convbench.toml"
    config.parent.mkdir()
    config.write_text('[slurm]\npartition = "gpu"\ntime = "2:00:00"\naccount = "bench"\nfolder = "logs"\n'
                      'cluster = "local"\n')
    settings = resolve_settings(args("--executor", "slurm", "--config", str(config), "--slurm-time", "90",
                                     "--slurm-partition", "a100"), REGISTRIES)
    assert settings.slurm == SlurmSettings(partition="a100", time=90, account="bench", cluster="local",
                                           folder=str(tmp_path / "site" / "logs"))
    assert resolve_settings(args("--config", str(config)), REGISTRIES).slurm is None   # read for --executor slurm only


@pytest.mark.parametrize("argv,table,message", [
    (["--slurm-gpus-per-task", "2"], "", "reserves GPUs for GPU cells: this run is on cpu"),
    (["--device", "cuda:1"], "", "runs on the GPU its Slurm job is given: use --device cuda"),
    (["--nproc", "2"], "", "drop --executor slurm"),
    (["--mode", "speed", "--budget", "10m"], "", "not --executor slurm"),
    ([], 'partition = "gpu"\nnodes = 2\n', "unknown key 'nodes'; known: partition, time"),
    ([], 'time = "90m"\n', "bad Slurm time '90m'; use minutes (90) or [D-]H:MM:SS"),
    ([], 'time = 0\n', "at least 1 minute"),
    ([], 'cluster = "pbs"\n', "unknown Slurm cluster 'pbs'; known: slurm, local"),
])
def test_bad_slurm_settings_are_refused_before_the_run(tmp_path, argv, table, message):
    config = tmp_path / "c.toml"
    config.write_text('[slurm]\ncluster = "local"\n' if not table else f"[slurm]\n{table}")
    cluster = ["--slurm-cluster", "local"] if table and "cluster" not in table else []
    with pytest.raises(ConvbenchError) as caught:
        resolve_settings(args("--executor", "slurm", "--config", str(config), *cluster, *argv), REGISTRIES)
    assert message in str(caught.value)
