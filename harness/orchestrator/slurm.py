"""The Slurm executor (``--executor slurm``): each cell one Slurm job, submitted with submitit.

Inside its job a cell runs exactly as the local executor runs it: ``run_with_retries`` starts its worker, writes its
files into the run folder (which must therefore be on a filesystem the nodes share) and returns its rows. The
orchestrator waits for the jobs and journals each cell as its job ends; a job that fails, is cancelled or runs out of
time is its cell's failure row, naming the job and its log. The frameworks are probed (and a CPU speed run's GEMM
peak measured) in short jobs too: the login node may have no GPU, and another CPU.

One job per cell rather than one job array (``executor.batch()``): cells are journaled one by one either way, but
single jobs let the local mode run one cell at a time (an array starts them all), and let ``--resume`` take over or
resubmit each cell's job on its own.

The jobs and the orchestrator: Ctrl-C, SIGTERM or SIGHUP cancels the jobs it waits for (scancel), as the local executor
kills its worker. A killed orchestrator (SIGKILL, a lost login node) leaves them queued or running: each job is
recorded in the run folder (``slurm-jobs.jsonl``) as it is submitted, so ``--resume`` takes over each job that is still
queued or running, or that finished meanwhile (its result waits in submitit's folder), instead of running its cell
twice; a job that ended without a result is submitted again.

``cluster = "local"`` (``--slurm-cluster local``) runs each job as a process on this machine with submitit's local
executor, one at a time: the test and dry-run mode, without Slurm.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harness.atomic import WriteFailed
from harness.devices import CPU, Device
from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.hardware import nvml
from harness.orchestrator.interpreters import CONFIG_ENV
from harness.orchestrator.probes import Probe, measure_cpu_peak, probe_framework
from harness.orchestrator.recipes import read_toml
from harness.orchestrator.retries import run_with_retries
from harness.results.records import Row, add_note, failure_row
from harness.settings import Cell, SlurmSettings

JOBS = "slurm-jobs.jsonl"
CLUSTERS = ("slurm", "local")
KEYS = {"partition": str, "time": (int, str), "gpus_per_task": int, "account": str, "folder": str, "cluster": str}
TIME_FORMS = "minutes (90) or [D-]H:MM:SS (1:30:00, 2-00:00:00)"
POLL_S = {"slurm": 5.0, "local": 0.5}   # how often the running jobs are looked at (submitit rate-limits sacct itself)
UNFINISHED = ("PENDING", "RUNNING", "REQUEUED", "COMPLETING", "CONFIGURING", "RESIZING", "SUSPENDED", "PREEMPTED")


def require() -> Any:
    """The submitit module, or one line naming the extra that brings it."""
    try:
        import submitit
    except ImportError:
        raise ConvbenchError("--executor slurm needs submitit, which is not installed: pip install 'convbench[slurm]'") \
            from None
    return submitit


# ---- options -------------------------------------------------------------------------------------------------------

def parse_time(value: str | int) -> int:
    """A job time limit -> whole minutes (at least 1; seconds round up, as Slurm's own limit is in minutes)."""
    text = str(value).strip()
    if isinstance(value, int) and not isinstance(value, bool) or text.isdigit():
        minutes = int(text)
    elif match := re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})", text):
        days, hours, mins, secs = (int(g or 0) for g in match.groups())
        if mins >= 60 or secs >= 60:
            raise ConvbenchError(f"bad Slurm time {text!r}: minutes and seconds run to 59; use {TIME_FORMS}")
        minutes = math.ceil((((days * 24 + hours) * 60 + mins) * 60 + secs) / 60)
    else:
        raise ConvbenchError(f"bad Slurm time {text!r}; use {TIME_FORMS}")
    if minutes < 1:
        raise ConvbenchError(f"a Slurm time limit must be at least 1 minute, got {text!r}")
    return minutes


def from_config(path: str | None) -> dict[str, Any]:
    """The ``[slurm]`` table of a config file (the keys of ``SlurmSettings``), its folder relative to the file's."""
    if path is None:
        return {}
    table = read_toml(path, "config file").get("slurm", {})
    where = f"config file {str(path)!r} [slurm]"
    if not isinstance(table, dict):
        raise ConvbenchError(f"{where} must be a table")
    out: dict[str, Any] = {}
    for key, value in table.items():
        kind = KEYS.get(key)
        if kind is None:
            raise ConvbenchError(f"{where}: unknown key {key!r}; known: {', '.join(KEYS)}")
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConvbenchError(f"{where}: {key} must be {'a number' if kind is int else 'a string'}, got {value!r}")
        out[key] = value
    if "time" in out:
        out["time"] = parse_time(out["time"])
    if "folder" in out:
        out["folder"] = str(Path(os.path.abspath(Path(path).expanduser())).parent / Path(out["folder"]).expanduser())
    return out


