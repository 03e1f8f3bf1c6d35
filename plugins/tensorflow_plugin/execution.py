"""Execution settings of a tensorflow cell (precision, compile, layout): validation, step wrapping and
the values recorded in result rows (the keys of the torch plugin's ``execution_info``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import tensorflow as tf

from harness.errors import ConvbenchError

DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}
# --compile: auto/default = TF's usual graph mode (tf.function); xla = tf.function(jit_compile=True);
# none = eager everywhere (as the CLI defines it for every framework)
COMPILE = {"auto": "tf.function", "default": "tf.function", "xla": "xla", "none": "eager"}
LAYOUTS = ("native", "nhwc")  # TF's CPU convolutions are NHWC only, so the plugin runs NHWC everywhere


@dataclass(frozen=True)
class Execution:
    precision: str
    compile: str  # eager | tf.function | xla
    gpu: bool

    @classmethod
    def from_settings(cls, settings: dict[str, Any], gpu: bool) -> "Execution":
        """Validates ``precision``, ``compile`` and ``layout``; a one-line ConvbenchError otherwise."""
        precision = settings.get("precision") or "fp32"
        compile_mode = settings.get("compile") or "auto"
        layout = settings.get("layout") or "native"
        if precision not in DTYPES:
            raise ConvbenchError(f"tensorflow: unsupported precision {precision!r}; use one of {', '.join(DTYPES)}")
        if compile_mode not in COMPILE:
            raise ConvbenchError(f"tensorflow: unsupported compile mode {compile_mode!r}; use one of "
                                 f"{', '.join(COMPILE)}")
        if layout not in LAYOUTS:
            raise ConvbenchError(f"the tensorflow plugin runs NHWC (TF's native layout) only; got layout {layout!r}")
        return cls(precision, COMPILE[compile_mode], gpu)

    @property
    def dtype(self) -> tf.DType:
        """The compute dtype; variables (master weights) stay float32."""
        return DTYPES[self.precision]

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A step as this cell runs it: the Python function itself (eager) or a tf.function of it."""
        if self.compile == "eager":
            return fn
        return tf.function(fn, jit_compile=self.compile == "xla")

    def info(self) -> dict[str, Any]:
        """Row values recording how the cell ran."""
        return {"precision": self.precision, "compile": self.compile, "layout": "nhwc",
                "tf32": bool(self.gpu and tf.config.experimental.tensor_float_32_execution_enabled()),
                # TF autotunes cuDNN algorithms unless TF_CUDNN_USE_AUTOTUNE=0
                "cudnn_benchmark": os.environ.get("TF_CUDNN_USE_AUTOTUNE", "1") != "0" if self.gpu else None,
                "deterministic": os.environ.get("TF_DETERMINISTIC_OPS", "0").lower() in ("1", "true")}
