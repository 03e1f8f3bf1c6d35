"""Running workers: one process per cell (or probe), its own process group, a deadline, a status.

The orchestrator never imports a deep-learning framework: everything framework-side happens in
``python -m harness.worker``, with thread settings given explicitly in the environment.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from harness.devices import visible_ids
from harness.frameworks import FrameworkSpec
from harness.hardware import nvml as nvml_facts
from harness.hardware import telemetry
from harness.results.records import make_row
from harness.settings import Cell
from harness.worker.protocol import EXIT_EXCEPTION, parse_event

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
# glibc malloc, the same for every framework's worker: keep freed memory for reuse instead of handing it back to the
# kernel and faulting in fresh pages for the next step's activations (mmap threshold at glibc's 32 MiB maximum,
# no trimming). Measured on this project's CPU: torch's VGG-16 / ResNet-32 forward 15-35% faster. A value already
# in the environment is kept; meta.json records what the workers ran with.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**40),
             "MALLOC_TOP_PAD_": str(64 * 2**20)}


@dataclass
class WorkerResult:
    code: int | None          # None: killed at the deadline
    payload: dict[str, Any] | None
    log: Path

    def tail(self, lines: int = 5) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        return " | ".join(text[-lines:])


def recorded_env(env: dict[str, str]) -> dict[str, str]:
    """The settings of a worker's environment that change numbers (threads, allocator, device order, XLA/TF flags)."""
    keys = (*THREAD_VARS, "TF_NUM_INTEROP_THREADS", *ALLOCATOR, "CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES", "XLA_FLAGS",
            "TF_CUDNN_USE_AUTOTUNE", "NVIDIA_TF32_OVERRIDE", "XLA_PYTHON_CLIENT_PREALLOCATE")
    return {k: env[k] for k in keys if k in env}


