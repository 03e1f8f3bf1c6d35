"""The typed settings of a run and of each of its cells: built once in the orchestrator (command line +
recipe file + defaults), written to ``plan.json`` and ``cell.json``, and read back typed in the worker.

Every default lives here. A cell is a ``Cell``: what to run (framework, model, seed, device, batch) plus the
run's ``RunSettings``; ``Cell.to_json`` / ``Cell.from_json`` are the only way it crosses the process boundary.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ConvbenchError

DEFAULT_MODELS = ("simple_cnn", "lenet5")
DEFAULT_EPOCHS = {"digits": 10, "cifar10": 200, "synthetic": 1}
DEFAULT_DATASET = {"train": "digits", "speed": "synthetic"}
RECIPE_BATCH = 128          # the articles' batch (REFERENCE s.3)
SPEED_BATCH_IMAGENET = 32   # speed mode, 224x224 models (the timing article's batch)
EVAL_BATCH = 256            # convbench eval


def default_batch(input_shape: tuple[int, ...] | list[int], mode: str) -> int:
    """The batch a cell uses when none is given: 128, or 32 for 224x224 models in speed mode."""
    return SPEED_BATCH_IMAGENET if mode == "speed" and input_shape[-1] >= 224 else RECIPE_BATCH


@dataclass(frozen=True)
class RunSettings:
    """Everything that applies to every cell of a run. ``batch_size`` None: each model's default."""
    mode: str = "train"                 # train | speed
    dataset: str = "digits"
    data_dir: str | None = None
    no_checksum: bool = False
    # training recipe (REFERENCE s.3); epochs None in speed mode
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
    # speed mode
    warmup: int = 10
    steps: int = 100
    cpu_peak_gflops: float | None = None
    # execution, as asked for (each row records what actually ran)
    device: str = "cpu"
    threads: int = 1
    compile: str = "auto"
    precision: str = "fp32"
    layout: str = "native"
    tf32: bool = True                   # TF32 tensor cores for fp32 convs and matmuls (Ampere and newer GPUs)
    autotune: bool = True               # cuDNN / XLA algorithm autotuning
    # reliability and scale-out
    seed: int = 0
    timeout: float | None = None
    oom_retry: bool = False
    require_quiet: float | None = None  # seconds to wait, before each cell, for a quiet machine
    executor: str = "local"
    ray_address: str | None = None
    world_size: int = 1                 # data parallel: processes or devices per cell
    devices: tuple[str, ...] | None = None
    pythons: tuple[str, ...] = ()       # "framework=interpreter": whose workers run in another environment

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSettings":
        return _typed(cls, data)


@dataclass(frozen=True)
class Cell:
    """One cell: a framework x model x seed (x world size) of a run, as its worker receives it."""
    run_id: str
    name: str
    framework: str
    model: str
    seed: int
    device: str
    batch_size: int
    run: RunSettings = field(default_factory=RunSettings)
    framework_version: str | None = None
    device_name: str | None = None
    world_size: int = 1
    dp_mode: str | None = None          # "processes" | "devices" | None (see FrameworkSpec.data_parallel)
    devices: tuple[str, ...] | None = None
    rank: int = 0
    checkpoint: str | None = None
    # the GPUs this worker sees (its CUDA_VISIBLE_DEVICES, set by the orchestrator), in order; inside the
    # worker the first is cuda:0. None: every GPU of the machine is visible (CPU cells, tests)
    visible: tuple[str, ...] | None = None
    python: str | None = None           # the interpreter of this framework's workers (None: the orchestrator's)

    @property
    def per_device_batch(self) -> int | None:
        return self.batch_size // self.world_size if self.world_size > 1 else None

    @property
    def shard(self) -> tuple[int, int]:
        """(rank, world size) when this worker is one of several processes training the cell together."""
        return (self.rank, self.world_size) if self.dp_mode == "processes" else (0, 1)

    def replace(self, **changes: Any) -> "Cell":
        return dataclasses.replace(self, **changes)

    def local(self, device: str) -> str:
        """A device as the worker names it: ``cuda:3`` is ``cuda:0`` in a worker that sees only cuda:3."""
        if self.visible is None or not device.startswith("cuda"):
            return device
        return f"cuda:{self.visible.index(device)}"

    @property
    def local_device(self) -> str:
        return self.local(self.device)

    def plugin_settings(self) -> dict[str, Any]:
        """The ``settings`` dict ``convbench_build_model`` receives (documented in docs/plugins.md)."""
        out: dict[str, Any] = {"momentum": self.run.momentum, "weight_decay": self.run.weight_decay,
                               "seed": self.seed, "threads": self.run.threads, "compile": self.run.compile,
                               "precision": self.run.precision, "layout": self.run.layout, "tf32": self.run.tf32,
                               "autotune": self.run.autotune}
        if self.world_size > 1:
            out.update(world_size=self.world_size, rank=self.rank, dp_mode=self.dp_mode,
                       devices=[self.local(d) for d in self.devices] if self.devices else None)
        return out

    def to_dict(self) -> dict[str, Any]:
        data = _plain(dataclasses.asdict(self))
        data["run"] = self.run.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        data = dict(data)
        run = RunSettings.from_dict(data.pop("run", {}))
        return dataclasses.replace(_typed(cls, {**data, "run": RunSettings()}), run=run)

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path: str | Path) -> "Cell":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise ConvbenchError(f"cannot read cell file {str(path)!r}: {exc}") from None


T = TypeVar("T")


def _plain(value: Any) -> Any:
    """JSON-ready: tuples as lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _typed(cls: type[T], data: dict[str, Any]) -> T:
    """Builds ``cls`` from JSON data, checking each field's type (ints accepted for floats, lists for tuples).
    Unknown keys are an error: a cell file is written by this same version of convbench."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConvbenchError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        values[name] = _coerce(value, hints[name], f"{cls.__name__}.{name}")
    return cls(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        errors = []
        for option in typing.get_args(hint):
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except ConvbenchError as exc:
                errors.append(str(exc))
        raise ConvbenchError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConvbenchError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(v, inner, where) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, hint):
        return value
    if not isinstance(hint, type) or not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise ConvbenchError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return value
