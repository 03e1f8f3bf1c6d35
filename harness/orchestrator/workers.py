"""Running workers: one process per job (a cell, a probe, an evaluation ...), its own process group, a deadline
and, for cells, a stall watchdog (no progress for the stall limit: killed).

The orchestrator never imports a deep-learning framework: everything framework-side happens in
``python -m harness.worker``, with thread settings given explicitly in the environment. ``run_job`` is the one
way any command runs a job in a worker.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.worker.protocol import Job, describe_event, parse_event, write_job

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
# glibc malloc, the same for every framework's worker: keep freed memory for reuse instead of handing it back to the
# kernel and faulting in fresh pages for the next step's activations (mmap threshold at glibc's 32 MiB maximum,
# no trimming; docs/performance.md has the measurement). A value already in the environment is kept; meta.json
# records what the workers ran with.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**40),
             "MALLOC_TOP_PAD_": str(64 * 2**20)}


@dataclass
class WorkerResult:
    code: int | None          # None: killed by the watchdog, ``killed`` says why
    payload: dict[str, Any] | None
    log: Path
    killed: str | None = None           # "timeout": the deadline passed; "stalled": no progress for the stall limit
    last_progress: str | None = None    # the worker's last progress event, in words

    def tail(self, lines: int = 5) -> str:
        text = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        return " | ".join(text[-lines:])

    def failure(self, lines: int = 2) -> str | None:
        """Why the job failed (the worker's own error, else its exit and the log's last lines), or None."""
        error = (self.payload or {}).get("error") if isinstance((self.payload or {}).get("error"), str) else None
        if self.code == 0 and self.payload is not None and error is None:
            return None
        if error:
            return error
        how = {"timeout": "no result within the deadline", "stalled": "no progress within the stall limit",
               None: f"worker exited with code {self.code}"}[self.killed]
        tail = self.tail(lines)
        return f"{how}: {tail}" if tail else how


# GPU memory, the frameworks' own allocators: the same rule for every framework (allocate on demand, up to nearly all
# of the GPU; docs/gpus.md), a user's own setting kept; meta.json's worker_env records them
GPU_MEMORY_VARS = ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                   "XLA_PYTHON_CLIENT_ALLOCATOR", "TF_FORCE_GPU_ALLOW_GROWTH", "TF_GPU_ALLOCATOR", "PYTORCH_CUDA_ALLOC_CONF",
                   "PYTORCH_ALLOC_CONF", "FLAGS_allocator_strategy", "FLAGS_fraction_of_gpu_memory_to_use",
                   "FLAGS_gpu_memory_limit_mb")


def recorded_env(env: dict[str, str]) -> dict[str, str]:
    """The settings of a worker's environment that change numbers (threads, allocator, device order, XLA/TF flags)."""
    keys = (*THREAD_VARS, "TF_NUM_INTEROP_THREADS", *ALLOCATOR, "CUDA_DEVICE_ORDER", "CUDA_VISIBLE_DEVICES", "XLA_FLAGS",
            "TF_CUDNN_USE_AUTOTUNE", "NVIDIA_TF32_OVERRIDE", *GPU_MEMORY_VARS, "CUDNN_CONV_WSCAP_DBG",
            "TF_CUDNN_WORKSPACE_LIMIT_IN_MB", "FLAGS_conv_workspace_size_limit")
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
    if spec is not None:   # the framework's defaults, a user's own value kept
        for var, value in spec.env.items():
            env.setdefault(var, value)
    return env


def rank_env(spec: FrameworkSpec, threads: int, rank: int, ports: list[int]) -> dict[str, str]:
    """What torchrun and paddle.distributed.launch would set for one process of a local job: ``ports`` are the
    master's and then one per rank (Paddle's endpoints), each found free (cells.free_ports)."""
    env = worker_env(spec, threads)
    port, world = ports[0], len(ports) - 1
    endpoints = [f"127.0.0.1:{p}" for p in ports[1:]]
    env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), PADDLE_TRAINER_ID=str(rank),
               PADDLE_TRAINERS_NUM=str(world), PADDLE_TRAINER_ENDPOINTS=",".join(endpoints),
               PADDLE_CURRENT_ENDPOINT=endpoints[rank])
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


class WorkerStartError(ConvbenchError):
    """A worker's process could not be started (its interpreter is missing, not executable, or not a program)."""


