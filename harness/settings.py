"""The typed settings of a run, of each of its cells and of a plugin's model: built once in the orchestrator
(command line + recipe file + defaults, ``harness.orchestrator.plan.resolve_settings``), written to ``plan.json``
and ``cell.json``, and read back typed in the worker.

Every default lives here. ``RunSettings`` is what applies to every cell of a run; a ``Cell`` is one framework x
model of it, with the run's settings as that cell runs them (its seed, batch size, device and world size
resolved) in ``Cell.run``, so each value has one place. ``BuildSettings`` is what a plugin's model is built with.
Devices are ``harness.devices.Device`` values, written as their strings (``cpu``, ``cuda:0``) in JSON.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from harness.devices import CPU, Device
from harness.errors import ConvbenchError
from harness.jsonvalues import from_json_value, to_json_value

DEFAULT_MODELS = ("simple_cnn", "lenet5")
DEFAULT_EPOCHS = {"digits": 10, "cifar10": 200, "synthetic": 1}
DEFAULT_DATASET = {"train": "digits", "speed": "synthetic"}
RECIPE_BATCH = 128          # the articles' batch (docs/articles.md, 'The recipe')
SPEED_BATCH_IMAGENET = 32   # speed mode, 224x224 models (the timing article's batch)
EVAL_BATCH = 256            # convbench eval
OPTIMIZERS = ("momentum", "sgd")
# --stall-timeout: a cell's worker that reports no progress (a step, an evaluation, a phase) for this long is killed,
# status ``stalled``. The longest healthy silence is one unit of work: the first step of a 224x224 VGG-16 with
# cuDNN/XLA autotuning and compilation (minutes on a slow GPU, torch.compile on a small CPU several), one step of
# it on a 2-core CPU (about a minute at batch 32). 30 minutes leaves room for a slower machine than that.
DEFAULT_STALL_TIMEOUT = 1800.0
FIXED_WARMUP = 10           # burn-in steps with --steps N and no --warmup (the protocol before adaptive sampling)


def default_batch(input_shape: tuple[int, ...] | list[int], mode: str) -> int:
    """The batch a cell uses when none is given: 128, or 32 for 224x224 models in speed mode."""
    return SPEED_BATCH_IMAGENET if mode == "speed" and input_shape[-1] >= 224 else RECIPE_BATCH


def default_threads() -> int:
    """CPU threads per worker when none are given: every core of this machine."""
    return os.cpu_count() or 1


def parse_schedule(text: str, epochs: int) -> tuple[int, ...]:
    """The epochs after which the learning rate decays: 'step' (once, at half the epochs), 'step:E1,E2' (after
    those epochs, 1-based counts) or 'constant' (never)."""
    if text == "constant":
        return ()
    if text == "step":
        return (epochs // 2,) if epochs > 1 else ()
    if text.startswith("step:"):
        try:
            marks = tuple(int(v) for v in text[5:].split(",") if v.strip())
        except ValueError:
            marks = ()
        if marks and all(0 < m for m in marks) and list(marks) == sorted(marks):
            return marks
    raise ConvbenchError(f"bad schedule {text!r}; use step, step:E1,E2,... (increasing epochs) or constant")


@dataclass(frozen=True)
class SlurmSettings:
    """``--executor slurm``: each cell's job, as submitit submits it (docs/scale-out.md lists the sbatch parameters)."""
    partition: str | None = None        # sbatch --partition (None: the cluster's default)
    time: int = 60                      # sbatch --time, minutes: each job's limit
    gpus_per_task: int | None = None    # sbatch --gpus-per-task on a GPU run (None: 1); the cell runs on the first
    account: str | None = None          # sbatch --account
    folder: str | None = None           # submitit's folder of job files and logs (absolute; None: <run dir>/slurm)
    cluster: str = "slurm"              # "local": submitit's local executor, each job a process on this machine


