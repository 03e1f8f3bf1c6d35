"""Execution settings of a paddle cell as paddle runs them (AMP dtype, dygraph or to_static) and the recorded values.
A whole network (model.py) and one of its layers alone (layer_cell.py) go through the same ``start``, ``autocast``
and ``wrap``."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import paddle

from convbench_paddle.device import paddle_place
from harness.errors import ConvbenchError
from harness.plugin_base import Execution, tf32_overridden
from harness.settings import BuildSettings

AMP_DTYPES = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True)
class PaddleExecution:
    precision: str
    amp_dtype: str | None  # paddle.amp dtype, None for fp32
    compile: str           # "dygraph" or "to_static"
    cuda: bool

    def apply(self, autotune: bool) -> None:
        """cuDNN autotuning: paddle's exhaustive algorithm search (GPU builds only)."""
        if self.cuda:
            paddle.set_flags({"FLAGS_cudnn_exhaustive_search": autotune})

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """AMP O1 (paddle's white-list ops in bf16/fp16) for the forward pass; nothing for fp32."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return paddle.amp.auto_cast(level="O1", dtype=self.amp_dtype)

    def fp32(self, t: paddle.Tensor) -> paddle.Tensor:
        return t if self.amp_dtype is None else t.astype("float32")

    def wrap(self, layer: paddle.nn.Layer) -> paddle.nn.Layer:
        """The layer as the steps call it: to_static in SOT mode (it falls back to dygraph where it cannot capture;
        the first call traces), or the layer itself (dygraph)."""
        return paddle.jit.to_static(layer, full_graph=False) if self.compile == "to_static" else layer

    def info(self, place: str) -> dict[str, Any]:
        """Row values recording how the cell ran (the torch plugin's ``execution_info`` keys), read back: TF32
        where the GPU has it (compute capability 8.0+) and NVIDIA_TF32_OVERRIDE does not turn it off."""
        capability = paddle.device.cuda.get_device_capability(place)[0] if self.cuda else 0
        return {"precision": self.precision, "compile": self.compile, "layout": "nchw",
                "tf32": self.cuda and not tf32_overridden() and capability >= 8,
                "autotune": bool(_flag("FLAGS_cudnn_exhaustive_search")) if self.cuda else None,
                "deterministic": bool(_flag("FLAGS_cudnn_deterministic")) if self.cuda else None}


def parse(execution: Execution, place: str) -> PaddleExecution:
    """Paddle's view of the shared base's validated settings (bf16 also needs paddle's own support check)."""
    dtype = AMP_DTYPES[execution.precision]
    if dtype == "bfloat16" and not paddle.amp.is_bfloat16_supported(place):
        raise ConvbenchError("paddle reports no bf16 support on this GPU; use --precision fp16 or fp32")
    return PaddleExecution(execution.precision, dtype, execution.compile, execution.device.is_gpu)


def start(execution: Execution, settings: BuildSettings) -> tuple[str, PaddleExecution]:
    """This worker set up as every paddle step runs: the autotuning flag, dygraph on the device, math-library
    threads (OpenMP threads come from the worker's environment) and the seed. Returns the place and paddle's view
    of the settings."""
    place = paddle_place(execution.device)   # a data-parallel rank gets its own device here
    paddle_execution = parse(execution, place)
    paddle_execution.apply(execution.autotune)
    paddle.disable_static()
    paddle.set_device(place)
    if settings.threads:
        paddle.base.core.set_num_threads(settings.threads)
    paddle.seed(settings.seed)
    return place, paddle_execution


def _flag(name: str) -> Any:
    try:
        return paddle.get_flags([name])[name]
    except (ValueError, KeyError, RuntimeError):
        return None
