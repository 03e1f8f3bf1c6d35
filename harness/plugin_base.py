"""A small shared base for framework plugins: the hook shell every framework plugin needs, written once.

A framework plugin subclasses ``FrameworkPlugin``, gives its ``FrameworkSpec`` and the execution settings it
supports, implements four methods (``build``, ``discover``, ``synchronize``, ``peak_memory_mb``) and exposes an
instance (``plugin = MyPlugin()``) through its entry point (``myfw = "convbench_myfw:plugin"``). The base
answers the hooks only for its own framework, parses the device string (``harness.devices``) and the hook's
settings dict into one typed ``BuildSettings`` (``harness.settings``), and checks the execution settings with
the registry's one-line, did-you-mean messages, so every plugin refuses the same mistakes with the same words.
A model's ``run_phase`` refuses an unknown phase with ``unknown_phase``. Nothing here imports a framework.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

from harness import hookimpl
from harness.devices import CPU, Device, parse_device
from harness.errors import ConvbenchError
from harness.frameworks import DeviceInfo, FrameworkSpec
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.native import PHASES, LayerModel, NativeModel
from harness.registry import Registry, unknown_name
from harness.settings import BuildSettings

# what the command line offers; a plugin supports a subset
COMPILE_MODES = ("auto", "none", "default", "xla")
PRECISIONS = ("fp32", "bf16", "fp16")
LAYOUTS = ("native", "nchw", "nhwc")


@dataclass(frozen=True)
class Execution:
    """Execution settings as a plugin will run them: ``compile`` and ``layout`` are the plugin's own names
    for what it does (``eager``, ``torch.compile``, ``tf.function``, ``nhwc`` ...), recorded in result rows.
    ``tf32`` and ``autotune`` are what was asked for (tf32 off under NVIDIA_TF32_OVERRIDE=0); a plugin reports what
    is in effect in ``execution_info``
    (TF32 needs a GPU of compute capability 8.0 or newer, autotuning a GPU)."""
    precision: str
    compile: str
    layout: str
    device: Device
    tf32: bool = True
    autotune: bool = True

    @property
    def half(self) -> bool:
        return self.precision != "fp32"


def xla_flags(flags: str | None, flag: str, present: bool) -> str:
    """$XLA_FLAGS with ``flag`` added or removed (the other flags kept as they are)."""
    kept = [f for f in (flags or "").split() if f != flag]
    return " ".join([*kept, flag] if present else kept)


XLA_NO_AUTOTUNE = "--xla_gpu_autotune_level=0"

# The cuDNN workspace autotuning may give a convolution algorithm, the same in every framework that has a limit
# (docs/gpus.md): their own defaults differ (torch: whatever is free, TensorFlow 4 GB, Paddle 512 MB), so the
# fastest algorithm one may pick is out of another's reach. XLA has no such limit (it takes what is free).
CUDNN_WORKSPACE_MB = 4096


def tf32_overridden() -> bool:
    """The user's NVIDIA_TF32_OVERRIDE=0: cuBLAS and cuDNN then never use TF32, whatever a framework's own switch says
    (NVIDIA reads it when the libraries load). Every plugin then runs, and records, --tf32 off."""
    return os.environ.get("NVIDIA_TF32_OVERRIDE") == "0"


def unknown_phase(phase: str) -> ValueError:
    """The one error every plugin's ``run_phase`` raises for a phase it does not know."""
    return ValueError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")