def resolve(args: Any, device: Device | None) -> SlurmSettings | None:
    """The run's Slurm settings: the command line's ``--slurm-*`` over the config file's ``[slurm]`` table over the
    defaults; None unless ``--executor slurm`` (a ``--slurm-*`` option without it is an error)."""
    given = {key: getattr(args, f"slurm_{key}") for key in KEYS if getattr(args, f"slurm_{key}", None) is not None}
    if args.executor != "slurm":
        if given:
            raise ConvbenchError(f"--slurm-{next(iter(given)).replace('_', '-')} is for --executor slurm")
        return None
    require()
    if "folder" in given:
        given["folder"] = str(Path(given["folder"]).expanduser().resolve())
    values = {**from_config(args.config or os.environ.get(CONFIG_ENV)), **given}
    options = SlurmSettings(**values)
    if options.cluster not in CLUSTERS:
        raise ConvbenchError(f"unknown Slurm cluster {options.cluster!r}; known: {', '.join(CLUSTERS)}")
    if options.gpus_per_task is not None:
        if options.gpus_per_task < 1:
            raise ConvbenchError(f"--slurm-gpus-per-task must be at least 1, got {options.gpus_per_task}")
        if device in (None, CPU):
            raise ConvbenchError("--slurm-gpus-per-task reserves GPUs for GPU cells: this run is on cpu (add --device cuda)")
    if options.cluster == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise ConvbenchError("--executor slurm submits with sbatch and srun, which are not on PATH: run convbench on a "
                             "Slurm login node (or try it here with --slurm-cluster local)")
    return options


def resume_time(options: SlurmSettings | None, minutes: int) -> SlurmSettings:
    """``--resume RUN_DIR --slurm-time T``: the jobs submitted from now on get T."""
    if options is None:
        raise ConvbenchError("--slurm-time is for a run with --executor slurm; this run's executor is another")
    return SlurmSettings(**{**vars(options), "time": minutes})


# ---- inside a job ---------------------------------------------------------------------------------------------------

def run_cell_in_job(cell: Cell, spec: FrameworkSpec, cell_dir: Path) -> list[Row]:
    """A cell in its job, as the local executor runs it (its worker, its files in the run folder); its rows, noting
    the job and node (and the node's GPU the cell ran on)."""
    import submitit
    rows = run_with_retries(cell, spec, cell_dir)
    where = f"ran in slurm job {submitit.JobEnvironment().job_id} on {socket.gethostname()}"
    if cell.device.is_gpu:
        where += f", GPU {os.environ.get('CUDA_VISIBLE_DEVICES', '?')} of the node"
    return add_note(rows, where)


def probe_in_job(spec: FrameworkSpec, threads: int, log: Path, python: str | None) -> tuple[Probe, dict[str, Any]]:
    """A framework as a cell's job sees it, and NVML's facts of the job's node (meta.json's ``gpus``)."""
    return probe_framework(spec, threads, log, python), {**nvml.machine(), "node": socket.gethostname()}


# ---- the record of submitted jobs ------------------------------------------------------------------------------------

