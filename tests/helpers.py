"""Shared test helpers: framework availability, running the CLI in a subprocess, small CIFAR-10 releases in
the real python format, and run directories in the exact layout ``convbench run`` writes."""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from harness.native import PHASES
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.results.csvio import write_csv
from harness.results.records import cell_id, make_row
from harness.results.schema import FORMAT, SCHEMA_VERSION
from harness.results.stats import sample_stats
from harness.settings import Cell, RunSettings

TESTS = Path(__file__).resolve().parent
REGISTRIES = build_registries(get_plugin_manager())
ALL_MODELS = REGISTRIES.models.names()
FRAMEWORKS = REGISTRIES.frameworks.names()
# the test-only "faulty" framework (tests/faulty_plugin.py), loaded in the orchestrator and its workers
FAULT_ENV = {"CONVBENCH_PLUGINS": "faulty_plugin",
             "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}


def framework_installed(name: str) -> bool:
    """True when a plugin registers the framework and the framework itself imports."""
    if name not in REGISTRIES.frameworks.names():
        return False
    return importlib.util.find_spec(REGISTRIES.frameworks.get(name).module) is not None


def needs(framework: str) -> pytest.MarkDecorator:
    """Skip only when the framework is not installed (CI installs all four, so CI never skips)."""
    return pytest.mark.skipif(not framework_installed(framework), reason=f"{framework} is not installed")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``convbench ARGS`` in a real subprocess (``python -m harness``)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


# ---- CIFAR-10 releases in the python format (pickled dicts in a tar.gz) ------------------------------------

NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def batch_bytes(rng: np.random.Generator, n: int, name: str) -> bytes:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    return pickle.dumps({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}, protocol=2)


def make_release(folder: Path, per_batch: int = 20, seed: int = 0) -> dict[str, str]:
    """Writes folder/cifar-10-python.tar.gz and returns the MD5s of it and of every batch."""
    rng = np.random.default_rng(seed)
    files = {name: batch_bytes(rng, per_batch, name) for name in NAMES}
    files["batches.meta"] = pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    sums = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
    sums["cifar-10-python.tar.gz"] = hashlib.md5(buf.getvalue()).hexdigest()
    return sums


def extract(folder: Path) -> Path:
    with tarfile.open(folder / "cifar-10-python.tar.gz") as tar:
        tar.extractall(folder, filter="data")
    (folder / "cifar-10-python.tar.gz").unlink()
    return folder / "cifar-10-batches-py"


# ---- run directories -------------------------------------------------------------------------------------

def make_run(root: Path, *, run_id: str = "synthetic", mode: str = "train", dataset: str = "digits",
             frameworks: Sequence[str] = ("torch",), models: Sequence[str] = ("lenet5",), seeds: Sequence[int] = (0,),
             failed: dict[tuple[str, str], str] | None = None, step_s: float = 0.010, noise: float = 0.05,
             n_samples: int = 100, rng_seed: int = 0, epochs: int = 3, target: float | None = None,
             step_scale: dict[str, float] | None = None, batch_sizes: Sequence[int] = (128,),
             started: str = "2026-01-01T00:00:00+00:00", framework_version: str = "1.0") -> Path:
    """A run directory in the layout `convbench run` writes: results.csv, meta.json, cells/<cell>/
    epochs.json (train) or samples.json (speed). ``failed`` maps (framework, model) to a status.
    ``step_scale`` multiplies one framework's step times (speed) or epoch times (train); several
    ``batch_sizes`` make one cell per batch size (named ...-bN); ``started`` is meta.json's start time."""
    run_dir = root / run_id
    (run_dir / "cells").mkdir(parents=True)
    rng = np.random.default_rng(rng_seed)
    rows = []
    for fw in frameworks:
        for model in models:
            for seed, batch in ((s, b) for s in seeds for b in batch_sizes):
                name = cell_id(fw, model, "cpu") + (f"-s{seed}" if len(seeds) > 1 else "")
                name += f"-b{batch}" if len(batch_sizes) > 1 else ""
                scale = (step_scale or {}).get(fw, 1.0)
                settings = RunSettings(mode=mode, dataset=dataset, epochs=epochs if mode == "train" else None, lr=0.1,
                                       threads=2, compile="eager", layout="nchw", seed=seed, batch_size=batch)
                cell = Cell(run_id=run_id, name=name, framework=fw, framework_version=framework_version, model=model,
                            device_name="x86_64", run=settings)
                cell_dir = run_dir / "cells" / name
                cell_dir.mkdir()
                status = (failed or {}).get((fw, model))
                if status:
                    row = make_row(cell, status=status, error=f"worker {status}: boom | details")
                    rows.append(dict(row, cell=name, phase=None if mode == "speed" else "train"))
                    continue
                if mode == "train":
                    per_epoch = scale * 5.0 * (1 + frameworks.index(fw)) * (1 + 0.03 * rng.standard_normal())
                    history = [{"epoch": e, "lr": 0.1, "train_loss": 2.0 / e, "test_loss": 2.1 / e,
                                "test_accuracy": min(0.99, 0.5 + 0.1 * e + 0.01 * rng.standard_normal()),
                                "train_time_s": per_epoch * e, "eval_time_s": 0.2 * e} for e in range(1, epochs + 1)]
                    (cell_dir / "epochs.json").write_text(json.dumps(history, indent=1))
                    last = history[-1]
                    rows.append(dict(make_row(cell, status="ok", params=62006, test_accuracy=last["test_accuracy"],
                                              test_loss=last["test_loss"], train_loss=last["train_loss"],
                                              train_time_s=last["train_time_s"], eval_time_s=last["eval_time_s"],
                                              images_per_sec=1437 * epochs / last["train_time_s"]), cell=name))
                    hit = next((e for e in history if target is not None and e["test_accuracy"] >= target), None)
                    rows[-1].update(target=target, time_to_target_s=hit and hit["train_time_s"],
                                    epochs_to_target=hit and hit["epoch"], epochs_run=epochs)
                    continue
                samples = {p: list(scale * step_s * (batch / 128) * (i + 1) * rng.lognormal(0.0, noise, n_samples))
                           for i, p in enumerate(PHASES)}
                (cell_dir / "samples.json").write_text(json.dumps(samples, indent=1))
                for phase, values in samples.items():
                    s = sample_stats(values).scaled(1000)
                    rows.append(dict(make_row(cell, status="ok", phase=phase, steps=n_samples, warmup=10,
                                              images_per_sec=batch * 1e3 / s["median"],
                                              **{f"ms_{k}": v for k, v in s.items() if k != "n"}), cell=name))
    write_csv(rows, run_dir / "results.csv")
    settings = {"mode": mode, "dataset": dataset, "epochs": epochs if mode == "train" else None, "batch_size": None,
                "seed": seeds[0], "seeds": len(seeds), "threads": 2, "device": "cpu", "precision": "fp32"}
    meta = {"schema_version": SCHEMA_VERSION, "format": FORMAT, "run_id": run_id, "started": started,
            "command": ["convbench", "run"], "settings": settings, "harness_version": "0.1.0", "python": "3.11.7",
            "platform": "Linux", "cpu_count": 2, "host": "test", "git_commit": "0" * 40,
            "frameworks": {fw: {"framework": fw, "available": True, "reason": "", "version": framework_version,
                                "devices": [{"name": "cpu", "description": "x86_64"}]} for fw in frameworks}}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return run_dir




# How long a test waits for a subprocess's progress: far beyond what a quiet machine needs (seconds), so a busy
# shared machine (other engineers' jobs, a niced tox run) slows the test down instead of failing it
PATIENCE_S = 300


def edit_json(path: Path, **changes) -> None:
    """Rewrites a JSON object file with ``changes`` (a key given None is removed): an old or a damaged run's file."""
    data = json.loads(path.read_text())
    data.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del data[key]
    path.write_text(json.dumps(data))


def wait_for(predicate, seconds: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


class ClusterRay:
    """A fake ``ray`` module for a typical GPU cluster: what ``ray.nodes()`` and ``ray.cluster_resources()`` answer,
    and the resources each task asks for (the executor's arithmetic, without a cluster)."""

    def __init__(self, *nodes: dict[str, float], dead: tuple[dict[str, float], ...] = ()) -> None:
        self._nodes = [{"NodeID": f"n{i}", "Alive": True, "Resources": dict(r, memory=1e11)} for i, r in enumerate(nodes)]
        self._nodes += [{"NodeID": f"d{i}", "Alive": False, "Resources": dict(r)} for i, r in enumerate(dead)]
        self.asked: list[dict] = []

    def nodes(self) -> list[dict]:
        return self._nodes

    def cluster_resources(self) -> dict[str, float]:
        total: dict[str, float] = {}
        for node in self._nodes:
            if node["Alive"]:
                for key, value in node["Resources"].items():
                    total[key] = total.get(key, 0) + value
        return total

    def get(self, ref):  # type: ignore[no-untyped-def]
        return ref

    def remote(self, fn):  # type: ignore[no-untyped-def]
        ray = self

        class Task:
            def options(self, **options):  # type: ignore[no-untyped-def]
                ray.asked.append(options)
                return self

            def remote(self, *args):  # type: ignore[no-untyped-def]
                return ("ref", len(ray.asked))
        return Task()