def start_failure(executable: str, exc: OSError) -> str:
    """Why ``executable`` did not start, in one line."""
    if exc.errno == errno.ENOEXEC:
        return (f"{executable} is not a program this system can run ({exc.strerror}): an interpreter is a binary or "
                "a script whose first line is #!")
    return f"cannot start {executable}: {exc.strerror or exc}"


class Worker:
    """A worker process running one job, in its own process group, so a timeout or Ctrl-C can kill all of it.
    The job file is written to ``job_file`` (kept, e.g. a cell's cell.json) or to a temporary folder."""

    running: set["Worker"] = set()

    def __init__(self, job: Job, env: dict[str, str], log: Path, python: str | None = None,
                 job_file: Path | None = None) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="convbench-")
        self.out = Path(self.tmp.name) / "out.json"
        self.log = log
        path = job_file or Path(self.tmp.name) / "job.json"
        write_job(path, job)
        command = [*launcher(python), str(path), str(self.out)]
        with open(log, "ab") as err:
            try:
                self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env, text=True,
                                             start_new_session=True)
            except OSError as exc:   # the interpreter cannot be executed at all: one line, never a traceback
                self.tmp.cleanup()
                raise WorkerStartError(start_failure(command[0], exc)) from None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def run(self, timeout: float | None, on_line: Callable[[str], None], stall: float | None = None) -> WorkerResult:
        """Waits for the worker's end. Its group is killed when ``timeout`` seconds have passed, or when it has
        reported no progress (no line on its stdout) for ``stall`` seconds (None or 0: never)."""
        assert self.proc.stdout is not None
        silence = Silence()
        reader = threading.Thread(target=silence.listen, args=(self.proc.stdout, on_line), daemon=True)
        reader.start()
        Worker.running.add(self)
        try:
            code, killed = self._wait(timeout, stall or None, silence)
            if killed:
                self.kill()
                self.proc.wait()
        except BaseException:  # Ctrl-C / SIGTERM while waiting: the worker's group goes too
            self.kill()
            raise
        finally:
            Worker.running.discard(self)
        self.kill()  # anything the worker left behind in its group
        reader.join(timeout=5)
        payload = json.loads(self.out.read_text()) if self.out.exists() else None
        self.tmp.cleanup()
        return WorkerResult(code, payload, self.log, killed, describe_event(silence.last))

    def _wait(self, timeout: float | None, stall: float | None,
              silence: "Silence") -> tuple[int | None, str | None]:
        """(exit code, None), or (None, "timeout" | "stalled") when the watchdog must kill the worker."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            limits = [t for t in (deadline, silence.deadline(stall) if stall else None) if t is not None]
            try:
                return self.proc.wait(timeout=max(0.0, min(limits) - time.monotonic()) if limits else None), None
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return None, "timeout"
                if stall and now >= silence.deadline(stall):
                    return None, "stalled"


class Silence:
    """What the stall watchdog knows of a worker: when it last reported progress, and what. Every line the
    worker writes to its stdout is progress (only protocol events go there). While ``on_line`` runs (a slow
    terminal, say) no line can be read, so that time is the orchestrator's, not the worker's silence."""

    def __init__(self) -> None:
        self.since = time.monotonic()
        self.quiet_s = 0.0                      # announced by the last event (protocol.emit: quiet_s)
        self.last: dict[str, Any] | None = None
        self.busy = False

    def listen(self, stream: Any, on_line: Callable[[str], None]) -> None:
        for line in stream:
            line = line.rstrip("\n")
            event = parse_event(line)
            self.busy, self.since = True, time.monotonic()
            if event is not None:
                self.last, self.quiet_s = event, float(event.get("quiet_s") or 0.0)
            try:
                on_line(line)
            finally:
                self.since, self.busy = time.monotonic(), False

    def deadline(self, stall: float) -> float:
        """When the worker's silence, if it lasts, passes the limit."""
        return (time.monotonic() if self.busy else self.since) + stall + self.quiet_s


def run_job(job: Job, env: dict[str, str], log: Path, timeout: float | None = None,
            on_line: Callable[[str], None] = lambda line: None, python: str | None = None) -> WorkerResult:
    """Runs ``job`` in one worker (in ``python``, default this interpreter) to its end or the deadline; its stderr
    is appended to ``log``."""
    return Worker(job, env, log, python).run(timeout, on_line)


def kill_current_worker() -> None:
    for worker in list(Worker.running):
        worker.kill()


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