def record_job(run_dir: Path, cell: str, job_id: str, event: str) -> None:
    """One line (fsynced) in the run folder: a cell's job ``submitted``, ``collected`` (its rows journaled) or
    ``cancelled``."""
    path = run_dir / JOBS
    try:
        with open(path, "a") as fh:
            fh.write(json.dumps({"cell": cell, "job": job_id, "event": event}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise WriteFailed(path, exc) from None


def open_jobs(run_dir: Path) -> dict[str, str]:
    """cell -> its last submitted job that was neither collected nor cancelled (a killed orchestrator's). The journal
    is written before ``collected``: a kill between the two journals the same rows once more, never loses them."""
    out: dict[str, str] = {}
    try:
        lines = (run_dir / JOBS).read_text().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        try:
            entry = json.loads(line)
            cell, job, event = entry["cell"], str(entry["job"]), entry["event"]
        except (ValueError, KeyError, TypeError):
            continue   # a line torn by a kill mid-write
        if event == "submitted":
            out[cell] = job
        elif out.get(cell) == job:
            del out[cell]
    return out


# ---- the executor ---------------------------------------------------------------------------------------------------

@dataclass
class Running:
    cell: Cell
    job: Any                  # a submitit Job
    taken_over: bool = False  # submitted by an earlier, killed orchestrator


class SlurmExecutor:
    """Each cell one job asking for the cell's threads as CPUs (``--cpus-per-task``) and, on a GPU run,
    ``gpus_per_task`` GPUs (the cell runs on the first); all submitted at once on Slurm (the scheduler decides what
    runs together), one at a time in the local mode (so timings never overlap, as with the local executor)."""

    def __init__(self, options: SlurmSettings, run_dir: Path, gpu: bool) -> None:
        self.submitit = require()
        self.options, self.run_dir, self.gpu = options, run_dir, gpu
        self.local = options.cluster == "local"
        self.folder = Path(options.folder) if options.folder else run_dir / "slurm"
        try:
            self.executor = self.submitit.AutoExecutor(folder=self.folder, cluster=options.cluster)
        except RuntimeError as exc:   # no srun here
            raise ConvbenchError(f"--executor slurm: {exc}") from None
        self.waiting: list[tuple[Cell, FrameworkSpec]] = []
        self.running: list[Running] = []
        self.earlier = open_jobs(run_dir)
        self.facts: dict[str, Any] | None = None
        self.probing: Any = None   # the probe job waited for now (cancelled with the run)

    def parameters(self, name: str, threads: int) -> dict[str, Any]:
        """submitit's parameters of a job; on Slurm they become the sbatch options."""
        gpus = (self.options.gpus_per_task or 1) if self.gpu else 0
        params: dict[str, Any] = {"name": name, "timeout_min": self.options.time, "stderr_to_stdout": True}
        if self.local:   # CUDA_VISIBLE_DEVICES=0..gpus-1 for the job's process
            return {**params, "gpus_per_node": gpus}
        return {**params, "cpus_per_task": threads, "slurm_partition": self.options.partition,
                "slurm_account": self.options.account, "slurm_gpus_per_task": gpus or None}

    def submit_job(self, name: str, threads: int, fn: Any, *args: Any) -> Any:
        self.executor.update_parameters(**self.parameters(name, threads))
        try:
            with output_to(self.folder / "controllers.log" if self.local else None):
                return self.executor.submit(fn, *args)
        except (RuntimeError, OSError) as exc:   # sbatch refused it (submitit's FailedJobError is a RuntimeError)
            raise ConvbenchError(f"sbatch refused the job: {last_line(str(exc))}") from None

    def wait_for(self, job: Any, what: str) -> Any:
        """A probe's result; a job that failed is one line (the nodes' environment is not the one convbench runs in)."""
        self.probing = job
        while not self.ended(job):
            time.sleep(POLL_S[self.options.cluster])
        self.probing = None
        kind, value = self.outcome(job)
        if kind != "success":
            why = last_line(value) if kind == "error" else f"ended {value} without a result"
            raise ConvbenchError(f"slurm job {job.job_id} ({what}) failed: {why} (log: {job.paths.stdout})")
        return value

    def outcome(self, job: Any) -> tuple[str, Any]:
        """("success", what the job's function returned), ("error", its traceback) or ("ended", the job's state) of a
        job that ended: read from submitit's result file as soon as it is there (``job.result()`` would wait for the
        job's process to end as well)."""
        if not self.local and not job.paths.result_pickle.exists():
            job.exception()   # submitit's own wait for a result file that a shared filesystem shows late
        if not job.paths.result_pickle.exists():
            return "ended", job.state
        kind, value = self.submitit.core.utils.pickle_load(job.paths.result_pickle)
        return str(kind), value

    def probe(self, spec: FrameworkSpec, threads: int, log: Path, gpu: bool, python: str | None) -> Probe:
        job = self.submit_job(f"convbench-probe-{spec.name}", threads, probe_in_job, spec, threads, log, python)
        probe, facts = self.wait_for(job, f"probing {spec.name}")
        self.facts = self.facts or facts
        return probe

    def cpu_peak(self, threads: int, log: Path) -> float | None:
        return self.wait_for(self.submit_job("convbench-gemm", threads, measure_cpu_peak, threads, log), "CPU GEMM peak")

    def gpu_facts(self, gpu: bool) -> dict[str, Any]:
        """NVML's facts of the node that answered the first probe job (a cluster of one kind of node is assumed)."""
        return self.facts if self.facts is not None else nvml.machine()

    def submit(self, cell: Cell, spec: FrameworkSpec) -> None:
        """Queues the cell, or takes over the job an earlier (killed) orchestrator submitted for it, if that job is
        still queued or running or has left its result."""
        job_id = self.earlier.pop(cell.name, None)
        job = self.earlier_job(job_id) if job_id else None
        if job is None:
            self.waiting.append((cell, spec))
            return
        print(f"[{cell.name}] slurm job {job_id} of the earlier attempt is still queued, running or done: taking it "
              f"over (log: {job.paths.stdout})", flush=True)
        self.running.append(Running(cell, job, taken_over=True))

    def earlier_job(self, job_id: str) -> Any:
        if self.local:
            job = self.submitit.LocalJob(self.folder, job_id)
            return job if job.paths.result_pickle.exists() or self.local_alive(job_id) else None
        job = self.submitit.SlurmJob(self.folder, job_id)
        if job.paths.result_pickle.exists():
            return job
        state = job.watcher.get_state(job_id, mode="force")   # sacct; UNKNOWN (no longer in its records): submit again
        return job if state.split()[0].upper() in UNFINISHED else None

    def local_alive(self, job_id: str) -> bool:
        """A local job's controller process (its id is the pid) still running, checked by its command line (the
        controller of this folder's jobs, not a process that got the pid since)."""
        import psutil
        try:
            proc = psutil.Process(int(job_id))
            command = " ".join(proc.cmdline())
            return proc.status() != psutil.STATUS_ZOMBIE and "submitit.local._local" in command and \
                str(self.folder) in command
        except (psutil.Error, ValueError):
            return False

    def ended(self, job: Any, taken_over: bool = False) -> bool:
        """Its result is there, or the job is over without one (a local job taken over has no process handle: its
        controller's pid tells)."""
        if job.paths.result_pickle.exists():
            return True
        return not self.local_alive(job.job_id) if self.local and taken_over else bool(job.done())

    def start(self, cell: Cell, spec: FrameworkSpec) -> list[Row] | None:
        """Submits a cell's job; its failure row when sbatch refuses it."""
        try:
            job = self.submit_job(f"convbench-{cell.name}", cell.run.threads, run_cell_in_job, cell, spec,
                                  self.run_dir / "cells" / cell.name)
        except ConvbenchError as exc:
            return [failure_row(cell, "error", str(exc))]
        record_job(self.run_dir, cell.name, job.job_id, "submitted")
        self.running.append(Running(cell, job))
        print(f"[{cell.name}] submitted as slurm job {job.job_id} (log: {job.paths.stdout})", flush=True)
        return None

    def results(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        while self.waiting or self.running:
            while self.waiting and not (self.local and self.running):
                cell, spec = self.waiting.pop(0)
                if (refused := self.start(cell, spec)) is not None:
                    yield cell.name, refused
            entry = next((r for r in self.running if self.ended(r.job, r.taken_over)), None)
            if entry is None:
                time.sleep(POLL_S[self.options.cluster])
                continue
            self.running.remove(entry)
            rows = self.rows(entry)
            print(f"[{entry.cell.name}] {', '.join(r['status'] for r in rows)} (slurm job {entry.job.job_id})", flush=True)
            yield entry.cell.name, rows
            record_job(self.run_dir, entry.cell.name, entry.job.job_id, "collected")

    def rows(self, entry: Running) -> list[Row]:
        """The job's rows, or the one row of how the job itself ended: ``timeout`` at its time limit, ``error`` when
        its Python raised, else ``crashed`` (cancelled, killed, node failure, out of the job's memory)."""
        job, cell = entry.job, entry.cell
        where = f"slurm job {job.job_id} (log: {job.paths.stdout})"
        kind, value = self.outcome(job)
        if kind == "success":
            return value
        if "timed-out" in str(value) or (kind == "ended" and str(value).upper().startswith("TIMEOUT")):
            return [failure_row(cell, "timeout", f"{where} reached its time limit of {self.options.time} min "
                                                 "(--slurm-time; --resume may raise it)")]
        if kind == "error":
            return [failure_row(cell, "error", f"{where} raised {last_line(value)}")]
        state = "" if self.local else f" {value}"   # a local job's state says nothing more
        return [failure_row(cell, "crashed", f"{where} ended{state} without a result")]

    def cancel(self) -> None:
        """Ctrl-C, SIGTERM, a full disk: every job still waited for is cancelled (and recorded so, for --resume)."""
        jobs: list[tuple[str | None, Any, bool]] = [(r.cell.name, r.job, r.taken_over) for r in self.running]
        if self.probing is not None:
            jobs.append((None, self.probing, False))
        for name, job, taken_over in jobs:
            try:
                if self.local and taken_over:
                    if self.local_alive(job.job_id):
                        os.kill(int(job.job_id), signal.SIGINT)
                else:
                    job.cancel(check=False)
            except OSError:
                pass
            if name is not None:
                try:
                    record_job(self.run_dir, name, job.job_id, "cancelled")
                except WriteFailed:
                    pass
        self.running, self.probing = [], None


@contextmanager
def output_to(path: Path | None) -> Iterator[None]:
    """This process's stderr pointed at ``path`` (None: left alone) while the local mode starts a job: its controller
    process inherits it, and a cancelled one (or a terminal's Ctrl-C) ends with a traceback, which belongs in a log,
    not on the run's terminal. (The controller writes nothing to stdout, which the run's live display draws on.)"""
    if path is None:
        yield
        return
    sys.stderr.flush()
    path.parent.mkdir(parents=True, exist_ok=True)
    saved, log = os.dup(2), os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(log)
        os.close(saved)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text.strip()
