"""A finished run in an MLflow tracking store: one MLflow run per cell (``convbench export RUN_DIR --to mlflow``).

What goes where (the row's columns sorted once, here, from results.csv's schema, so a new column lands somewhere):

- params: the settings a cell ran with (``SETTINGS``: what ran and how, as read back from the framework, and the
  software and GPU under it), then the run's own settings that change its figures (``RUN_SETTINGS`` of meta.json,
  named ``run.<key>``). A setting that differs between a speed cell's phases is logged per phase (``forward.warmup``).
- metrics: every other number of a row; a speed row's under its phase (``forward.ms_median``, ``forward.ms_ci_low``,
  ``forward.images_per_sec``); a train cell's epochs.json, figure by figure, with the epoch as the step, and its row's
  final figures at the last epoch's step (a figure epochs.json already gave for that epoch is that one).
- tags: ``convbench.run_id`` and ``convbench.cell`` (what makes a second export replace the first), ``status`` (the
  cell's: ok, or its first row's that is not), ``error``, ``note``, a speed phase's ``stop`` and ``stable``; the
  MLflow run ends FINISHED for an ok cell, FAILED otherwise.
- artifacts: the run's results.csv, meta.json and report.html (when ``convbench report`` wrote one), and the cell's
  worker.log, cell.json, epochs.json and samples.json (those it has).

MLflow is imported here only, inside functions: convbench runs without it (the ``mlflow`` extra).
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from harness.errors import ConvbenchError
from harness.results.records import COLUMN_TYPES, COLUMNS
from harness.results.runs import Run

EXTRA = "mlflow"
DEFAULT_EXPERIMENT = "convbench"
DB_NAME = "mlflow.db"               # the default store: RUN_DIR/mlflow.db ...
ARTIFACTS_NAME = "mlflow-artifacts"  # ... with the artifacts beside it (a sqlite database holds no files)
RUN_TAG, CELL_TAG = "convbench.run_id", "convbench.cell"

IDENTITY = ("run_id", "cell", "phase")
OUTCOME = ("status", "error", "note", "stop", "stable")      # tags
# numbers that are settings, not measurements: what was asked for, what the model is, what the GPU offers
NUMERIC_SETTINGS = ("batch_size", "epochs", "seed", "lr", "threads", "world_size", "per_device_batch", "target", "warmup",
                    "params", "flops_per_image", "gpu_memory_mb", "gpu_sm_clock_mhz", "gpu_power_limit_w")
NUMBER_TYPES = (int, float)
SETTINGS = tuple(c for c in COLUMNS if c not in IDENTITY + OUTCOME
                 and (COLUMN_TYPES[c] not in NUMBER_TYPES or c in NUMERIC_SETTINGS))
METRICS = tuple(c for c in COLUMNS if COLUMN_TYPES[c] in NUMBER_TYPES and c not in NUMERIC_SETTINGS)
# meta.json's settings that change a cell's figures and are no column of its rows: training's, and speed's sampling
RUN_SETTINGS = {"train": ("optimizer", "momentum", "weight_decay", "schedule", "decay_factor", "milestones", "augment"),
                "speed": ("steps", "warmup", "precision_target", "max_time", "min_steps", "budget")}
RUN_FILES = ("results.csv", "meta.json", "report.html")
CELL_FILES = ("worker.log", "cell.json", "epochs.json", "samples.json")
# MLflow's limits per log_batch call (params, tags, metrics) and on a tag's value
BATCH = {"params": 100, "tags": 100, "metrics": 1000}
MAX_TAG = 5000


@dataclass
class CellRecord:
    """What one cell becomes in MLflow, before MLflow is touched."""
    name: str
    status: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[tuple[str, float, int]] = field(default_factory=list)   # (key, value, step)
    files: list[Path] = field(default_factory=list)


@dataclass
class Exported:
    uri: str
    experiment: str
    runs: list[tuple[str, str, str]]   # (cell, MLflow run id, status)
    replaced: int


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, NUMBER_TYPES) or not math.isfinite(value):
        return None
    return float(value)


def _spread(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, str]:
    """Each column's value as one entry when the cell's rows agree on it, else one per phase (``PHASE.column``)."""
    out: dict[str, str] = {}
    for col in columns:
        values = [(r.get("phase"), r[col]) for r in rows if r.get(col) not in (None, "")]
        if len({str(v) for _, v in values}) == 1:
            out[col] = str(values[0][1])
        else:
            out.update({f"{phase or 'row'}.{col}": str(v) for phase, v in values})
    return out


def cell_status(rows: Sequence[dict[str, Any]]) -> str:
    """ok when every row of the cell is; else the first row's status that is not."""
    return next((r["status"] for r in rows if r["status"] != "ok"), "ok")


