"""PyTorch plugin. Torch is imported only by the methods that run inside a torch worker."""
from __future__ import annotations

import os
from typing import Any

from harness.devices import Device
from harness.frameworks import DeviceInfo, FrameworkSpec
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.plugin_base import CUDNN_WORKSPACE_MB, Execution, FrameworkPlugin
from harness.settings import BuildSettings


class TorchPlugin(FrameworkPlugin):
    # cuDNN's workspace cap, in MiB (ATen's cuDNN v8 convolutions read CUDNN_CONV_WSCAP_DBG; uncapped by default)
    spec = FrameworkSpec("torch", "torch", ("torch",), ("cpu", "cuda"), data_parallel="processes",
                         env={"CUDNN_CONV_WSCAP_DBG": str(CUDNN_WORKSPACE_MB)},
                         compile_cache_modes=("default",))
    compile_modes = {"auto": "eager", "none": "eager", "default": "torch.compile"}
    layouts = {"native": "nchw", "nchw": "nchw", "nhwc": "nhwc"}
    precisions = ("fp32", "bf16", "fp16")
    gpu_only_precisions = ("fp16",)

    def use_compile_cache(self, folder: str, execution: Execution) -> None:
        """torch.compile's on-disk caches (--compile default): inductor's folder (FX graph cache, compiled C++/Triton
        kernels, autotuning results; read at each use) with the FX graph and AOTAutograd caches on (their default;
        the config, since their environment variables are read when torch is imported)."""
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
        import torch._functorch.config
        import torch._inductor.config
        torch._inductor.config.fx_graph_cache = True
        torch._functorch.config.enable_autograd_cache = True

    def build(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> Any:
        from convbench_torch.model import TorchModel
        return TorchModel(model, execution, settings)

    def build_layer(self, model: ModelDef, layer: LayerSpec, execution: Execution, settings: BuildSettings) -> Any:
        from convbench_torch.layer_cell import TorchLayer
        return TorchLayer(model, layer, execution, settings)

    def discover(self) -> list[DeviceInfo]:
        from convbench_torch.device import discover
        return discover()

    def runtime_versions(self) -> dict[str, str | None]:
        import torch
        cuda = torch.cuda.is_available()
        cudnn = torch.backends.cudnn.version() if cuda else None
        nccl = ".".join(map(str, torch.cuda.nccl.version())) if cuda and hasattr(torch.cuda, "nccl") else None
        return {"cuda_runtime": torch.version.cuda, "cudnn": str(cudnn) if cudnn else None, "nccl": nccl}

    def synchronize(self, device: Device) -> None:
        import torch
        torch.cuda.synchronize(device.name)

    def device_timer(self, device: Device) -> Any:
        from convbench_torch.device import CudaEvents
        return CudaEvents() if device.is_gpu else None

    def peak_memory_mb(self, device: Device, reset: bool) -> float | None:
        import torch
        if reset:
            torch.cuda.reset_peak_memory_stats(device.name)
            return 0.0
        return torch.cuda.max_memory_allocated(device.name) / 2**20


plugin = TorchPlugin()
