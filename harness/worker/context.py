"""What every cell does first, in its worker: plugins, model, data, the native model with shared weights; and
the two pieces other jobs share with it (``model_data``, ``build_native``)."""
from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from typing import Any

import pluggy

from harness.datasets import Dataset, load_dataset
from harness.datasets.loader import SYNTHETIC_SIZE
from harness.devices import Device
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.model.shapes import ModelSummary, model_summary
from harness.model.weights import init_weights
from harness.native import NativeModel
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import BuildSettings, Cell, RunSettings
from harness.worker import checks
from harness.worker.compile_cache import CacheWatch


@dataclass
class CellContext:
    cell: Cell
    pm: pluggy.PluginManager
    model: ModelDef
    summary: ModelSummary
    data: Dataset
    native: NativeModel
    cache: CacheWatch

    @property
    def framework(self) -> str:
        return self.cell.framework

    @property
    def device(self) -> Device:
        """The device as this worker names it (its first visible GPU is cuda:0)."""
        return self.cell.local_device

    def sync(self) -> None:
        self.pm.hook.convbench_synchronize(framework=self.framework, device=self.device.name)

    def peak_memory_mb(self, reset: bool = False) -> float | None:
        return self.pm.hook.convbench_peak_memory_mb(framework=self.framework, device=self.device.name, reset=reset)

    def compile_cache(self) -> str | None:
        """The cell's persistent compilation cache: cold, warm, unused, or None (off); ask after the cell's work."""
        return self.cache.state()

    def common(self) -> dict[str, Any]:
        """Row values every row of this cell carries; on a GPU, the framework's CUDA / cuDNN / NCCL versions."""
        info = checks.execution_info(self.native, getattr(self.native, "execution_info", dict)())
        gpu = self.pm.hook.convbench_runtime_versions(framework=self.framework) or {} if self.device.is_gpu else {}
        return {"params": self.native.param_count(), "flops_per_image": self.summary.flops, **info,
                **{k: gpu.get(k) for k in ("cuda_runtime", "cudnn", "nccl")},
                "python": platform.python_version(), "interpreter": sys.executable}


def model_data(model: ModelDef, run: RunSettings, synthetic_size: tuple[int, int] = SYNTHETIC_SIZE) -> Dataset:
    """The run's dataset for ``model`` (a synthetic set takes the model's shape); it must fit the model."""
    data = load_dataset(run.dataset, data_dir=run.data_dir, shape=model.input_shape, num_classes=model.num_classes,
                        seed=run.seed, synthetic_size=synthetic_size, checksums_off=run.no_checksum)
    if data.shape != tuple(model.input_shape):
        raise ConvbenchError(f"model {model.name} takes {model.input_shape}, dataset {data.name} gives {data.shape}")
    return data


def build_native(pm: pluggy.PluginManager, framework: str, model: ModelDef, device: Device,
                 settings: BuildSettings) -> NativeModel:
    """The framework's model of ``model`` on ``device`` (as this worker names it), through the build hook."""
    native = pm.hook.convbench_build_model(framework=framework, model=model, device=device.name,
                                           settings=settings.to_dict())
    if native is None:
        raise ConvbenchError(f"no plugin builds models for framework {framework!r}")
    return native


def setup(cell: Cell, data_size: tuple[int, int] = SYNTHETIC_SIZE) -> CellContext:
    pm = get_plugin_manager()
    regs = build_registries(pm)
    model = regs.models.get(cell.model)
    data = model_data(model, cell.run, data_size)
    used = cell.run.compile in regs.frameworks.get(cell.framework).compile_cache_modes
    cache = CacheWatch.start(cell.compile_cache, used)
    native = build_native(pm, cell.framework, model, cell.local_device, cell.build_settings())
    native.set_weights(init_weights(model, cell.seed))
    # the device's name as the framework sees it here, where the cell runs (on Ray, not the driver's GPU)
    seen = {d.name: d.description for d in pm.hook.convbench_discover_devices(framework=cell.framework) or []}
    cell = cell.replace(device_name=seen.get(cell.local_device.name) or cell.device_name)
    return CellContext(cell, pm, model, model_summary(model), data, native, cache)
