"""Execution settings of a torch cell as torch runs them: the TF32 and cuDNN switches, autocast for bf16/fp16,
channels-last, torch.compile, and the values recorded in result rows. Validation is the shared base's."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch

from harness.plugin_base import Execution, tf32_overridden

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_tf32(on: bool) -> None:
    """TF32 for fp32 matmuls and cuDNN convolutions (and RNNs) alike: torch's defaults differ (convs on, matmuls off).

    torch >= 2.9 keeps two sets of switches: the per-op ``fp32_precision`` and the legacy ``allow_tf32`` flags
    (with ``float32_matmul_precision``), and reading a legacy one raises when the two sets disagree ("a mix of the
    legacy and new APIs"). torch.compile still reads the legacy ones (torch/_inductor/kernel/conv.py reads
    ``cudnn.allow_tf32``, _inductor/select_algorithm.py ``get_float32_matmul_precision()``). So both are set, the
    legacy setters first (in torch 2.13 they also write the per-op values, leaving cuDNN's as "none"), then every
    per-op one: afterwards each switch, old or new, reads the same answer and none raises."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        mode = "tf32" if on else "ieee"
        for switch in (torch.backends.cuda.matmul, torch.backends.cudnn.conv, torch.backends.cudnn.rnn):
            switch.fp32_precision = mode


def tf32_allowed() -> bool:
    """Whether fp32 matmuls and convolutions may use TF32 (the per-op switches where torch has them)."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        return torch.backends.cuda.matmul.fp32_precision == "tf32" and torch.backends.cudnn.conv.fp32_precision == "tf32"
    return bool(torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32)


@dataclass(frozen=True)
class TorchExecution:
    """The shared base's validated settings as torch runs them."""
    execution: Execution

    @property
    def precision(self) -> str:
        return self.execution.precision

    @property
    def compiled(self) -> bool:
        return self.execution.compile == "torch.compile"

    @property
    def channels_last(self) -> bool:
        return self.execution.layout == "nhwc"

    def apply(self) -> None:
        """The process-wide switches: TF32, and cuDNN autotuning (``cudnn.benchmark``)."""
        set_tf32(self.execution.tf32)
        torch.backends.cudnn.benchmark = self.execution.autotune

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module as the steps call it: torch.compile of it, or the module itself (eager)."""
        return torch.compile(module) if self.compiled else module

    def autocast(self, device_type: str) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=DTYPES[self.precision])

    def info(self, device: torch.device) -> dict[str, Any]:
        """What ran, read back from torch: TF32 only where the GPU has it (compute capability 8.0+), both
        convolutions and matmuls may use it and NVIDIA_TF32_OVERRIDE=0 does not forbid it in cuBLAS and cuDNN;
        autotuning is cudnn.benchmark (GPUs only)."""
        cuda = device.type == "cuda"
        return {"precision": self.precision,
                "compile": "torch.compile" if self.compiled else "eager",
                "layout": "nhwc" if self.channels_last else "nchw",
                "tf32": bool(cuda and tf32_allowed() and not tf32_overridden()
                             and torch.cuda.get_device_capability(device)[0] >= 8),
                "autotune": bool(torch.backends.cudnn.benchmark) if cuda else None,
                "deterministic": torch.are_deterministic_algorithms_enabled()}