class FrameworkPlugin:
    """Subclass and set the class attributes; register an instance.

    ``compile_modes`` maps each supported ``--compile`` value to what the plugin does for it, ``layouts`` each
    supported ``--layout`` value to the layout it runs, ``precisions`` the supported ``--precision`` values and
    ``gpu_only_precisions`` those that need a GPU. ``async_on_cpu``: the framework queues work on the CPU too
    (JAX), so ``synchronize`` is called for ``cpu`` as well; otherwise the built-in CPU plugin answers there.
    """

    spec: ClassVar[FrameworkSpec]
    compile_modes: ClassVar[dict[str, str]] = {"auto": "eager", "none": "eager"}
    layouts: ClassVar[dict[str, str]] = {"native": "nchw", "nchw": "nchw"}
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    gpu_only_precisions: ClassVar[tuple[str, ...]] = ()
    async_on_cpu: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.spec.name

    # -- to implement -------------------------------------------------------------------------------
    def build(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> NativeModel:
        """The native model on ``execution.device`` (imports the framework)."""
        raise NotImplementedError

    def build_layer(self, model: ModelDef, layer: LayerSpec, execution: Execution,
                    settings: BuildSettings) -> LayerModel | None:
        """Optional: one node of ``model`` built alone (``harness.native.LayerModel``), by the same code and
        execution as ``build`` builds it in the network; None (the default): this plugin has no layer cells."""
        return None

    def discover(self) -> list[DeviceInfo]:
        """The devices the framework sees, ``cpu`` first (imports the framework)."""
        raise NotImplementedError

    def synchronize(self, device: Device) -> None:
        """Blocks until the work queued on ``device`` has finished (called for GPUs, and for cpu if async)."""
        raise NotImplementedError

    def peak_memory_mb(self, device: Device, reset: bool) -> float | None:
        """Peak device memory since the last reset, MiB (called for GPUs only). ``reset``: start a new window and
        answer 0.0, or None if the counter cannot be reset (it then covers the worker's life)."""
        raise NotImplementedError

    def device_timer(self, device: Device) -> Any:
        """The device's own clock, or None (the default): an object with ``mark() -> token`` (recorded on the
        device's queue) and ``seconds(start, end) -> float`` (waits for ``end``). ``convbench doctor`` times the same
        steps with it and with the harness's clock, which must agree."""
        return None

    def runtime_versions(self) -> dict[str, str | None]:
        """CUDA runtime, cuDNN and NCCL versions as the framework reports them (imports the framework)."""
        return {"cuda_runtime": None, "cudnn": None, "nccl": None}

    # -- the shell ----------------------------------------------------------------------------------
    def device(self, text: str | Device) -> Device:
        """Parses a device string and checks this framework supports its kind; one-line ConvbenchError."""
        device = parse_device(text)
        if device.kind not in self.spec.device_kinds:
            raise ConvbenchError(f"{self.name} cannot run on device {device.name!r}; it supports "
                                 f"{', '.join(self.spec.device_kinds)}")
        return device

    def execution(self, settings: BuildSettings, device: Device) -> Execution:
        """Validates ``precision``, ``compile`` and ``layout`` against what this plugin supports."""
        precision, compile_mode, layout = settings.precision, settings.compile, settings.layout
        self._check("precision", precision, PRECISIONS, self.precisions)
        self._check("compile mode", compile_mode, COMPILE_MODES, tuple(self.compile_modes))
        self._check("layout", layout, LAYOUTS, tuple(self.layouts))
        if precision in self.gpu_only_precisions and not device.is_gpu:
            on_cpu = [p for p in self.precisions if p not in self.gpu_only_precisions]
            raise ConvbenchError(f"{self.name} {precision} needs a GPU; use --precision {' or '.join(on_cpu)} on cpu")
        # NVIDIA_TF32_OVERRIDE=0 turns the framework's own switch off too: kernels outside cuBLAS and cuDNN (Triton's,
        # XLA's) do not read the variable, so only then do all of a cell's matmuls and convolutions run strict fp32
        return Execution(precision, self.compile_modes[compile_mode], self.layouts[layout], device,
                         tf32=settings.tf32 and not tf32_overridden(), autotune=settings.autotune)

    def use_compile_cache(self, folder: str, execution: Execution) -> None:
        """Turns the framework's persistent compilation cache on in ``folder`` (made already) before anything
        compiles: called before ``build`` when ``--compile-cache`` is given and the run's ``--compile`` is one of
        ``spec.compile_cache_modes``. A framework without such a cache leaves those modes empty."""

    def environment(self, execution: Execution) -> dict[str, str | None]:
        """Environment variables the framework reads when it is imported or first initialises a device (e.g.
        an autotuning switch): applied to this worker before ``build``; None removes a variable."""
        return {}

    def apply_environment(self, execution: Execution) -> None:
        """Sets (or removes) the variables of ``environment`` in this worker, before the framework builds anything."""
        for name, value in self.environment(execution).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _check(self, kind: str, value: str, offered: tuple[str, ...], supported: tuple[str, ...]) -> None:
        if value not in offered:
            raise ConvbenchError(unknown_name(kind, value, offered))
        if value not in supported:
            raise ConvbenchError(f"{self.name} has no {kind} {value!r}; use one of {', '.join(supported)}")

    @hookimpl
    def convbench_add_frameworks(self, registry: Registry[FrameworkSpec]) -> None:
        registry.add(self.name, self.spec)

    def native(self, model: ModelDef, device: str | Device = CPU,
               settings: BuildSettings | dict[str, Any] | None = None) -> NativeModel:
        """The native model, settings validated: what ``convbench_build_model`` returns for this framework."""
        settings, execution = self.prepare_build(device, settings)
        return self.build(model, execution, settings)

    def prepare_build(self, device: str | Device,
                      settings: BuildSettings | dict[str, Any] | None) -> tuple[BuildSettings, Execution]:
        """What every build does first: the settings typed and validated into an ``Execution``, the framework's
        environment applied, and its persistent compilation cache turned on where the run asked for one."""
        if not isinstance(settings, BuildSettings):
            settings = BuildSettings.from_dict(settings or {})
        execution = self.execution(settings, self.device(device))
        self.apply_environment(execution)
        if settings.compile_cache and settings.compile in self.spec.compile_cache_modes:
            os.makedirs(settings.compile_cache, exist_ok=True)
            self.use_compile_cache(settings.compile_cache, execution)
        return settings, execution

    @hookimpl
    def convbench_build_model(self, framework: str, model: ModelDef, device: str,
                              settings: dict[str, Any]) -> NativeModel | None:
        return self.native(model, device, settings) if framework == self.name else None

    def native_layer(self, model: ModelDef, layer: LayerSpec, device: str | Device = CPU,
                     settings: BuildSettings | dict[str, Any] | None = None) -> LayerModel | None:
        """The node built alone, settings validated and the environment applied as for ``native``."""
        settings, execution = self.prepare_build(device, settings)
        return self.build_layer(model, layer, execution, settings)

    @hookimpl
    def convbench_build_layer(self, framework: str, model: ModelDef, layer: LayerSpec, device: str,
                              settings: dict[str, Any]) -> LayerModel | None:
        return self.native_layer(model, layer, device, settings) if framework == self.name else None

    @hookimpl
    def convbench_discover_devices(self, framework: str) -> list[DeviceInfo] | None:
        return self.discover() if framework == self.name else None

    @hookimpl
    def convbench_runtime_versions(self, framework: str) -> dict[str, str | None] | None:
        return self.runtime_versions() if framework == self.name else None

    @hookimpl
    def convbench_synchronize(self, framework: str, device: str) -> bool | None:
        if framework != self.name:
            return None
        dev = parse_device(device)
        if dev.is_cpu and not self.async_on_cpu:
            return None  # the built-in CPU plugin answers
        self.synchronize(dev)
        return True

    @hookimpl
    def convbench_peak_memory_mb(self, framework: str, device: str, reset: bool) -> float | None:
        if framework != self.name:
            return None
        dev = parse_device(device)
        return self.peak_memory_mb(dev, reset) if dev.is_gpu else None
