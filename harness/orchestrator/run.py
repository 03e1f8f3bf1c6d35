"""Running a plan: probe the frameworks, then every cell through the executor into the journal.

Cells that cannot run (unavailable framework or device) get their rows without a worker; a cell that
finished ``ok`` in an earlier attempt (``--resume``) is kept. One convbench at a time works in a run folder (its
lock). ``meta.json`` is written when the run starts and completed when it ends; ``results.csv`` is rewritten from
the journal after every cell and at the end, whatever happened; Ctrl-C / SIGTERM, a kill or a full disk leave a
resumable folder.
"""
from __future__ import annotations

import itertools
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from harness.atomic import WriteFailed, refused_write
from harness.errors import ConvbenchError
from harness.hardware import nvml, telemetry
from harness.orchestrator.budget import Budget, clock_text, summary, summary_line
from harness.orchestrator.defaults import device_note, left_out_line
from harness.orchestrator.display import Matrix, live_terminal
from harness.orchestrator.executors import Executor, LocalExecutor, make_executor
from harness.orchestrator.plan import Plan, prepare_cell
from harness.orchestrator.probes import Probe, describe
from harness.orchestrator.sweep import SweepCutoff, combinations
from harness.orchestrator.sweep import describe as describe_sweep
from harness.orchestrator.workers import recorded_env, worker_env
from harness.plugin_manager import Registries
from harness.results import journal
from harness.results.csvio import write_csv
from harness.results.records import add_scaling_efficiency
from harness.results.rundir import META, locked, now, start_meta, write_json
from harness.results.table import comparison_table
from harness.settings import RunSettings
from harness.worker.sampling import planned_series

INTERRUPTED = 130


def execute(plan: Plan, regs: Registries) -> int:
    """Runs every cell of the plan, holding the run folder's lock; exit code 0 only if every row is ``ok`` (130 when
    interrupted). A file that cannot be written (a full disk) stops the run with one line: every cell journaled is
    kept, and ``--resume`` finishes the run once there is room."""
    with locked(plan.run_dir):
        meta = start_meta(plan.run_dir, plan.run_id, plan.argv, plan.settings.to_dict())
        if plan.sweep:   # beside the settings, which hold one value of each swept option
            meta["sweep"] = plan.sweep
        try:
            write_json(plan.run_dir / META, meta)   # now, so a killed run has one too
            return run_cells(plan, regs, meta)
        except WriteFailed as exc:
            meta["stopped"] = str(exc)
            try:
                write_json(plan.run_dir / META, meta)
            except WriteFailed:
                pass
            raise ConvbenchError(f"{exc}. Every cell already journaled is kept; make room, then finish the run with: "
                                 f"convbench run --resume {plan.run_dir}") from None


def run_cells(plan: Plan, regs: Registries, meta: dict[str, Any]) -> int:
    run_dir, settings, started = plan.run_dir, plan.settings, time.monotonic()
    for line in journal.read(run_dir)[1]:
        print(f"warning: {line.describe(run_dir)}", flush=True)
    executor: Executor | None = None
    try:  # the announcement is inside: a signal handled as print returns must still leave a resumable run
        executor = make_executor(settings, run_dir)
        probes = probe_all(plan, meta, regs, executor)
    except KeyboardInterrupt:
        if executor is not None:
            executor.cancel()
        write_json(run_dir / META, {**meta, "interrupted": True})
        print(f"\ninterrupted before any cell ran. Resume with: convbench run --resume {run_dir}")
        return INTERRUPTED
    interrupted = False
    assert executor is not None
    ran: set[str] = set()
    display = make_display(started, local=isinstance(executor, LocalExecutor))
    try:
        submit_cells(plan, regs, probes, executor, display)
        budget = plan_budget(plan.settings, executor, started)
        if isinstance(executor, LocalExecutor):
            executor.watch = display.watch
        with display:
            for name, rows in executor.results():
                record(run_dir, name, add_scaling_efficiency(rows, journal.latest(run_dir)))
                ran.add(name)
                display.finished(name, rows)
                if budget is not None:
                    budget.finished(rows)
    except KeyboardInterrupt:
        executor.cancel()
        interrupted = True
    except (OSError, WriteFailed) as exc:   # the journal, results.csv or a cell's files: stop here, nothing more could be kept
        executor.cancel()
        failed = exc if isinstance(exc, WriteFailed) else refused_write(exc, run_dir)
        if failed is None:
            raise
        raise failed from None
    return finish(plan, meta, interrupted, ran, time.monotonic() - started)


