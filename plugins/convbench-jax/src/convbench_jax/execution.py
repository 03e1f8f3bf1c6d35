"""Execution settings of a jax cell as JAX runs them: compute dtype, step wrapping (jax.jit or eager) and
the values recorded in result rows. Validation is the shared base's (harness.plugin_base)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from harness.plugin_base import Execution

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}


@dataclass(frozen=True)
class JaxExecution:
    """The shared base's validated settings as JAX runs them."""
    execution: Execution

    @property
    def precision(self) -> str:
        return self.execution.precision

    @property
    def compile(self) -> str:
        """jax.jit | eager"""
        return self.execution.compile

    @property
    def layout(self) -> str:
        """nhwc | nchw"""
        return self.execution.layout

    @property
    def gpu(self) -> bool:
        return self.execution.device.is_gpu

    @property
    def dtype(self) -> Any:
        """The compute dtype; parameters (master weights), batch-norm statistics and the loss stay float32."""
        return DTYPES[self.precision]

    def wrap(self, fn: Callable[..., Any], donate: tuple[int, ...] = ()) -> Callable[..., Any]:
        """A step as this cell runs it: jitted (donating the state it replaces), or the plain function."""
        return fn if self.compile == "eager" else jax.jit(fn, donate_argnums=donate)

    def info(self) -> dict[str, Any]:
        """Row values recording how the cell ran."""
        flags = os.environ.get("XLA_FLAGS", "")
        matmul = str(jax.config.jax_default_matmul_precision or "default").lower()
        return {"precision": self.precision, "compile": self.compile, "layout": self.layout,
                # XLA's DEFAULT precision lets fp32 convolutions and dots use TF32 on Ampere and later GPUs
                "tf32": self.gpu and self.precision == "fp32" and matmul not in ("float32", "highest"),
                # XLA autotunes cuDNN algorithms unless --xla_gpu_autotune_level=0
                "cudnn_benchmark": "--xla_gpu_autotune_level=0" not in flags if self.gpu else None,
                "deterministic": "--xla_gpu_deterministic_ops=true" in flags}
