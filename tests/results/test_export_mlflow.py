"""convbench export --to mlflow: real convbench runs exported into a real MLflow store (sqlite), read back with
MLflow's own client: one MLflow run per cell, its settings as params, its figures as metrics (epochs as steps), its
status and error as tags, its files as artifacts; a second export replaces the first."""
from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FAULT_ENV, make_run, needs, run_cli
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from harness.errors import ConvbenchError
from harness.results import export_mlflow as mod
from harness.results.export_mlflow import CELL_TAG, RUN_TAG, export_mlflow
from harness.results.history_model import find_runs
from harness.results.records import COLUMNS
from harness.results.runs import load_run


def export(run_dir: Path, *args: str, env: dict | None = None) -> list[str]:
    proc = run_cli("export", str(run_dir), "--to", "mlflow", *args, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""   # MLflow's and alembic's chatter is not convbench's to print
    return proc.stdout.splitlines()


def runs_of(client: MlflowClient, experiment: str, view: int = ViewType.ACTIVE_ONLY) -> dict[str, object]:
    exp = client.get_experiment_by_name(experiment)
    return {r.data.tags[CELL_TAG]: r for r in client.search_runs([exp.experiment_id], run_view_type=view)}


def steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {f.path for f in client.list_artifacts(run_id)}


@pytest.mark.e2e
def test_a_train_run_becomes_one_mlflow_run_per_cell_and_a_second_export_replaces_it(tmp_path):
    out = tmp_path / "results"
    proc = run_cli("run", "--frameworks", "faulty", "--models", "fault_ok,fault_error", "--epochs", "2",
                   "--batch-size", "64", "--output", str(out), env=FAULT_ENV)
    assert proc.returncode == 1, proc.stdout + proc.stderr   # fault_error failed, as it must
    run_dir = next(out.iterdir())
    assert run_cli("report", str(run_dir)).returncode == 0 and (run_dir / "report.html").is_file()
    lines = export(run_dir)
    uri = f"sqlite:///{run_dir.resolve() / 'mlflow.db'}"
    assert lines[0] == f"mlflow: 2 cell(s) of {run_dir.name} (1 not ok) -> experiment 'convbench' at {uri}"
    assert lines[-1] == f"view: mlflow ui --backend-store-uri {uri}"

    client = MlflowClient(tracking_uri=uri)
    runs = runs_of(client, "convbench")
    assert set(runs) == {"faulty-fault_ok-cpu", "faulty-fault_error-cpu"}
    ok, failed = runs["faulty-fault_ok-cpu"], runs["faulty-fault_error-cpu"]
    rows = {r["model"]: r for r in csv.DictReader(open(run_dir / "results.csv"))}
    history = json.loads((run_dir / "cells" / "faulty-fault_ok-cpu" / "epochs.json").read_text())

    assert ok.info.status == "FINISHED" and failed.info.status == "FAILED"
    assert ok.info.run_name == "faulty-fault_ok-cpu" and ok.data.tags[RUN_TAG] == run_dir.name
    assert ok.data.tags["status"] == "ok" and "error" not in ok.data.tags
    assert failed.data.tags["status"] == "error" and "RuntimeError: boom" in failed.data.tags["error"]
    params = ok.data.params
    assert {k: params[k] for k in ("framework", "model", "mode", "dataset", "batch_size", "epochs", "seed", "lr")} == {
        "framework": "faulty", "model": "fault_ok", "mode": "train", "dataset": "digits", "batch_size": "64",
        "epochs": "2", "seed": "0", "lr": rows["fault_ok"]["lr"]}
    assert params["framework_version"] == rows["fault_ok"]["framework_version"] and params["run.optimizer"] == "momentum"
    # every epoch a step of each figure; the row's final figures at the last epoch, not twice
    assert steps(client, ok.info.run_id, "test_accuracy") == steps(client, ok.info.run_id, "train_time_s") == [1, 2]
    assert [m.value for m in sorted(client.get_metric_history(ok.info.run_id, "test_accuracy"), key=lambda m: m.step)] \
        == [e["test_accuracy"] for e in history]
    assert ok.data.metrics["test_accuracy"] == float(rows["fault_ok"]["test_accuracy"])
    assert steps(client, ok.info.run_id, "images_per_sec") == [2]
    assert ok.data.metrics["images_per_sec"] == float(rows["fault_ok"]["images_per_sec"])
    assert "test_accuracy" not in failed.data.metrics
    shared = {"results.csv", "meta.json", "report.html", "worker.log", "cell.json"}
    assert artifacts(client, ok.info.run_id) == shared | {"epochs.json"}
    assert artifacts(client, failed.info.run_id) == shared
    copy = Path(client.download_artifacts(ok.info.run_id, "report.html", str(tmp_path)))
    assert copy.read_bytes() == (run_dir / "report.html").read_bytes()

    again = export_mlflow(load_run(run_dir))   # in this process: the CLI's side of it is tested above
    assert again.uri == uri and again.replaced == 2
    now = runs_of(client, "convbench")
    assert set(now) == set(runs) and not {r.info.run_id for r in now.values()} & {r.info.run_id for r in runs.values()}
    assert {r.info.run_id for r in runs_of(client, "convbench", ViewType.DELETED_ONLY).values()} == \
        {r.info.run_id for r in runs.values()}
    # the artifacts' copies of results.csv inside the run folder are no run of their own
    assert [label for label, _ in find_runs(out)[0]] == [run_dir.name]


@pytest.mark.e2e
@needs("torch")
def test_a_speed_run_logs_each_phase_into_the_store_it_is_given(tmp_path, monkeypatch):
    proc = run_cli("run", "--mode", "speed", "--frameworks", "torch", "--models", "lenet5", "--batch-size", "8",
                   "--threads", "1", "--steps", "4", "--output", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = next((tmp_path / "results").iterdir())
    store = tmp_path / "store"
    uri = f"sqlite:///{store / 'shared.db'}"
    export(run_dir, "--tracking-uri", uri, "--experiment", "speed")
    assert (store / "mlflow-artifacts").is_dir() and not (run_dir / "mlflow.db").exists()

    client = MlflowClient(tracking_uri=uri)
    (run,) = runs_of(client, "speed").values()
    rows = {r["phase"]: r for r in csv.DictReader(open(run_dir / "results.csv"))}
    assert set(rows) == {"forward", "forward_backward", "train_step"}
    for phase, row in rows.items():
        for column in ("ms_median", "ms_ci_low", "ms_ci_high", "images_per_sec", "steps"):
            assert run.data.metrics[f"{phase}.{column}"] == float(row[column]), (phase, column)
        assert steps(client, run.info.run_id, f"{phase}.ms_median") == [0]
    assert {k: run.data.params[k] for k in ("mode", "batch_size", "threads", "warmup", "run.steps")} == {
        "mode": "speed", "batch_size": "8", "threads": "1", "warmup": rows["forward"]["warmup"], "run.steps": "4"}
    assert run.data.params["framework_version"] == rows["forward"]["framework_version"]
    assert run.info.status == "FINISHED" and run.data.tags["status"] == "ok"
    assert artifacts(client, run.info.run_id) == {"results.csv", "meta.json", "worker.log", "cell.json", "samples.json"}

    # $MLFLOW_TRACKING_URI is the store when no --tracking-uri is given: the same cell is replaced there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    again = export_mlflow(load_run(run_dir), experiment="speed")
    assert (again.uri, again.replaced) == (uri, 1)
    assert len(runs_of(client, "speed")) == 1 and not (run_dir / "mlflow.db").exists()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.e2e
def test_bad_stores_and_a_missing_mlflow_are_one_line(tmp_path):
    run_dir = make_run(tmp_path, mode="train", epochs=2)
    url = f"http://127.0.0.1:{closed_port()}"
    proc = run_cli("export", str(run_dir), "--to", "mlflow", "--tracking-uri", url)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"convbench: error: cannot use the MLflow tracking store '{url}': ")
    # the real import machinery refusing mlflow, as on a machine without the extra
    code = "import sys; sys.modules['mlflow'] = None; from harness.commands.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "export", str(run_dir), "--to", "mlflow"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == (
        "convbench: error: convbench export --to mlflow needs mlflow, which is not installed: it comes with "
        "convbench's 'mlflow' extra (pip install 'convbench[mlflow]')\n")
    proc = run_cli("export", str(run_dir), "--to", "pytest-benchmark", "--tracking-uri", url)
    assert proc.returncode == 2 and proc.stderr == "convbench: error: --tracking-uri is for --to mlflow only\n"
    assert not (run_dir / "mlflow.db").exists()
    for uri in ("bogus://x", f"sqlite:///{run_dir / 'results.csv' / 'mlflow.db'}"):   # no such scheme; a file as folder
        with pytest.raises(ConvbenchError, match="^cannot use the MLflow tracking store "):
            export_mlflow(load_run(run_dir), uri)


def test_every_column_goes_one_way_and_the_docs_list_the_params():
    parts = (mod.IDENTITY, mod.OUTCOME, mod.SETTINGS, mod.METRICS)
    assert sorted(c for part in parts for c in part) == sorted(COLUMNS)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text()
    params = doc[doc.index("- params: "):doc.index("- metrics: ")]
    named = [n for n in re.findall(r"`([a-z0-9_.]+)`", params) if n != "meta.json"]
    assert [n for n in named if not n.startswith(("run.", "forward."))] == list(mod.SETTINGS)
    assert {n.removeprefix("run.") for n in named if n.startswith("run.")} == {k for ks in mod.RUN_SETTINGS.values() for k in ks}