def make_display(started: float, local: bool) -> Matrix:
    """The run's progress: rich's live display on a terminal (imported only then), else plain lines. ``local``: the
    cells run one at a time here, their steps and phases seen; otherwise (Ray) each one not finished is in flight."""
    if live_terminal(sys.stdout, os.environ):
        from harness.orchestrator.live import LiveMatrix
        return LiveMatrix(started, local)
    return Matrix(started)


def plan_budget(settings: RunSettings, executor: Executor, started: float) -> Budget | None:
    """--budget: each queued cell's series time planned as it starts (the local executor runs them in turn)."""
    if settings.budget is None or not isinstance(executor, LocalExecutor) or not executor.queue:
        return None
    budget = Budget(settings.budget, len(executor.queue), planned_series(settings.device.is_gpu), started)
    executor.prepare = budget.plan
    return budget


def submit_cells(plan: Plan, regs: Registries, probes: dict[str, Probe], executor: Executor, display: Matrix) -> None:
    """Every cell of the plan: kept when an earlier attempt finished ok, recorded when it cannot run, else submitted
    (a data-parallel cell after its single-device baseline; a batch sweep smallest first, ended upward by an
    out-of-memory when the executor runs cells in turn); each counted in the run's progress display."""
    settings, previous = plan.settings, journal.latest(plan.run_dir)
    worlds = (1, settings.world_size) if settings.world_size > 1 else (1,)
    if "batch_size" in plan.sweep and isinstance(executor, LocalExecutor):
        executor.cutoff = SweepCutoff()
    for fw in plan.frameworks:
        for model in plan.models:
            for seed in plan.seeds:
                for swept, world in itertools.product(combinations(plan.sweep), worlds):
                    cell, rows = prepare_cell(fw, model, seed, plan, probes[fw], regs, world, swept)
                    kept = bool(previous.get(cell.name)) and all(r["status"] == "ok" for r in previous[cell.name])
                    display.add(cell.name, model, finished=kept or rows is not None)
                    if kept:
                        print(f"[{cell.name}] ok in an earlier attempt; kept")
                    elif rows is not None:
                        record(plan.run_dir, cell.name, rows)
                    else:
                        executor.submit(cell, regs.frameworks.get(fw))


def finish(plan: Plan, meta: dict[str, Any], interrupted: bool, ran: set[str] | None = None,
           wall_s: float | None = None) -> int:
    """results.csv and meta.json from the journal, the table, where a speed run's time went (the cells that ran in
    this attempt); the exit code: 0 only if every row is ok."""
    run_dir = plan.run_dir
    rows = journal.latest_rows(run_dir)
    write_csv(rows, run_dir / "results.csv")
    meta["finished"] = now()
    meta["interrupted"] = interrupted
    spent = None
    if plan.settings.mode == "speed" and ran:
        spent = summary([r for r in rows if r["cell"] in ran], wall_s)
        meta["time_spent"] = spent
    meta["statuses"] = {f"{r['cell']}/{r['phase']}": r["status"] for r in rows}
    if meta.get("resumes"):
        meta["resumes"][-1].update(finished=meta["finished"], interrupted=interrupted)
    write_json(run_dir / META, meta)
    print()
    print(comparison_table(rows))
    if spent is not None:
        print(f"\n{summary_line(spent)}")
    print(f"\nresults: {run_dir / 'results.csv'}")
    if interrupted:
        print(f"interrupted; finished cells are kept. Resume with: convbench run --resume {run_dir}")
        return INTERRUPTED
    return 0 if rows and all(r["status"] == "ok" for r in rows) else 1