def cell_record(run: Run, cell: str, rows: list[dict[str, Any]]) -> CellRecord:
    rec = CellRecord(cell, cell_status(rows))
    rec.params = _spread(rows, SETTINGS)
    mode = rows[0]["mode"]
    asked = run.meta.get("settings") or {}
    rec.params.update({f"run.{k}": str(asked[k]) for k in RUN_SETTINGS.get(mode, ()) if asked.get(k) is not None})
    rec.tags = {RUN_TAG: run.name, CELL_TAG: cell, **_spread(rows, OUTCOME), "status": rec.status}
    rec.tags = {k: v[:MAX_TAG] for k, v in rec.tags.items()}
    if run.meta.get("git_commit"):
        rec.tags["mlflow.source.git.commit"] = str(run.meta["git_commit"])
    seen: set[tuple[str, int]] = set()
    steps = [int(_number(e.get("epoch")) or n) for n, e in enumerate(run.histories.get(cell, []), 1)]
    for step, epoch in zip(steps, run.histories.get(cell, [])):
        for key, value in epoch.items():
            if key != "epoch" and (v := _number(value)) is not None:
                rec.metrics.append((key, v, step))
                seen.add((key, step))
    last = steps[-1] if steps else 0
    for row in rows:
        prefix = f"{row['phase']}." if row.get("phase") and mode == "speed" else ""
        for col in METRICS:
            if (v := _number(row.get(col))) is not None and (prefix + col, last) not in seen:
                rec.metrics.append((prefix + col, v, last))
                seen.add((prefix + col, last))
    folder = run.path / "cells" / cell
    rec.files = [p for p in [run.path / f for f in RUN_FILES] + [folder / f for f in CELL_FILES] if p.is_file()]
    return rec


def cell_records(run: Run) -> list[CellRecord]:
    """One record per cell of results.csv (its rows grouped by the ``cell`` column), in the file's order."""
    cells: dict[str, list[dict[str, Any]]] = {}
    for row in run.rows:
        cells.setdefault(str(row["cell"]), []).append(row)
    return [cell_record(run, cell, rows) for cell, rows in cells.items()]


def default_tracking_uri(run_dir: Path) -> str:
    """$MLFLOW_TRACKING_URI when set, else a sqlite database in the run folder."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run_dir / DB_NAME).resolve()}"


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its files: beside a sqlite database; elsewhere the store decides."""
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        return str(Path(uri.removeprefix("sqlite:///")).resolve().parent / ARTIFACTS_NAME)
    return None


def mlflow_client(uri: str) -> Any:
    """MLflow's client for ``uri``, quiet; one line naming the extra when MLflow (or the database layer) is missing."""
    needed = ["mlflow"] + (["sqlalchemy", "alembic"] if uri.split(":", 1)[0].split("+")[0] in
                           ("sqlite", "postgresql", "mysql", "mssql") else [])
    for name in needed:
        try:
            __import__(name)
        except ImportError:
            raise ConvbenchError(f"convbench export --to mlflow needs {name}, which is not installed: it comes with "
                                 f"convbench's {EXTRA!r} extra (pip install 'convbench[{EXTRA}]')") from None
    # a store that does not answer says so within seconds, not after MLflow's minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    for name in ("mlflow", "alembic"):   # "Creating initial MLflow database tables..." is not convbench's to say
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient
    try:
        return MlflowClient(tracking_uri=uri)
    except Exception as exc:   # an unknown scheme, a malformed URI: MLflow's registry says which
        raise ConvbenchError(f"cannot use the MLflow tracking store {uri!r}: {_one_line(exc)}") from None


