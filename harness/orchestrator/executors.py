"""Executors: where cells run. ``local`` (default) runs them one after another on this machine;
``ray`` sends each cell to a Ray cluster as a task that asks for the resources the cell needs; ``slurm``
(``harness.orchestrator.slurm``) makes each cell a Slurm job.

Either way a cell is a ``python -m harness.worker`` process on the machine that runs it, and its rows
come back to this process, which alone writes the journal and the run directory.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.hardware import nvml
from harness.orchestrator.probes import Probe, measure_cpu_peak, probe_framework
from harness.orchestrator.progress import Progress
from harness.orchestrator.retries import run_with_retries
from harness.orchestrator.sweep import SweepCutoff
from harness.orchestrator.workers import kill_current_worker
from harness.results.records import add_note, failure_row
from harness.settings import Cell, RunSettings

CELL_FILES = ("epochs.json", "samples.json", "worker.log", "cell.json", "checkpoint.npz")
FORWARDED_ENV = ("CONVBENCH_PLUGINS", "CONVBENCH_DISABLE_PLUGINS", "CONVBENCH_DATA", "PYTHONPATH")


class Executor(Protocol):
    def probe(self, spec: FrameworkSpec, threads: int, log: Path, gpu: bool, python: str | None) -> Probe: ...
    def cpu_peak(self, threads: int, log: Path) -> float | None: ...
    def gpu_facts(self, gpu: bool) -> dict[str, Any]: ...
    def submit(self, cell: Cell, spec: FrameworkSpec) -> None: ...
    def results(self) -> Iterator[tuple[str, list[dict[str, Any]]]]: ...
    def cancel(self) -> None: ...


class LocalExecutor:
    """Runs each cell when its results are asked for: one at a time, so timings never overlap."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.queue: list[tuple[Cell, FrameworkSpec]] = []
        self.prepare: Callable[[Cell], Cell] = lambda cell: cell   # as each cell starts (--budget plans it here)
        self.watch: Callable[[str], Callable[[str], None]] = Progress   # its worker's lines (the run's display)
        self.cutoff: SweepCutoff | None = None   # a --batch-size sweep: larger batches not run after an out-of-memory

    def probe(self, spec: FrameworkSpec, threads: int, log: Path, gpu: bool, python: str | None) -> Probe:
        return probe_framework(spec, threads, log, python)

    def cpu_peak(self, threads: int, log: Path) -> float | None:
        return measure_cpu_peak(threads, log)

    def gpu_facts(self, gpu: bool) -> dict[str, Any]:
        """meta.json's ``gpus``: NVML's facts of this machine, where the cells run."""
        return nvml.machine()

    def submit(self, cell: Cell, spec: FrameworkSpec) -> None:
        self.queue.append((cell, spec))

    def results(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        while self.queue:
            cell, spec = self.queue.pop(0)
            if self.cutoff and (skipped := self.cutoff.skip(cell)):
                print(f"[{cell.name}] {skipped[0]['error']}", flush=True)
                yield cell.name, skipped
                continue
            cell = self.prepare(cell)
            rows = run_with_retries(cell, spec, self.run_dir / "cells" / cell.name, watch=self.watch)
            if self.cutoff:
                self.cutoff.saw(cell, rows)
            yield cell.name, rows

    def cancel(self) -> None:
        kill_current_worker()


def run_cell_remotely(cell: Cell, spec: FrameworkSpec) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """Inside a Ray task: the cell in a local temporary folder; rows and the cell's files go back. Ray has set
    this task's CUDA_VISIBLE_DEVICES to the GPU it reserved, so the cell's cuda:0 is that GPU."""
    with tempfile.TemporaryDirectory(prefix="convbench-ray-") as tmp:
        cell_dir = Path(tmp) / cell.name
        rows = run_with_retries(cell, spec, cell_dir)
        files = {f: (cell_dir / f).read_bytes() for f in CELL_FILES if (cell_dir / f).exists()}
    where = f"ran on ray node {os.uname().nodename}"
    if cell.device.is_gpu:
        where += f", GPU {os.environ.get('CUDA_VISIBLE_DEVICES', '?')} of the node"
    return add_note(rows, where), files


def probe_remotely(spec: FrameworkSpec, threads: int, python: str | None) -> Probe:
    """Inside a Ray task (with a GPU for a GPU run): the framework as a cell's node sees it, not the driver (every
    node has the same environment paths)."""
    with tempfile.TemporaryDirectory(prefix="convbench-ray-probe-") as tmp:
        return probe_framework(spec, threads, Path(tmp) / "probe.log", python)


def gpu_facts_remotely() -> dict[str, Any]:
    """Inside a Ray task holding a GPU: NVML's facts of a node the GPU cells run on, and which node it was."""
    return {**nvml.machine(), "node": os.uname().nodename}


def cpu_peak_remotely(threads: int) -> float | None:
    with tempfile.TemporaryDirectory(prefix="convbench-ray-gemm-") as tmp:
        return measure_cpu_peak(threads, Path(tmp) / "gemm.log")


class RayExecutor:
    """Each cell a Ray task: num_gpus=1 (and a GPU node's CPUs per GPU) for a GPU cell, num_cpus=threads (at most
    the largest node's CPUs) otherwise (one CPU cell per node's worth of cores, so CPU timings do not share cores). Frameworks are
    probed, and the CPU peak measured, in tasks too: the driver (a login node, say) may have no GPU at all.
    Without an address Ray starts locally."""

    def __init__(self, address: str | None, run_dir: Path) -> None:
        try:
            import ray
        except ImportError:
            raise ConvbenchError("--executor ray needs Ray: pip install 'convbench[ray]'") from None
        self.ray, self.run_dir = ray, run_dir
        env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        try:
            ray.init(address=address, runtime_env={"env_vars": env} if env else None, ignore_reinit_error=True,
                     log_to_driver=True, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConvbenchError(f"cannot reach a Ray cluster at {address or 'local'}: {exc}") from None
        self.remote = ray.remote(run_cell_remotely)
        self.pending: dict[Any, Cell] = {}


    def probe(self, spec: FrameworkSpec, threads: int, log: Path, gpu: bool, python: str | None) -> Probe:
        options = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": 1}
        remote = self.ray.remote(probe_remotely).options(**options, max_retries=0)
        return self.ray.get(remote.remote(spec, threads, python))

    def cpu_peak(self, threads: int, log: Path) -> float | None:
        cpus = min(threads, largest_node_cpus(self.ray))
        return self.ray.get(self.ray.remote(cpu_peak_remotely).options(num_cpus=cpus, max_retries=0).remote(cpus))

    def gpu_facts(self, gpu: bool) -> dict[str, Any]:
        """A GPU run's facts from a task on a GPU node (the driver may have none; a cluster of one kind of GPU
        node is assumed, and ``node`` says which one answered); a CPU run's are the driver's."""
        if not gpu:
            return nvml.machine()
        task = self.ray.remote(gpu_facts_remotely).options(num_gpus=1, num_cpus=1, max_retries=0)
        return self.ray.get(task.remote())

    def submit(self, cell: Cell, spec: FrameworkSpec) -> None:
        """A GPU cell reserves one GPU and a GPU node's share of CPUs per GPU; a CPU cell at most the CPUs of the
        largest node. Either runs as many threads as it reserved (not the driver's core count), and asks no more
        than one node has, since a task runs on one node."""
        if cell.device.is_gpu:
            cpus = min(cell.run.threads, cpus_per_gpu(self.ray))
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": cpus}
        else:
            cpus = min(cell.run.threads, largest_node_cpus(self.ray))
            options = {"num_cpus": cpus}
        cell = cell.with_run(threads=cpus)
        self.pending[self.remote.options(**options, max_retries=0).remote(cell, spec)] = cell

    def results(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        while self.pending:
            done, _ = self.ray.wait(list(self.pending), num_returns=1)
            ref = done[0]
            cell = self.pending.pop(ref)
            name = cell.name
            try:
                rows, files = self.ray.get(ref)
            except Exception as exc:  # the task itself died (node lost, worker killed)
                yield name, [failure_row(cell, "crashed", f"ray task failed: {type(exc).__name__}: {exc}")]
                continue
            cell_dir = self.run_dir / "cells" / name
            cell_dir.mkdir(parents=True, exist_ok=True)
            for fname, data in files.items():
                (cell_dir / fname).write_bytes(data)
            print(f"[{name}] {', '.join(r['status'] for r in rows)} (from ray)", flush=True)
            yield name, rows
        self.ray.shutdown()

    def cancel(self) -> None:
        for ref in list(self.pending):
            self.ray.cancel(ref, force=True)
        self.ray.shutdown()


def node_resources(ray: Any) -> list[dict[str, float]]:
    """Each live node's resources (``ray.nodes()``): a task is placed on one node, so cluster totals (a CPU-only
    head's cores with the GPU workers') say nothing about what one task can get."""
    return [node.get("Resources") or {} for node in ray.nodes() if node.get("Alive")]


def largest_node_cpus(ray: Any) -> int:
    return max([1, *(int(r.get("CPU", 0)) for r in node_resources(ray))])


def cpus_per_gpu(ray: Any) -> int:
    """The CPUs each GPU of the GPU nodes can have with every GPU busy: the smallest node's CPUs / GPUs, so a GPU
    task fits on any GPU node beside its node-mates."""
    shares = [int(r.get("CPU", 0)) // int(r["GPU"]) for r in node_resources(ray) if int(r.get("GPU", 0)) >= 1]
    return max(1, min(shares, default=1))


def make_executor(settings: RunSettings, run_dir: Path) -> Executor:
    kind = settings.executor
    if kind == "local":
        return LocalExecutor(run_dir)
    if kind == "ray":
        return RayExecutor(settings.ray_address, run_dir)
    if kind == "slurm" and settings.slurm is not None:
        from harness.orchestrator.slurm import SlurmExecutor
        return SlurmExecutor(settings.slurm, run_dir, settings.device.is_gpu)
    raise ConvbenchError(f"unknown executor {kind!r}; known: local, ray, slurm")