def probe_all(plan: Plan, meta: dict[str, Any], regs: Registries, executor: Executor) -> dict[str, Probe]:
    """Each framework's probe (in a worker where the cells will run), the device check, the run's first line, the
    GPUs' facts and the CPU GEMM peak for speed runs."""
    settings, log = plan.settings, plan.run_dir / "probe.log"
    probes = {}
    for name in plan.frameworks:
        probes[name] = executor.probe(regs.frameworks.get(name), settings.threads, log, settings.device.is_gpu,
                                      settings.interpreter(name))
        if probes[name].bad_interpreter and plan.explicit:   # asked for by name: a user error, not a row
            refuse(plan, meta, probes[name].reason)
    try:
        check_devices(settings, probes)
    except ConvbenchError as exc:
        refuse(plan, meta, str(exc))
    announce(plan, probes)
    meta["frameworks"] = {name: vars(p) for name, p in probes.items()}
    meta["worker_env"] = {name: recorded_env(worker_env(regs.frameworks.get(name), settings.threads))
                          for name in plan.frameworks}
    meta["gpus"] = executor.gpu_facts(settings.device.is_gpu)   # under Ray: a GPU node's, not the driver's
    meta["telemetry"] = telemetry_meta(settings)
    if settings.mode == "speed" and not settings.device.is_gpu and settings.cpu_peak_gflops is None:
        peak = executor.cpu_peak(settings.threads, log)
        plan.settings = settings = replace(settings, cpu_peak_gflops=peak)
        plan.save()  # a resumed run compares against the same peak
        meta["settings"] = settings.to_dict()
        if peak is not None:
            print(f"  cpu fp32 GEMM peak: {peak:.1f} GFLOP/s ({settings.threads} threads)")
        meta["cpu_peak_gflops"] = peak
    return probes


def announce(plan: Plan, probes: dict[str, Probe]) -> None:
    """The run's first line (on cpu by default: the GPUs its frameworks see, and how to use them), the frameworks left
    out, each probed one."""
    settings = plan.settings
    what = f"{settings.epochs} epoch(s)" if settings.mode == "train" else f"speed: {sampling_text(settings)}"
    note = device_note(probes) if plan.default_device else ""
    batch = "" if "batch_size" in plan.sweep else f", batch {settings.batch_size or 'per model'}"   # a sweep names its own
    print(f"run {plan.run_id}: {len(plan.frameworks)} framework(s) x {len(plan.models)} model(s) on {settings.device}"
          f"{note}, {settings.dataset}, {what}{batch}{describe_sweep(plan.sweep)} -> {plan.run_dir}", flush=True)
    if plan.new and plan.left_out:
        print(left_out_line(plan.left_out))
    for probe in probes.values():
        print(describe(probe), flush=True)


def sampling_text(settings: RunSettings) -> str:
    """How the speed run samples, in words (its first line)."""
    if not settings.adaptive:
        return f"{settings.fixed_warmup} burn-in + {settings.steps} timed steps"
    budget = f", run budget {clock_text(settings.budget)}" if settings.budget is not None else ""
    return (f"each series sampled to +-{100 * settings.precision_target:g}% (at least {settings.min_steps} samples, at most "
            f"{settings.max_time:g} s{budget})")


def refuse(plan: Plan, meta: dict[str, Any], message: str) -> NoReturn:
    """A user error found by the probes, before any cell: a new run's folder goes (nothing in it was measured, and a
    run folder that cannot be resumed only misleads); a resumed run keeps its own, its meta.json updated."""
    if plan.new:
        shutil.rmtree(plan.run_dir, ignore_errors=True)
    else:
        write_json(plan.run_dir / META, meta)
    raise ConvbenchError(message)


def telemetry_meta(settings: RunSettings) -> dict[str, Any]:
    """How the rows' telemetry columns were measured, and why energy is missing where it is."""
    handles: list[Any] = []
    if settings.device.is_gpu:
        module, why = nvml.load()
        if module is None:
            return {"sampler_interval_s": 0.5, "busy_threshold": telemetry.BUSY_THRESHOLD, "energy": f"none: {why}"}
        handles = [h for h in (nvml.handle_or_none(module, e) for e in ("0",)) if h is not None]
    source, why = telemetry.energy_source(handles)
    return {"sampler_interval_s": 0.5, "busy_threshold": telemetry.BUSY_THRESHOLD,
            "energy": f"{source}: {why}" if source else why}


def check_devices(settings: RunSettings, probes: dict[str, Probe]) -> None:
    """Every GPU the run names (--device, each of --devices) must be seen by some available framework:
    one line and exit 2 before any cell starts, not a crashed cell or rank later."""
    for device in dict.fromkeys([settings.device, *(settings.devices or ())]):
        if device.is_gpu and not any(p.available and p.device(device) for p in probes.values()):
            raise ConvbenchError(f"device {device.name!r} not found: no available framework sees it on this machine")


def record(run_dir: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """The journal first (fsynced), then results.csv rebuilt from it."""
    journal.append(run_dir, name, rows)
    write_csv(journal.latest_rows(run_dir), run_dir / "results.csv")
