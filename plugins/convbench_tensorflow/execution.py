"""Execution settings of a tensorflow cell as TensorFlow runs them: the compute dtype, how a step is
wrapped (eager, tf.function, XLA) and the values recorded in result rows. Validation is the shared base's."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import tensorflow as tf

from harness.plugin_base import Execution, tf32_overridden

DTYPES = {"fp32": tf.float32, "bf16": tf.bfloat16, "fp16": tf.float16}


@dataclass(frozen=True)
class TFExecution:
    execution: Execution

    @property
    def precision(self) -> str:
        return self.execution.precision

    @property
    def compile(self) -> str:
        """eager | tf.function | xla"""
        return self.execution.compile

    @property
    def gpu(self) -> bool:
        return self.execution.device.is_gpu

    @property
    def dtype(self) -> tf.DType:
        """The compute dtype; variables (master weights) stay float32."""
        return DTYPES[self.precision]

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A step as this cell runs it: the Python function itself (eager) or a tf.function of it."""
        if self.compile == "eager":
            return fn
        return tf.function(fn, jit_compile=self.compile == "xla")

    def apply(self) -> None:
        """TF32 is a runtime switch in TF (on by default); autotuning is set in the environment (plugin)."""
        tf.config.experimental.enable_tensor_float_32_execution(self.execution.tf32)

    def info(self) -> dict[str, Any]:
        """Row values recording how the cell ran, read back from TF: TF32 only on GPUs that have it (compute
        capability 8.0+) and where NVIDIA_TF32_OVERRIDE=0 does not forbid it in cuBLAS and cuDNN; TF autotunes
        cuDNN algorithms unless TF_CUDNN_USE_AUTOTUNE=0."""
        return {"precision": self.precision, "compile": self.compile, "layout": "nhwc",
                "tf32": bool(self.gpu and tf.config.experimental.tensor_float_32_execution_enabled() and not tf32_overridden()
                             and compute_capability(self.execution.device.index or 0) >= 8),
                "autotune": os.environ.get("TF_CUDNN_USE_AUTOTUNE", "1") != "0" if self.gpu else None,
                "deterministic": os.environ.get("TF_DETERMINISTIC_OPS", "0").lower() in ("1", "true")}


def compute_capability(index: int) -> int:
    """The major compute capability of GPU ``index`` as TF reports it (0 when unknown)."""
    gpus = tf.config.list_physical_devices("GPU")
    if index >= len(gpus):
        return 0
    return int((tf.config.experimental.get_device_details(gpus[index]).get("compute_capability") or (0, 0))[0])
