"""Execution settings of a jax cell as JAX runs them: compute dtype, step wrapping (jax.jit or eager) and
the values recorded in result rows. Validation is the shared base's (harness.plugin_base)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from harness.plugin_base import Execution, tf32_overridden

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

    def apply(self) -> None:
        """TF32 for fp32 dots and convolutions: XLA's default matmul precision (its DEFAULT already uses TF32 on
        Ampere and newer GPUs; FLOAT32 keeps them exact). Set before any step is traced."""
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if self.execution.tf32 else "float32")

    def info(self, device: Any) -> dict[str, Any]:
        """Row values recording how the cell ran, read back from JAX: TF32 only on GPUs that have it (compute
        capability 8.0+) and where NVIDIA_TF32_OVERRIDE=0 does not forbid it in cuBLAS and cuDNN; XLA autotunes
        cuDNN algorithms unless --xla_gpu_autotune_level=0."""
        flags = os.environ.get("XLA_FLAGS", "")
        matmul = str(jax.config.jax_default_matmul_precision or "default").lower()
        capability = float(getattr(device, "compute_capability", 0) or 0) if self.gpu else 0.0
        return {"precision": self.precision, "compile": self.compile, "layout": self.layout,
                "tf32": self.gpu and matmul not in ("float32", "highest") and not tf32_overridden() and capability >= 8,
                "autotune": "--xla_gpu_autotune_level=0" not in flags.split() if self.gpu else None,
                "deterministic": "--xla_gpu_deterministic_ops=true" in flags}
