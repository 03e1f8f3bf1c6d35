"""Planning a run: command line + recipe file + defaults resolved once into ``RunSettings``, frameworks,
models and data checked, the plan written to ``plan.json``; then each cell's ``Cell`` (or the rows that say
why it cannot run).

``--resume RUN_DIR`` reads the plan back; of the run's options only the watchdog's limits (``--timeout``,
``--stall-timeout``) may be given with it: they apply to the cells that run now and are saved in the plan.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness import __version__
from harness.datasets import DATASETS
from harness.devices import CPU, Device, parse_device, parse_gpu_list
from harness.errors import ConvbenchError
from harness.orchestrator import interpreters, launcher, slurm
from harness.orchestrator.checks import (
    check_batch_fits,
    check_batches,
    check_compile_cache,
    check_data,
    check_resume_checkpoint,
)
from harness.orchestrator.defaults import MODE_OPTIONS, check_plain_sgd, frameworks_to_run, warn_ignored
from harness.orchestrator.probes import Probe
from harness.orchestrator.recipes import KEYS, check_recipe, load_recipe_file
from harness.orchestrator.sweep import Sweep, name_suffix, split_sweep
from harness.plugin_manager import Registries
from harness.registry import unknown_name
from harness.results import libraries
from harness.results.records import cell_id, failure_row
from harness.results.rundir import new_run_dir, write_json
from harness.results.runs import read_json
from harness.results.schema import FORMAT, SCHEMA_VERSION, check_readable
from harness.settings import (
    DEFAULT_DATASET,
    DEFAULT_EPOCHS,
    DEFAULT_MODELS,
    Cell,
    RunSettings,
    cell_batch,
    default_threads,
    parse_schedule,
)

PLAN = "plan.json"
ON_OFF = ("tf32", "autotune")
# options that shape the matrix: --resume takes none of them (it reruns the run's own settings)
MATRIX_OPTIONS = ("mode", "warmup", "steps", "precision_target", "max_time", "min_steps", "budget", "compile",
                  "precision", "layout", "tf32", "autotune", "device", "frameworks", "models", "dataset", "data_dir",
                  "epochs", "batch_size", "lr", "seed", "threads", "oom_retry", "augment", "no_checksum", "recipe",
                  "schedule", "momentum", "weight_decay", "optimizer", "target", "seeds", "resume_from", "executor",
                  "ray_address", "nproc", "devices", "python", "config", "require_quiet",
                  "compile_cache", "slurm_partition", "slurm_gpus_per_task", "slurm_account", "slurm_folder",
                  "slurm_cluster")
# what --resume may change: how long the cells that run again may take (a cell that timed out or stalled may need more;
# --slurm-time: their jobs)
RESUME_OPTIONS = ("timeout", "stall_timeout")


@dataclass
class Plan:
    run_id: str
    run_dir: Path
    argv: list[str]
    frameworks: list[str]
    models: list[str]
    seeds: list[int]
    settings: RunSettings
    explicit: bool = False   # --frameworks named them: an unusable --python interpreter is then a user error
    left_out: dict[str, str] = field(default_factory=dict)   # without --frameworks: those not installed, and why
    sweep: dict[str, list[Any]] = field(default_factory=dict)   # swept option -> its values (orchestrator/sweep.py)
    new: bool = False              # made now (not --resume): says what it left out; a refusal removes its folder
    default_device: bool = False   # new, without --device, --devices or --nproc: on cpu because cpu is the default

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "format": FORMAT, "harness_version": __version__,
                "run_id": self.run_id, "run_dir": str(self.run_dir), "argv": self.argv, "frameworks": self.frameworks,
                "models": self.models, "seeds": self.seeds, "settings": self.settings.to_dict(), "explicit": self.explicit,
                "left_out": self.left_out,
                **({"sweep": self.sweep} if self.sweep else {})}

    def save(self) -> None:
        write_json(self.run_dir / PLAN, self.to_dict())

    @classmethod
    def load(cls, run_dir: Path) -> "Plan":
        """The plan of a run folder written by this convbench; ConvbenchError (one line) when there is none, or when
        another format or version wrote it (read before its settings, which another version may name differently)."""
        not_a_run = ConvbenchError(f"{str(run_dir)!r} is not a convbench run directory (no readable {PLAN})")
        try:
            data = json.loads((run_dir / PLAN).read_text())
        except (OSError, ValueError):
            raise not_a_run from None
        if not isinstance(data, dict):
            raise not_a_run
        check_written_here(run_dir, data)
        try:
            return cls(data["run_id"], run_dir, list(data["argv"]), list(data["frameworks"]), list(data["models"]),
                       [int(s) for s in data["seeds"]], RunSettings.from_dict(data["settings"]),
                       bool(data.get("explicit", False)), dict(data.get("left_out") or {}),
                       {str(k): list(v) for k, v in (data.get("sweep") or {}).items()})
        except ConvbenchError as exc:
            if "format" in data:
                raise
            raise ConvbenchError(f"{str(run_dir)!r} was started by an earlier convbench (its {PLAN} has no format "
                                 f"version) whose settings convbench {__version__} cannot read ({exc}): resume it "
                                 "with the convbench that started it, or start a new run") from None
        except (ValueError, KeyError, TypeError):
            raise not_a_run from None


def check_written_here(run_dir: Path, data: dict[str, Any]) -> None:
    """Refuses a run folder of a newer results schema (one line: upgrade), of another format, or started by another
    convbench version (its rows would mix two versions in one results.csv). A plan from before formats were recorded
    is taken when its settings read (the layout did not change), unless its meta.json names another version."""
    check_readable(data, run_dir / PLAN, repr(str(run_dir)))
    fmt, version = data.get("format"), data.get("harness_version")
    if fmt is None:
        meta = read_json(run_dir / "meta.json")
        version = version or (meta.get("harness_version") if isinstance(meta, dict) else None)
    elif fmt != FORMAT:
        raise ConvbenchError(f"{str(run_dir)!r} is a run folder of format {fmt} (convbench {version}); convbench "
                             f"{__version__} reads format {FORMAT}: resume it with convbench {version}, or start a new run")
    if version is not None and version != __version__:
        raise ConvbenchError(f"{str(run_dir)!r} was started by convbench {version}; this is convbench {__version__}: "
                             f"resume it with convbench {version} (one run, one version), or start a new run")


def new_plan(args: argparse.Namespace, argv: list[str], regs: Registries) -> Plan:
    """Validates everything a run needs before any cell starts; creates the run directory and plan.json. What it
    does without ``--frameworks`` or ``--device``, and with options its mode does not read: ``defaults``."""
    libraries.require("convbench run")   # results.csv is written with pandas
    settings, sweep = resolve_run(args, regs)
    models = [regs.models.get(n) for n in (args.models or DEFAULT_MODELS)]
    train_size = check_data(settings, models)
    for batch in sweep.get("batch_size") or [settings.batch_size]:
        check_batches(replace(settings, batch_size=batch), models)
        check_batch_fits(replace(settings, batch_size=batch), models, train_size)
    if settings.resume_from:
        check_resume_checkpoint(settings.resume_from, models, settings.epochs)
    if settings.compile_cache:
        check_compile_cache(settings.compile_cache)
    # after the checks of what was typed, so a machine without a framework still hears about a typo first
    frameworks, left_out = frameworks_to_run(args.frameworks, regs.frameworks, settings.interpreter)
    launch = launcher.launched()
    if launch is not None and launch.rank > 0:   # rank 0 writes the run; this rank's own rows go to a folder of its own
        follower = tempfile.mkdtemp(prefix=f"convbench-rank{launch.rank}-")
        print(f"{launch.describe()}: rank 0 writes the run's results; this rank's rows and logs go to {follower}")
        run_id, run_dir = new_run_dir(follower)
    else:
        run_id, run_dir = new_run_dir(args.output or "results")
    seeds = list(range(settings.seed, settings.seed + (args.seeds or 1)))
    plan = Plan(run_id, run_dir, argv, frameworks, [m.name for m in models], seeds, settings, bool(args.frameworks),
                left_out, sweep, new=True, default_device=not (args.device or args.devices or args.nproc))
    plan.save()
    return plan


def resume_plan(args: argparse.Namespace, regs: Registries) -> Plan:
    libraries.require("convbench run")
    if launch := launcher.launched():
        raise ConvbenchError(f"started by {launch.source}: every rank must run the same cells, which a resume decides "
                             "from rank 0's journal alone; resume without a launcher, or start a new run")
    given = [f"--{o.replace('_', '-')}" for o in (*MATRIX_OPTIONS, "output") if option_given(args, o)]
    if given:
        raise ConvbenchError(f"--resume continues the run in its own folder with its own settings; drop {', '.join(given)}")
    plan = Plan.load(Path(args.resume))
    for name in plan.frameworks:
        regs.frameworks.get(name)
    for name in plan.models:
        regs.models.get(name)
    limits = {o: getattr(args, o) for o in RESUME_OPTIONS if option_given(args, o)}
    said = [f"--{o.replace('_', '-')} {f'{v:g}s' if v else 'off'}" for o, v in limits.items()]
    if option_given(args, "slurm_time"):
        limits["slurm"] = slurm.resume_time(plan.settings.slurm, args.slurm_time)
        said.append(f"--slurm-time {args.slurm_time} min")
    if limits:
        plan.settings = replace(plan.settings, **limits)
        plan.save()
        print("resume: " + ", ".join(said) + " for the cells that run now (saved in plan.json)")
    return plan


def option_given(args: argparse.Namespace, option: str) -> bool:
    """store_true flags are False when absent; every other option (on/off switches included) is None."""
    value = getattr(args, option, None)
    return value is not None and (value is not False or option in ON_OFF)


# command-line options that are RunSettings fields of the same name, taken as given when not None
DIRECT = ("mode", "epochs", "batch_size", "lr", "momentum", "weight_decay", "schedule", "optimizer", "target", "warmup",
          "steps", "threads", "compile", "precision", "layout", "tf32", "autotune", "seed", "timeout", "stall_timeout",
          "require_quiet", "executor", "ray_address", "precision_target", "max_time", "min_steps", "budget")


def resolve_settings(args: argparse.Namespace, regs: Registries) -> RunSettings:
    """The run's settings, merged once: the defaults of RunSettings < the recipe file < the command line (which
    is never modified); then checked and derived (milestones, momentum of plain SGD, devices)."""
    return resolve_run(args, regs)[0]


def resolve_run(args: argparse.Namespace, regs: Registries) -> tuple[RunSettings, Sweep]:
    """``resolve_settings``, and the options swept (comma lists): the settings hold one value of each
    (``sweep.split_sweep``), each cell its own."""
    given = {k: getattr(args, k) for k in DIRECT if getattr(args, k) is not None}
    sweep = split_sweep(given, bool(args.oom_retry))
    if given.get("steps") == "auto":
        del given["steps"]
    if given.get("budget") is not None:
        if "steps" in given:
            raise ConvbenchError("--budget plans adaptive sampling: use it with --steps auto (the default), not a fixed "
                                 f"--steps {given['steps']}")
        if given.get("executor") in ("ray", "slurm"):
            raise ConvbenchError("--budget plans cells that run one after another: use it with the local executor, "
                                 f"not --executor {given['executor']}")
    mode = given.get("mode", RunSettings.mode)
    warn_ignored(mode, [o for options in MODE_OPTIONS.values() for o in options if option_given(args, o)])
    dataset = args.dataset or DEFAULT_DATASET[mode]
    if dataset not in DATASETS:
        raise ConvbenchError(unknown_name("dataset", dataset, DATASETS))
    flags = {k: True for k in ("augment", "no_checksum", "oom_retry") if getattr(args, k)}
    from_file = load_recipe_file(args.recipe) if args.recipe else {}
    values = {"epochs": DEFAULT_EPOCHS[dataset], **from_file, **given, **flags}
    recipe = {k: values.get(k, getattr(RunSettings, k)) for k in KEYS}
    check_recipe(recipe)
    if recipe["optimizer"] == "sgd":
        check_plain_sgd(recipe["momentum"], given, from_file)
        values["momentum"] = 0.0
    values["milestones"] = parse_schedule(recipe["schedule"], recipe["epochs"])
    if mode == "speed":
        values.update(epochs=None, target=None)
    values.setdefault("threads", default_threads())
    world, devices, device = data_parallel(args, mode)
    launch = launcher.launched()
    settings = RunSettings(**values, dataset=dataset, device=device, world_size=world, devices=devices,
                           slurm=slurm.resolve(args, device), launcher=launch.describe() if launch else None,
                       data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else None,
                       resume_from=str(Path(args.resume_from).resolve()) if args.resume_from else None,
                       compile_cache=str(Path(args.compile_cache).resolve()) if args.compile_cache else None,
                       pythons=interpreters.to_entries(interpreters.resolve_pythons(args.python, args.config,
                                                                            regs.frameworks.names())))
    return settings, sweep


def data_parallel(args: argparse.Namespace, mode: str) -> tuple[int, tuple[Device, ...] | None, Device]:
    """(world size, per-rank devices, the cell's device) from --device, --nproc N (CPU processes) and
    --devices cuda:0,cuda:1 (GPUs). The cell's device is what rows, probes and hooks use, so with --devices
    it is the first GPU, never the default cpu."""
    device = parse_device(args.device) if args.device else None
    if launch := launcher.launched():
        return launched_ranks(args, mode, launch, device)
    if args.executor in ("ray", "slurm") and device not in (None, CPU, Device("cuda", 0)):
        where = "Ray reserves for its task" if args.executor == "ray" else "its Slurm job is given"
        raise ConvbenchError(f"with --executor {args.executor} a GPU cell runs on the GPU {where}: use --device cuda, "
                             f"not {device}")
    if not (args.nproc or args.devices):
        return 1, None, device or CPU
    if args.nproc and args.devices:
        raise ConvbenchError("give --nproc (CPU processes) or --devices (GPUs), not both")
    if mode == "speed":
        raise ConvbenchError("data-parallel runs (--nproc, --devices) are for train mode")
    if args.executor in ("ray", "slurm"):
        raise ConvbenchError(f"data-parallel cells run with the local executor; drop --executor {args.executor}")
    if args.devices:
        devices = parse_gpu_list(args.devices)
        if device is not None and device != devices[0]:
            raise ConvbenchError(f"--device {device} disagrees with --devices {','.join(d.name for d in devices)}; "
                                 "--devices alone says where a data-parallel cell runs")
        device = devices[0]
    else:
        if device is not None and device.is_gpu:
            raise ConvbenchError(f"--nproc {args.nproc} trains on CPU processes; for GPUs use --devices cuda:0,cuda:1")
        devices, device = (CPU,) * args.nproc, CPU
    if len(devices) < 2:
        raise ConvbenchError("data-parallel training needs at least 2 devices or processes")
    return len(devices), devices, device


def launched_ranks(args: argparse.Namespace, mode: str, launch: launcher.Launched,
                   device: Device | None) -> tuple[int, tuple[Device, ...] | None, Device]:
    """Under torchrun or srun every cell is data parallel over the launched processes: (their number, no per-rank
    list, this rank's device: its node's GPU LOCAL_RANK with --device cuda, else the CPU)."""
    given = [flag for option, flag in launcher.REFUSED.items() if getattr(args, option, None)]
    if given:
        raise ConvbenchError(f"started by {launch.source} ({launch.world} processes): the launcher makes the ranks and "
                             f"every rank runs the same cells; drop {', '.join(given)}")
    if mode == "speed":
        raise ConvbenchError(f"started by {launch.source}: data-parallel runs are for train mode; start speed mode "
                             "without a launcher")
    if args.executor in ("ray", "slurm"):
        raise ConvbenchError(f"started by {launch.source}: each rank runs its own worker; drop --executor {args.executor}")
    if len(args.batch_size or ()) > 1:
        raise ConvbenchError(f"started by {launch.source}: a batch sweep stops at an out-of-memory on one rank, which "
                             "the others cannot see; give one --batch-size")
    if device is not None and device.is_gpu and device.index not in (None, 0, launch.local_rank):
        raise ConvbenchError(f"started by {launch.source}: each rank trains on its node's GPU LOCAL_RANK "
                             f"(cuda:{launch.local_rank} here); give --device cuda, not {device}")
    here = Device("cuda", launch.local_rank) if device is not None and device.is_gpu else CPU
    return launch.world, None, here


def cell_name(framework: str, model: str, device: Device, world: int, seed: int, several_seeds: bool,
              swept: dict[str, Any] | None = None) -> str:
    """framework-model-device, then the swept values (only those swept: -b64), -xN data parallel, -sN seeds."""
    return (cell_id(framework, model, device.name) + name_suffix(swept or {}) + (f"-x{world}" if world > 1 else "")
            + (f"-s{seed}" if several_seeds else ""))


def prepare_cell(fw: str, model: str, seed: int, plan: Plan, probe: Probe, regs: Registries,
                 world: int = 1, swept: dict[str, Any] | None = None) -> tuple[Cell, list[dict[str, Any]] | None]:
    """(the cell, rows if it cannot run: unavailable framework or device, no data-parallel engine). ``swept``: this
    cell's values of the swept options (one of ``sweep.combinations``)."""
    settings = replace(plan.settings, **(swept or {}))
    spec = regs.frameworks.get(fw)
    dev = probe.device(settings.device) if probe.available else None
    run = replace(settings, seed=seed, batch_size=cell_batch(settings, regs.models.get(model)), world_size=world,
                  devices=settings.devices if world > 1 else None)
    cell = Cell(run_id=plan.run_id, name=cell_name(fw, model, settings.device, world, seed, len(plan.seeds) > 1, swept),
                framework=fw, model=model, run=run, framework_version=probe.version,
                device_name=dev.get("description") if dev else None, dp_mode=spec.data_parallel if world > 1 else None)
    if world > 1 and spec.data_parallel is None:
        return cell, [failure_row(cell, "unavailable", f"the {fw} plugin has no data-parallel engine")]
    if settings.launcher and spec.data_parallel != "processes":
        return cell, [failure_row(cell, "unavailable", f"started by {settings.launcher.partition(':')[0]}, each process "
                                  f"is one rank: {fw}'s engine drives all its devices from one process (use --devices "
                                  "without a launcher)")]
    if not probe.available:
        return cell, [failure_row(cell, "unavailable", probe.reason)]
    if dev is None:
        return cell, [failure_row(cell, "unavailable", f"{fw} sees no device {settings.device.name!r}")]
    unseen = [d.name for d in cell.devices or () if probe.device(d) is None]
    if unseen:
        return cell, [failure_row(cell, "unavailable", f"{fw} sees no device {', '.join(map(repr, unseen))}")]
    return cell, None