def worker_env(spec: FrameworkSpec | None, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # cuda:N is nvidia-smi's (and NVML's) GPU N
    for var, value in ALLOCATOR.items():
        env.setdefault(var, value)
    for var in THREAD_VARS:
        env[var] = str(threads)
    env["TF_NUM_INTEROP_THREADS"] = "1" if threads <= 2 else "2"
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    env["CONVBENCH_PARENT_PID"] = str(os.getpid())
    if spec is not None:
        env.update(spec.env)
    return env


# Another environment's interpreter must run ITS convbench: ``-m`` would put the working directory first on
# sys.path, and from a source checkout that is this convbench's code, not the one installed there.
FOREIGN = ("import runpy, sys; del sys.path[0]; "
           "runpy.run_module('harness.worker', run_name='__main__', alter_sys=True)")


def launcher(python: str | None) -> list[str]:
    """The command line that starts a worker: this interpreter, or the framework's own without the cwd on its path."""
    if python is None or python == sys.executable:
        return [sys.executable, "-m", "harness.worker"]
    return [python, "-c", FOREIGN]


class Worker:
    """A worker process in its own process group, so a timeout or Ctrl-C can kill all of it."""

    running: set["Worker"] = set()

    def __init__(self, args: list[str], env: dict[str, str], log: Path, python: str | None = None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="convbench-")
        self.out = Path(self.tmp.name) / "out.json"
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen([*launcher(python), *args, str(self.out)],
                                         stdout=subprocess.PIPE, stderr=err, env=env, text=True,
                                         start_new_session=True)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def run(self, timeout: float | None, on_line: Callable[[str], None]) -> WorkerResult:
        assert self.proc.stdout is not None
        reader = threading.Thread(target=lambda: [on_line(line.rstrip("\n")) for line in self.proc.stdout], daemon=True)  # type: ignore[union-attr]
        reader.start()
        Worker.running.add(self)
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
            code = None
        except BaseException:  # Ctrl-C / SIGTERM while waiting: the worker's group goes too
            self.kill()
            raise
        finally:
            Worker.running.discard(self)
        self.kill()  # anything the worker left behind in its group
        reader.join(timeout=5)
        payload = json.loads(self.out.read_text()) if self.out.exists() else None
        self.tmp.cleanup()
        return WorkerResult(code, payload, self.log)


def run_worker(args: list[str], env: dict[str, str], log: Path, timeout: float | None,
               on_line: Callable[[str], None], python: str | None = None) -> tuple[int | None, dict[str, Any] | None]:
    """Runs one worker (in ``python``, default this interpreter) to the end or the deadline; (exit code or None
    on timeout, JSON payload or None)."""
    result = Worker(args, env, log, python).run(timeout, on_line)
    return result.code, result.payload


def kill_current_worker() -> None:
    for worker in list(Worker.running):
        worker.kill()


def add_columns(rows: list[dict[str, Any]], values: dict[str, Any]) -> list[dict[str, Any]]:
    """Fills columns the worker left empty; a ``note`` joins the row's own."""
    for row in rows:
        for key, value in values.items():
            if key == "note":
                row["note"] = "; ".join(filter(None, [row.get("note"), value]))
            elif row.get(key) is None:
                row[key] = value
    return rows


def gpu_visibility(cell: Cell) -> tuple[Cell, dict[str, str]]:
    """A GPU cell's workers see only the cell's GPUs (CUDA_VISIBLE_DEVICES), so no framework creates a
    context on another GPU of the host; inside, they are cuda:0, cuda:1, ... (``Cell.visible`` maps them)."""
    gpus = [d for d in (cell.devices if cell.world_size > 1 and cell.devices else (cell.device,)) if d != "cpu"]
    if not gpus:
        return cell, {}
    ids = visible_ids(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return cell.replace(visible=tuple(gpus)), {"CUDA_VISIBLE_DEVICES": ",".join(ids)}


def run_cell(cell: Cell, spec: FrameworkSpec, cell_dir: Path, on_line: Callable[[str], None]) -> list[dict[str, Any]]:
    """Runs one cell in a fresh worker (or one per rank); always returns its rows, whatever happened to it."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    cell, gpu_env = gpu_visibility(cell)
    cell.to_json(cell_dir / "cell.json")
    gpu: dict[str, Any] = {}
    nvml, handles = None, []
    if gpu_env:  # read before the worker starts: every process then on the GPU is another one
        nvml, why = nvml_facts.load()
        entries = gpu_env["CUDA_VISIBLE_DEVICES"].split(",")
        gpu = nvml_facts.cell_columns(nvml, entries, why)
        handles = [h for h in (nvml_facts.handle_or_none(nvml, e) for e in entries) if h is not None] if nvml else []
    sampler = telemetry.Sampler(nvml=nvml, gpu_handles=handles).start()
    route = telemetry_router(sampler, on_line)
    try:
        if cell.dp_mode == "processes":
            rows = run_process_group_cell(cell, spec, cell_dir, route, gpu_env)
        else:
            env = {**worker_env(spec, cell.run.threads), **gpu_env}
            worker = Worker(["cell", str(cell_dir / "cell.json")], env, cell_dir / "worker.log", cell.python)
            rows = rows_from_result(cell, worker.run(cell.run.timeout, route), cell_dir)
    finally:  # Ctrl-C or SIGTERM mid-cell: the sampler thread stops with the cell
        readings = sampler.stop()
    if (readings.host_busy_fraction or 0) > telemetry.BUSY_THRESHOLD:
        on_line(f"warning: other processes used {100 * readings.host_busy_fraction:.0f}% of this machine's CPU time "
                "during the cell: its numbers were not taken on a quiet machine")
    gpu["gpu_other_procs"] = max(gpu.get("gpu_other_procs") or 0, readings.gpu_others_seen) if gpu_env else None
    return add_telemetry(add_columns(rows, gpu), readings, bool(gpu_env))


def telemetry_router(sampler: telemetry.Sampler, on_line: Callable[[str], None]) -> Callable[[str], None]:
    """The worker's region events go to the sampler (which reads the energy counters), the rest to ``on_line``."""
    def route(line: str) -> None:
        event = parse_event(line)
        if event is not None and event.get("event") == "region":
            sampler.mark(str(event["name"]), str(event["state"]), int(event.get("images") or 0))
        else:
            on_line(line)
    return route


def add_telemetry(rows: list[dict[str, Any]], readings: telemetry.Readings, gpu: bool) -> list[dict[str, Any]]:
    cols = telemetry.columns(readings, gpu)
    for row in rows:
        row.update({k: v for k, v in cols[""].items() if row.get(k) is None})
        row.update(cols.get(str(row.get("phase")), {}))
    return rows


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_env(spec: FrameworkSpec, threads: int, rank: int, world: int, port: int) -> dict[str, str]:
    """What torchrun and paddle.distributed.launch would set for one process of a local job."""
    env = worker_env(spec, threads)
    endpoints = [f"127.0.0.1:{port + 1 + r}" for r in range(world)]
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), PADDLE_TRAINER_ID=str(rank),
               PADDLE_TRAINERS_NUM=str(world), PADDLE_TRAINER_ENDPOINTS=",".join(endpoints),
               PADDLE_CURRENT_ENDPOINT=endpoints[rank])
    return env


