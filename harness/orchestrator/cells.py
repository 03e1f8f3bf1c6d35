"""Running a cell: its worker (or one per rank of a data-parallel cell) with only its GPUs visible, the telemetry
sampler beside it, and always its rows back, whatever happened to it."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from harness.atomic import WriteFailed, write_atomic
from harness.devices import visible_ids
from harness.errors import ConvbenchError
from harness.frameworks import FrameworkSpec
from harness.hardware import nvml as nvml_facts
from harness.hardware import telemetry
from harness.orchestrator import launcher
from harness.orchestrator.workers import Worker, WorkerResult, rank_env, signal_name, worker_env
from harness.results.records import Row, add_note, failure_row, fill
from harness.settings import Cell
from harness.worker.protocol import EXIT_EXCEPTION, parse_event


def gpu_visibility(cell: Cell) -> tuple[Cell, dict[str, str]]:
    """A GPU cell's workers see only the cell's GPUs (CUDA_VISIBLE_DEVICES), so no framework creates a
    context on another GPU of the host; inside, they are cuda:0, cuda:1, ... (``Cell.visible`` maps them).
    A CPU cell's workers see none (an empty list): JAX would otherwise default to a GPU, TF place small ops on it."""
    gpus = tuple(d for d in (cell.devices if cell.world_size > 1 and cell.devices else (cell.device,)) if d.is_gpu)
    if not gpus:
        return cell, {"CUDA_VISIBLE_DEVICES": ""}
    ids = visible_ids(gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return cell.replace(visible=gpus), {"CUDA_VISIBLE_DEVICES": ",".join(ids)}


def run_cell(cell: Cell, spec: FrameworkSpec, cell_dir: Path, on_line: Callable[[str], None]) -> list[Row]:
    """Runs one cell in a fresh worker (or one per rank); always returns its rows, whatever happened to it."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    cell, gpu_env = gpu_visibility(cell)
    gpu: dict[str, Any] = {}
    nvml, handles = None, []
    on_gpu = bool(gpu_env["CUDA_VISIBLE_DEVICES"])
    if on_gpu:  # read before the worker starts: every process then on the GPU is another one
        nvml, why = nvml_facts.load()
        entries = gpu_env["CUDA_VISIBLE_DEVICES"].split(",")
        gpu = nvml_facts.cell_columns(nvml, entries, why)
        handles = [h for h in (nvml_facts.handle_or_none(nvml, e) for e in entries) if h is not None] if nvml else []
    sampler = telemetry.Sampler(nvml=nvml, gpu_handles=handles).start()
    route = telemetry_router(sampler, on_line)
    try:
        if cell.dp_mode == "processes" and not cell.run.launcher:
            rows = run_process_group_cell(cell, spec, cell_dir, route, gpu_env)
        else:   # one worker: the cell's, or under torchrun/srun this process's rank of it
            one, rank_env_, note = launched_rank(cell) if cell.run.launcher else (cell, {}, None)
            env = {**worker_env(spec, one.run.threads), **rank_env_, **gpu_env}
            if rank_env_:
                env.pop("TORCHELASTIC_USE_AGENT_STORE", None)   # the worker's store is its own, not torchrun's agent's
            worker = Worker(one, env, cell_dir / "worker.log", cell.python, job_file=cell_dir / "cell.json")
            rows = add_note(rows_from_result(one, worker.run(cell.run.timeout, route, cell.run.stall_timeout), cell_dir),
                            note)
    finally:  # Ctrl-C or SIGTERM mid-cell: the sampler thread stops with the cell
        readings = sampler.stop()
    if (readings.host_busy_fraction or 0) > telemetry.BUSY_THRESHOLD:
        on_line(f"warning: other processes used {100 * readings.host_busy_fraction:.0f}% of this machine's CPU time "
                "during the cell: its numbers were not taken on a quiet machine")
    gpu["gpu_other_procs"] = max(gpu.get("gpu_other_procs") or 0, readings.gpu_others_seen) if on_gpu else None
    return add_telemetry(fill(rows, gpu), readings, on_gpu)


def telemetry_router(sampler: telemetry.Sampler, on_line: Callable[[str], None]) -> Callable[[str], None]:
    """The worker's region events go to the sampler (which reads the energy counters), the rest to ``on_line``."""
    def route(line: str) -> None:
        event = parse_event(line)
        if event is not None and event.get("event") == "region":
            sampler.mark(str(event["name"]), str(event["state"]), int(event.get("images") or 0))
        else:
            on_line(line)
    return route


def add_telemetry(rows: list[Row], readings: telemetry.Readings, gpu: bool) -> list[Row]:
    """The sampler's whole-cell columns where the worker left them empty, and each phase's own; why the GPU's
    process list could not be read, if so."""
    cols = telemetry.columns(readings, gpu)
    for row in rows:
        fill([row], cols[""])
        phase = dict(cols.get(str(row.get("phase")), {}))
        note = phase.pop("note", None)
        row.update(phase)
        add_note([row], note)
    return add_note(rows, readings.gpu_note) if gpu and readings.gpu_note else rows


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now (all bound at once, so none is handed out twice)."""
    import socket
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def rank_cells(cell: Cell) -> list[Cell]:
    """One cell per process of a data-parallel cell: each names its own device (so it synchronises and
    measures that one), gets its share of the threads, and only rank 0 writes the checkpoint."""
    threads = max(1, cell.run.threads // cell.world_size)
    devices = cell.devices or (cell.device,) * cell.world_size
    return [cell.with_run(device=devices[rank], threads=threads).replace(
        rank=rank, checkpoint=cell.checkpoint if rank == 0 else None) for rank in range(cell.world_size)]


def launched_rank(cell: Cell) -> tuple[Cell, dict[str, str], str]:
    """(the worker's cell, its rank variables, the row's note) for this process's part of a cell under torchrun or
    srun (one convbench per rank, each running the same cells in the same order): a data-parallel cell's rank, with
    its share of the data, meeting the other ranks at the launcher's MASTER_ADDR on this cell's own port (rank 0's
    worker writes the checkpoint); the single-process baseline, which every rank trains alone at the same time on its
    own device. The node's threads are shared among its ranks."""
    launch = launcher.launched()
    if launch is None:
        raise ConvbenchError(f"cell {cell.name} was planned under {cell.run.launcher}, but this process was not started "
                             "by a launcher")
    one = cell.with_run(threads=max(1, cell.run.threads // launch.local_world))
    if cell.world_size == 1:
        return one, {}, (f"started by {launch.describe()}; the single-process baseline, trained by every rank alone at "
                         f"the same time on its own device: this is rank {launch.rank}'s")
    port = launcher.next_port(launch)
    ranked = one.replace(rank=launch.rank, checkpoint=cell.checkpoint if launch.rank == 0 else None)
    return ranked, launch.rank_env(port), f"started by {launch.describe()}; this cell's port {port}"


def run_process_group_cell(cell: Cell, spec: FrameworkSpec, cell_dir: Path, on_line: Callable[[str], None],
                           gpu_env: dict[str, str]) -> list[Row]:
    """One cell trained by ``world_size`` worker processes together; rank 0 reports. Each rank's cell names its
    own device, so it synchronises and measures that device. If any rank fails, times out or stalls, the others
    are killed (a survivor would wait forever in a collective), and the row says which rank it was."""
    world, ports = cell.world_size, free_ports(1 + cell.world_size)   # the master's, then one per rank (Paddle)
    workers = []
    for ranked in rank_cells(cell):
        env = {**rank_env(spec, ranked.run.threads, ranked.rank, ports), **gpu_env}
        workers.append(Worker(ranked, env, cell_dir / f"worker.rank{ranked.rank}.log", cell.python,
                              job_file=cell_dir / f"cell.rank{ranked.rank}.json"))
    results: dict[int, WorkerResult] = {}
    timeout, stall = cell.run.timeout, cell.run.stall_timeout

    def watch(rank: int, on_rank_line: Callable[[str], None]) -> None:
        results[rank] = workers[rank].run(timeout, on_rank_line, stall)
        if results[rank].code != 0:
            for w in workers:
                w.kill()
    watchers = [threading.Thread(target=watch, args=(r, lambda line: None), daemon=True) for r in range(1, world)]
    for t in watchers:
        t.start()
    watch(0, on_line)
    survivors = end_survivors(workers, watchers, results)
    killed = [(r, res) for r, res in sorted(results.items()) if res.killed]
    if killed:   # the watchdog's kill caused the others' deaths: that is the cell's story
        rank, res = killed[0]
        return [failure_row(cell, str(res.killed), f"rank {rank}: {watchdog_message(cell, res)}")]
    rows = rows_from_result(cell, results[0], cell_dir)
    oom = [(r, res) for r, res in sorted(results.items()) if r and (res.payload or {}).get("status_hint") == "oom"]
    if oom and not any(row["status"] == "oom" for row in rows):   # rank 0 died with the group: the OOM is the story
        rank, res = oom[0]
        return [failure_row(cell, "oom", f"rank {rank}: {res.payload['error']}")]  # type: ignore[index]
    failed = [(r, res) for r, res in sorted(results.items()) if r and res.code != 0 and r not in survivors]
    if failed and all(row["status"] == "ok" for row in rows):
        rank, res = failed[0]
        rows = [failure_row(cell, "crashed", f"rank {rank}: {res.tail()}")]
    for rank in survivors:
        add_note(rows, f"rank {rank} was still running {SURVIVOR_GRACE_S:g}s after rank 0 finished: killed")
    return rows


SURVIVOR_GRACE_S = 60.0   # how long ranks may take to end after rank 0 finished well (NCCL/gloo teardown)


def end_survivors(workers: list[Worker], watchers: list[threading.Thread], results: dict[int, WorkerResult]) -> list[int]:
    """Waits for the other ranks once rank 0 has ended. If rank 0 finished well (its row is written), a rank still
    running ``SURVIVOR_GRACE_S`` later is killed: it can only be waiting in a collective that rank 0 will never join
    (a rank that stopped training on its own), and without --timeout it would wait forever. Returns those ranks."""
    survivors: list[int] = []
    if results[0].code == 0:   # otherwise rank 0's watcher has killed them all already
        deadline = time.monotonic() + SURVIVOR_GRACE_S
        for t in watchers:
            t.join(max(0.0, deadline - time.monotonic()))
        survivors = [rank for rank, t in enumerate(watchers, start=1) if t.is_alive()]
        for rank in survivors:
            workers[rank].kill()
    for t in watchers:
        t.join()
    return survivors


def watchdog_message(cell: Cell, result: WorkerResult) -> str:
    """Why the watchdog killed a cell's worker, and the last progress it had reported."""
    if result.killed == "stalled":
        why = f"no progress for {cell.run.stall_timeout:g}s (--stall-timeout)"
    else:
        why = f"no result within --timeout {cell.run.timeout:g}s"
    return f"{why}; worker killed; its last progress: {result.last_progress}"


def rows_from_result(cell: Cell, result: WorkerResult, cell_dir: Path) -> list[Row]:
    """The worker's rows (its per-epoch rows and raw samples saved beside them), or the one row of its failure."""
    payload = result.payload
    if result.code is None:
        return [failure_row(cell, str(result.killed), watchdog_message(cell, result))]
    if payload is not None and "rows" in payload:
        rows = payload["rows"]
        for key, name in (("history", "epochs.json"), ("samples", "samples.json")):
            if key in payload:
                try:
                    write_atomic(cell_dir / name, json.dumps(payload[key], indent=1))
                except WriteFailed as exc:   # the rows are whole without it: keep them, say what is missing
                    add_note(rows, f"{name} not saved ({exc.reason})")
        return rows
    if payload is not None:
        where = f" (traceback in {result.log})" if result.code == EXIT_EXCEPTION else ""
        return [failure_row(cell, payload.get("status_hint", "error"), payload["error"] + where)]
    code = result.code
    how = f"killed by signal {signal_name(-code)}" if code < 0 else f"exited with code {code}"
    return [failure_row(cell, "crashed", f"worker {how}: {result.tail()}")]