def store_errors() -> tuple[type[BaseException], ...]:
    """What MLflow's client raises when the store, not convbench, fails: its own error, a refused request, a file
    that cannot be copied."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException
    return MlflowException, RequestException, OSError


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 600 else text[:597] + "..."


def _ms(iso: Any) -> int | None:
    try:
        when = dt.datetime.fromisoformat(str(iso))
    except ValueError:
        return None
    return int((when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp() * 1000)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def experiment_id(client: Any, uri: str, name: str) -> str:
    """The experiment's id, created when it is not there; the first contact with the store, so the one place an
    unreachable or unusable store is told apart from a bug."""
    try:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            return client.create_experiment(name, artifact_location=artifact_location(uri))
    except Exception as exc:   # MLflow, requests, SQLAlchemy: whatever the store's layer raises when it cannot be used
        raise ConvbenchError(f"cannot use the MLflow tracking store {uri!r}: {_one_line(exc)}") from None
    if exp.lifecycle_stage != "active":
        raise ConvbenchError(f"MLflow experiment {name!r} is deleted in {uri!r}; restore it or choose another "
                             "with --experiment")
    return exp.experiment_id


def earlier_runs(client: Any, exp_id: str, run_id: str) -> list[str]:
    """The MLflow runs an earlier export of this convbench run made (active ones)."""
    from mlflow.entities import ViewType
    query = f"tags.`{RUN_TAG}` = '{run_id}'" if "'" not in run_id and "\\" not in run_id else ""
    found, token = [], None
    while True:
        page = client.search_runs([exp_id], query, ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        found += [r.info.run_id for r in page if r.data.tags.get(RUN_TAG) == run_id]
        token = page.token
        if not token:
            return found


def log_cell(client: Any, exp_id: str, rec: CellRecord, start: int | None, end: int | None) -> str:
    from mlflow.entities import Metric, Param, RunTag
    mlrun = client.create_run(exp_id, start_time=start, tags={RUN_TAG: rec.tags[RUN_TAG]}, run_name=rec.name)
    run_id = mlrun.info.run_id
    stamp = end or start or int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    for chunk in _chunks([Param(k, v) for k, v in rec.params.items()], BATCH["params"]):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks([RunTag(k, v) for k, v in rec.tags.items()], BATCH["tags"]):
        client.log_batch(run_id, tags=chunk)
    for chunk in _chunks([Metric(k, v, stamp, s) for k, v, s in rec.metrics], BATCH["metrics"]):
        client.log_batch(run_id, metrics=chunk)
    for path in rec.files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED" if rec.status == "ok" else "FAILED", end_time=end)
    return run_id


def export_mlflow(run: Run, uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT) -> Exported:
    """Logs every cell of ``run`` as an MLflow run, then deletes the runs an earlier export of it made (MLflow's
    delete: restorable until the store is garbage-collected). A failure half-way deletes what it had logged."""
    uri = uri or default_tracking_uri(run.path)
    records = cell_records(run)
    client = mlflow_client(uri)
    exp_id = experiment_id(client, uri, experiment)
    start, end = _ms(run.meta.get("started")), _ms(run.meta.get("finished"))
    done: list[tuple[str, str, str]] = []
    try:
        earlier = earlier_runs(client, exp_id, run.name)
        for rec in records:
            done.append((rec.name, log_cell(client, exp_id, rec, start, end), rec.status))
        for old in earlier:
            client.delete_run(old)
    except BaseException as exc:   # the store gave way mid-export, or Ctrl-C: leave the store as it was
        for _, run_id, _ in done:
            try:
                client.delete_run(run_id)
            except Exception:
                pass
        if isinstance(exc, store_errors()):
            raise ConvbenchError(f"exporting {str(run.path)!r} to the MLflow tracking store {uri!r} failed: "
                                 f"{_one_line(exc)}") from None
        raise
    return Exported(uri, experiment, done, len(earlier))
