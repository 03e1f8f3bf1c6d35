"""Execution settings of a jax cell (precision, compile, layout): validation, step wrapping and the
values recorded in result rows (the keys of the torch plugin's ``execution_info``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from harness.errors import ConvbenchError

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}
# auto/default/xla all mean jax.jit (jit *is* XLA compilation); none runs op by op, no jit at all.
COMPILE = {"auto": "jax.jit", "default": "jax.jit", "xla": "jax.jit", "none": "eager"}
# native = NHWC: XLA's CPU convolutions are NHWC (Eigen) and on GPU XLA picks cuDNN's layout itself.
LAYOUTS = {"native": "nhwc", "nhwc": "nhwc", "nchw": "nchw"}


@dataclass(frozen=True)
class Execution:
    precision: str
    compile: str   # jax.jit | eager
    layout: str    # nhwc | nchw
    gpu: bool

    @classmethod
    def from_settings(cls, settings: dict[str, Any], gpu: bool) -> "Execution":
        """Validates ``precision``, ``compile`` and ``layout``; a one-line ConvbenchError otherwise."""
        precision = settings.get("precision") or "fp32"
        compile_mode = settings.get("compile") or "auto"
        layout = settings.get("layout") or "native"
        if precision not in DTYPES:
            raise ConvbenchError(f"jax: unsupported precision {precision!r}; use one of {', '.join(DTYPES)}")
        if precision == "fp16" and not gpu:
            raise ConvbenchError("jax fp16 (with loss scaling) needs a GPU; use --precision bf16 on cpu")
        if compile_mode not in COMPILE:
            raise ConvbenchError(f"jax: unsupported compile mode {compile_mode!r}; use one of {', '.join(COMPILE)}")
        if layout not in LAYOUTS:
            raise ConvbenchError(f"jax: unsupported layout {layout!r}; use one of {', '.join(LAYOUTS)}")
        return cls(precision, COMPILE[compile_mode], LAYOUTS[layout], gpu)

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