def rank_cells(cell: Cell) -> list[Cell]:
    """One cell per process of a data-parallel cell: each names its own device (so it synchronises and
    measures that one), gets its share of the threads, and only rank 0 writes the checkpoint."""
    threads = max(1, cell.run.threads // cell.world_size)
    devices = cell.devices or (cell.device,) * cell.world_size
    return [cell.replace(rank=rank, device=devices[rank], run=replace(cell.run, threads=threads),
                         checkpoint=cell.checkpoint if rank == 0 else None) for rank in range(cell.world_size)]


def run_process_group_cell(cell: Cell, spec: FrameworkSpec, cell_dir: Path, on_line: Callable[[str], None],
                           gpu_env: dict[str, str]) -> list[dict[str, Any]]:
    """One cell trained by ``world_size`` worker processes together; rank 0 reports. Each rank's cell names its
    own device, so it synchronises and measures that device. If any rank fails, the others are killed (a
    survivor would wait forever in a collective)."""
    world, port = cell.world_size, free_port()
    workers = []
    for ranked in rank_cells(cell):
        path = cell_dir / f"cell.rank{ranked.rank}.json"
        ranked.to_json(path)
        env = {**rank_env(spec, ranked.run.threads, ranked.rank, world, port), **gpu_env}
        workers.append(Worker(["cell", str(path)], env, cell_dir / f"worker.rank{ranked.rank}.log", cell.python))
    results: dict[int, WorkerResult] = {}
    timeout = cell.run.timeout

    def watch(rank: int) -> None:
        results[rank] = workers[rank].run(timeout, lambda line: None)
        if results[rank].code != 0:
            for w in workers:
                w.kill()
    watchers = [threading.Thread(target=watch, args=(r,), daemon=True) for r in range(1, world)]
    for t in watchers:
        t.start()
    results[0] = workers[0].run(timeout, on_line)
    if results[0].code != 0:
        for w in workers:
            w.kill()
    for t in watchers:
        t.join()
    rows = rows_from_result(cell, results[0], cell_dir)
    failed = [(r, res) for r, res in sorted(results.items()) if r and res.code != 0]
    if failed and all(row["status"] == "ok" for row in rows):
        rank, res = failed[0]
        rows = [make_row(cell, status="crashed", error=f"rank {rank}: {res.tail()}")]
    return rows


def rows_from_result(cell: Cell, result: WorkerResult, cell_dir: Path) -> list[dict[str, Any]]:
    payload = result.payload
    if result.code is None:
        return [make_row(cell, status="timeout", error=f"no result within --timeout {cell.run.timeout:g}s; worker killed")]
    if payload is not None and "rows" in payload:
        for key, name in (("history", "epochs.json"), ("samples", "samples.json")):
            if key in payload:
                (cell_dir / name).write_text(json.dumps(payload[key], indent=1))
        return payload["rows"]
    if payload is not None:
        status = payload.get("status_hint", "error")
        where = f" (traceback in {result.log})" if result.code == EXIT_EXCEPTION else ""
        return [make_row(cell, status=status, error=payload["error"] + where)]
    code = result.code
    how = f"killed by signal {signal_name(-code)}" if code < 0 else f"exited with code {code}"
    return [make_row(cell, status="crashed", error=f"worker {how}: {result.tail()}")]


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
