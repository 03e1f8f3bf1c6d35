"""Execution settings of a paddle cell (precision, compile, layout): validation and the recorded values."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import paddle

from harness.errors import ConvbenchError

AMP_DTYPES = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}
COMPILE = {"auto": "dygraph", "none": "dygraph", "default": "to_static"}
LAYOUTS = ("native", "nchw")


@dataclass(frozen=True)
class Execution:
    precision: str
    amp_dtype: str | None  # paddle.amp dtype, None for fp32
    compile: str           # "dygraph" or "to_static"
    cuda: bool

    def info(self) -> dict[str, Any]:
        """Row values recording how the cell ran (the torch plugin's ``execution_info`` keys)."""
        return {"precision": self.precision, "compile": self.compile, "layout": "nchw",
                # paddle's CUDA build allows TF32 in cuDNN and cuBLAS unless the driver override is set
                "tf32": self.cuda and os.environ.get("NVIDIA_TF32_OVERRIDE") != "0",
                "cudnn_benchmark": _flag("FLAGS_cudnn_exhaustive_search") if self.cuda else None,
                "deterministic": bool(_flag("FLAGS_cudnn_deterministic")) if self.cuda else None}


def parse(settings: dict[str, Any], place: str) -> Execution:
    """Validates ``precision``, ``compile`` and ``layout``; ConvbenchError with one line otherwise."""
    precision = str(settings.get("precision", "fp32"))
    mode = str(settings.get("compile", "auto"))
    layout = str(settings.get("layout", "native"))
    if precision not in AMP_DTYPES:
        raise ConvbenchError(f"unknown precision {precision!r}; known: {', '.join(AMP_DTYPES)}")
    if mode == "xla":
        raise ConvbenchError("paddle has no XLA mode; use --compile none or default (paddle.jit.to_static)")
    if mode not in COMPILE:
        raise ConvbenchError(f"unknown compile mode {mode!r} for paddle; known: {', '.join(COMPILE)}")
    if layout not in LAYOUTS:
        raise ConvbenchError(f"the paddle plugin runs NCHW (paddle's native layout) only; got layout {layout!r}")
    cuda = place.startswith("gpu")
    dtype = AMP_DTYPES[precision]
    if dtype and not cuda:  # paddle.amp.auto_cast on CPU silently stays in fp32
        raise ConvbenchError(f"paddle {precision} autocast needs a CUDA device (on cpu it silently stays fp32)")
    if dtype == "bfloat16" and not paddle.amp.is_bfloat16_supported(place):
        raise ConvbenchError("paddle reports no bf16 support on this GPU; use --precision fp16 or fp32")
    return Execution(precision, dtype, COMPILE[mode], cuda)


def _flag(name: str) -> Any:
    try:
        return paddle.get_flags([name])[name]
    except (ValueError, KeyError, RuntimeError):
        return None