@dataclass(frozen=True)
class RunSettings:
    """Everything that applies to every cell of a run. In plan.json ``batch_size`` None means each model's
    default and ``seed`` is the first seed; in a ``Cell`` they are that cell's."""
    mode: str = "train"                 # train | speed
    dataset: str = "digits"
    data_dir: str | None = None
    no_checksum: bool = False
    # training recipe (docs/articles.md, 'The recipe'); epochs None in speed mode
    epochs: int | None = 10
    batch_size: int | None = None
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 2e-4
    optimizer: str = "momentum"         # momentum | sgd (momentum 0)
    schedule: str = "step"
    decay_factor: float = 0.1
    milestones: tuple[int, ...] = ()
    augment: bool = False
    target: float | None = None
    resume_from: str | None = None
    # speed mode: steps None samples each series adaptively (harness/worker/sampling.py), a number is a fixed count
    # after ``warmup`` burn-in steps (None: detected with adaptive sampling, FIXED_WARMUP with a fixed count)
    warmup: int | None = None
    steps: int | None = None
    precision_target: float = 0.01     # adaptive: the median's 95 % interval within 1 % of it
    max_time: float = 30.0             # adaptive: wall seconds per series (per-step timing, pipelined windows)
    min_steps: int = 20                # adaptive: samples before the rule may stop a series
    budget: float | None = None        # seconds for the whole run (--budget): each cell's max_time is planned from it
    cpu_peak_gflops: float | None = None
    # execution, as asked for (each row records what actually ran)
    device: Device = CPU
    threads: int = 1
    compile: str = "auto"
    precision: str = "fp32"
    layout: str = "native"
    tf32: bool = True                   # TF32 tensor cores for fp32 convs and matmuls (Ampere and newer GPUs)
    autotune: bool = True               # cuDNN / XLA algorithm autotuning
    compile_cache: str | None = None    # absolute folder of the persistent compilation caches (one per framework)
    # reliability and scale-out
    seed: int = 0
    timeout: float | None = None
    stall_timeout: float = DEFAULT_STALL_TIMEOUT   # seconds without progress; 0: no stall watchdog
    oom_retry: bool = False
    require_quiet: float | None = None  # seconds to wait, before each cell, for a quiet machine
    executor: str = "local"
    ray_address: str | None = None
    slurm: SlurmSettings | None = None  # with --executor slurm
    world_size: int = 1                 # data parallel: processes or devices per cell
    devices: tuple[Device, ...] | None = None
    launcher: str | None = None         # started by torchrun or srun: every cell one rank per process (orchestrator.launcher)
    pythons: tuple[str, ...] = ()       # "framework=interpreter": whose workers run in another environment

    @property
    def adaptive(self) -> bool:
        """Speed mode samples to a precision target (``--steps auto``) rather than a fixed count."""
        return self.steps is None

    @property
    def fixed_warmup(self) -> int:
        """Burn-in steps of a fixed count: the given ``warmup``, else FIXED_WARMUP."""
        return FIXED_WARMUP if self.warmup is None else self.warmup

    def interpreter(self, framework: str) -> str | None:
        """The interpreter given for ``framework``'s workers (--python), or None: the orchestrator's own."""
        return next((path for fw, _, path in (e.partition("=") for e in self.pythons) if fw == framework), None)

    def to_dict(self) -> dict[str, Any]:
        return to_json_value(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSettings":
        return from_json_value(cls, data)


def cell_batch(settings: RunSettings, model: Any) -> int:
    """The batch a model's cell runs at: the run's, or the model's default (``model``: a ModelDef)."""
    return settings.batch_size or default_batch(model.input_shape, settings.mode)


@dataclass(frozen=True)
class DataParallel:
    """One process's (or one worker's) part of a data-parallel cell, as its plugin builds the model for it.
    ``mode`` "processes": ``world_size`` processes train together, this one is ``rank`` (torch, Paddle);
    "devices": one process drives ``world_size`` replicas on ``devices`` (TensorFlow's MirroredStrategy).
    ``devices``: every rank's device as this worker names it (its first visible GPU is cuda:0)."""
    mode: str
    world_size: int
    rank: int = 0
    devices: tuple[Device, ...] | None = None


@dataclass(frozen=True)
class BuildSettings:
    """What a plugin's model is built with: the optimiser, the seed, CPU threads and the execution switches as
    the user asked for them (the plugin base turns precision, compile and layout into an ``Execution``), and the
    data-parallel part this process plays (None: one device). The hook ``convbench_build_model`` receives
    ``to_dict()`` of it; ``from_dict`` fills what a caller leaves out with these defaults."""
    momentum: float = RunSettings.momentum
    weight_decay: float = RunSettings.weight_decay
    seed: int = RunSettings.seed
    threads: int | None = None          # None: the framework's own default
    precision: str = RunSettings.precision
    compile: str = RunSettings.compile
    layout: str = RunSettings.layout
    tf32: bool = RunSettings.tf32
    autotune: bool = RunSettings.autotune
    compile_cache: str | None = None    # this framework's persistent compilation cache folder (None: off)
    parallel: DataParallel | None = None

    @property
    def world_size(self) -> int:
        return self.parallel.world_size if self.parallel else 1

    def to_dict(self) -> dict[str, Any]:
        """The hook's ``settings`` dict: every key always present, data parallel flattened (``world_size``,
        ``rank``, ``dp_mode``, ``devices``) as plugins written against the dict read it."""
        out = to_json_value(dataclasses.replace(self, parallel=None))
        del out["parallel"]
        p = self.parallel
        out.update(world_size=p.world_size if p else 1, rank=p.rank if p else 0, dp_mode=p.mode if p else None,
                   devices=[d.name for d in p.devices] if p and p.devices else None)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BuildSettings":
        """Settings from a hook's dict; missing keys (or None) take the defaults, an unknown key is a one-line error."""
        data = {k: v for k, v in data.items() if v is not None}
        world = data.pop("world_size", None) or 1
        rank, mode, devices = data.pop("rank", 0) or 0, data.pop("dp_mode", None), data.pop("devices", None)
        if world > 1 or mode is not None:
            data["parallel"] = {"mode": mode or "processes", "world_size": world, "rank": rank, "devices": devices}
        return from_json_value(cls, data)


@dataclass(frozen=True)
class Cell:
    """One cell: a framework x model x seed (x world size) of a run, as its worker receives it. ``run`` holds the
    run's settings as this cell runs them: its seed, batch size (halved by an out-of-memory retry), device and
    world size."""
    run_id: str
    name: str
    framework: str
    model: str
    run: RunSettings
    framework_version: str | None = None
    device_name: str | None = None
    dp_mode: str | None = None          # "processes" | "devices" | None (see FrameworkSpec.data_parallel)
    rank: int = 0
    checkpoint: str | None = None
    # the GPUs this worker sees (its CUDA_VISIBLE_DEVICES, set by the orchestrator), in order; inside the
    # worker the first is cuda:0. None: every GPU of the machine is visible (CPU cells, tests)
    visible: tuple[Device, ...] | None = None

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def batch_size(self) -> int:
        assert self.run.batch_size is not None, "a cell's batch size is resolved when the cell is made"
        return self.run.batch_size

    @property
    def device(self) -> Device:
        return self.run.device

    @property
    def devices(self) -> tuple[Device, ...] | None:
        return self.run.devices

    @property
    def world_size(self) -> int:
        return self.run.world_size

    @property
    def python(self) -> str | None:
        """The interpreter of this framework's workers (None: the orchestrator's)."""
        return self.run.interpreter(self.framework)

    @property
    def per_device_batch(self) -> int | None:
        return self.batch_size // self.world_size if self.world_size > 1 else None

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world size) when this worker is one of several processes training the cell together."""
        return (self.rank, self.world_size) if self.dp_mode == "processes" else (0, 1)

    @property
    def local_device(self) -> Device:
        """The cell's device as its worker names it: ``cuda:3`` is ``cuda:0`` in a worker that sees only cuda:3."""
        return self.device.local(self.visible)

    def replace(self, **changes: Any) -> "Cell":
        return dataclasses.replace(self, **changes)

    def with_run(self, **changes: Any) -> "Cell":
        """A new cell whose run settings differ (e.g. ``batch_size`` after out-of-memory, a rank's ``device``)."""
        return dataclasses.replace(self, run=dataclasses.replace(self.run, **changes))

    def build_settings(self) -> BuildSettings:
        """What this cell's model is built with (the hook receives its ``to_dict()``)."""
        r = self.run
        parallel = None
        if self.world_size > 1:
            devices = tuple(d.local(self.visible) for d in self.devices) if self.devices else None
            parallel = DataParallel(self.dp_mode or "processes", self.world_size, self.rank, devices)
        return BuildSettings(momentum=r.momentum, weight_decay=r.weight_decay, seed=r.seed, threads=r.threads,
                             precision=r.precision, compile=r.compile, layout=r.layout, tf32=r.tf32,
                             autotune=r.autotune, compile_cache=self.compile_cache, parallel=parallel)

    @property
    def compile_cache(self) -> str | None:
        """This cell's framework's persistent compilation cache folder, DIR/<framework> (None: --compile-cache off)."""
        return os.path.join(self.run.compile_cache, self.framework) if self.run.compile_cache else None

    def to_dict(self) -> dict[str, Any]:
        return to_json_value(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        return from_json_value(cls, data)
