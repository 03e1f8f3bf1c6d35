"""Execution settings of a paddle cell as paddle runs them (AMP dtype, dygraph or to_static) and the recorded values."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import paddle

from harness.errors import ConvbenchError
from harness.plugin_base import Execution, tf32_overridden

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


def _flag(name: str) -> Any:
    try:
        return paddle.get_flags([name])[name]
    except (ValueError, KeyError, RuntimeError):
        return None
