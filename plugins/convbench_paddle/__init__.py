"""PaddlePaddle plugin. Paddle is imported only by the methods that run inside a paddle worker:
importing it here would load it into the orchestrator (and it sets OMP_NUM_THREADS=1 when unset)."""
from __future__ import annotations

import os
from typing import Any

from harness.devices import Device
from harness.frameworks import DeviceInfo, FrameworkSpec
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.plugin_base import CUDNN_WORKSPACE_MB, Execution, FrameworkPlugin
from harness.settings import BuildSettings


class PaddlePlugin(FrameworkPlugin):
    # paddle.DataParallel, one worker per device (gloo on CPU); cuDNN's workspace limit in MB (Paddle's default 512)
    spec = FrameworkSpec("paddle", "paddle", ("paddlepaddle", "paddlepaddle-gpu"), ("cpu", "cuda"),
                         data_parallel="processes", env={"FLAGS_conv_workspace_size_limit": str(CUDNN_WORKSPACE_MB)})
    compile_modes = {"auto": "dygraph", "none": "dygraph", "default": "to_static"}
    layouts = {"native": "nchw", "nchw": "nchw"}  # paddle's native layout
    precisions = ("fp32", "bf16", "fp16")
    gpu_only_precisions = ("bf16", "fp16")  # paddle.amp.auto_cast on CPU silently stays in fp32

    def environment(self, execution: Execution) -> dict[str, str | None]:
        """Paddle has no TF32 switch of its own: cuBLAS and cuDNN honour NVIDIA_TF32_OVERRIDE=0 (read when they
        load), which turns TF32 off; without it they use TF32 on GPUs that have it. --tf32 off sets it; --tf32 on
        leaves the environment as it is (a user's own NVIDIA_TF32_OVERRIDE=0 already made ``execution.tf32`` off)."""
        return {"NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE") if execution.tf32 else "0"}

    def build(self, model: ModelDef, execution: Execution, settings: BuildSettings) -> Any:
        from convbench_paddle.model import PaddleModel
        return PaddleModel(model, execution, settings)

    def build_layer(self, model: ModelDef, layer: LayerSpec, execution: Execution, settings: BuildSettings) -> Any:
        from convbench_paddle.layer_cell import PaddleLayer
        return PaddleLayer(model, layer, execution, settings)

    def discover(self) -> list[DeviceInfo]:
        from convbench_paddle.device import discover
        return discover()

    def runtime_versions(self) -> dict[str, str | None]:
        import paddle

        def version(fn: Any) -> str | None:
            value = fn()
            return None if value in (False, "False", 0, "0", None) else str(value)
        return {"cuda_runtime": version(paddle.version.cuda), "cudnn": version(paddle.version.cudnn),
                "nccl": version(paddle.version.nccl)}

    def synchronize(self, device: Device) -> None:
        # paddle.device.synchronize() raises on CPU builds: the built-in cpu plugin answers for "cpu"
        import paddle

        from convbench_paddle.device import paddle_place
        paddle.device.synchronize(paddle_place(device))

    def peak_memory_mb(self, device: Device, reset: bool) -> float | None:
        import paddle

        from convbench_paddle.device import paddle_place
        place = paddle_place(device)
        if reset:
            paddle.device.cuda.reset_max_memory_allocated(place)
            return 0.0
        return paddle.device.cuda.max_memory_allocated(place) / 2**20


plugin = PaddlePlugin()
