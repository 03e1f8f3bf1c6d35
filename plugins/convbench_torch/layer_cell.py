"""TorchLayer: one node of a network built alone (``convbench explain``), by the network's own layer code."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from convbench_torch.device import torch_device
from convbench_torch.execution import TorchExecution
from convbench_torch.layers import Container, Net, build
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.model.shapes import model_summary
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings


class Node(nn.Module):
    """The node as the network calls it: a container with an (unused) auxiliary list, a layer with its input."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.node = module
        self.nested = isinstance(module, Container)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.node(x, []) if self.nested else self.node(x)


class Batch(NamedTuple):
    x: torch.Tensor
    grad: torch.Tensor


class TorchLayer:
    def __init__(self, model: ModelDef, layer: LayerSpec, execution: Execution, settings: BuildSettings) -> None:
        self.layer = layer
        self.device = torch_device(execution.device)
        self.execution = TorchExecution(execution)
        self.execution.apply()
        if settings.threads:
            torch.set_num_threads(settings.threads)
        torch.manual_seed(settings.seed)
        # a lone ReLU never works in place: its input is the prepared tensor every step reads (and, with input_grad,
        # a leaf of the autograd graph); inside a block the network's in-place rule applies as it is
        self.net = Node(build(layer.node, layer.path, model_summary(model), inplace=False)).to(self.device)
        self.channels_last = self.execution.channels_last
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=0.0, momentum=settings.momentum,
                                         weight_decay=settings.weight_decay) if params else None
        self.run = self.execution.wrap(self.net)
        self.grads: dict[torch.dtype, torch.Tensor] = {}
        self.input_dtype = torch.float32 if self.execution.precision == "fp32" else self._network_input_dtype(model)

    def _network_input_dtype(self, model: ModelDef) -> torch.dtype:
        """Under autocast a node's input is half precision after a convolution or matmul, float32 after the images
        or an op autocast keeps in float32: the dtype it has in the network, read from one training-mode pass of the
        whole network on two images."""
        net = Net(model, model_summary(model)).to(self.device)
        seen: list[torch.dtype] = []
        module = net.body.get_submodule(self.layer.path)
        handle = module.register_forward_pre_hook(lambda mod, args: seen.append(args[0].dtype))
        net.train()
        with torch.no_grad(), self.execution.autocast(self.device.type):
            net(torch.rand(2, *model.input_shape, device=self.device))
        handle.remove()
        return seen[0] if seen else torch.float32

    def _keys(self) -> dict[str, str]:
        """Portable key -> this module's state key."""
        prefix = "node."
        return {f"{self.layer.path}.{k[len(prefix):]}": k for k in self.net.state_dict()
                if not k.endswith("num_batches_tracked")}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        keys, state = self._keys(), self.net.state_dict()
        if set(weights) != set(keys):
            raise ConvbenchError(f"{self.layer.path}: weights {sorted(weights)} do not match {sorted(keys)}")
        with torch.no_grad():
            for key, value in weights.items():
                target = state[keys[key]]
                if tuple(target.shape) != value.shape:
                    raise ConvbenchError(f"{key}: shape {value.shape}, expected {tuple(target.shape)}")
                target.copy_(torch.from_numpy(np.ascontiguousarray(value)))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(self.device)
        return t.contiguous(memory_format=torch.channels_last) if self.channels_last and t.dim() == 4 else t

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.net.eval()
        with torch.no_grad(), self.execution.autocast(self.device.type):
            out = self.run(self._tensor(x))
        return out.float().contiguous().cpu().numpy()

    def prepare(self, x: np.ndarray, grad: np.ndarray) -> Batch:
        """The input in the dtype the node reads in the network (half precision inside an autocast network)."""
        return Batch(self._tensor(x).to(self.input_dtype).requires_grad_(self.layer.input_grad), self._tensor(grad))

    def _grad(self, dtype: torch.dtype, grad: torch.Tensor) -> torch.Tensor:
        """The output's gradient in the output's dtype (bf16 under autocast), converted once."""
        if dtype == grad.dtype:
            return grad
        if dtype not in self.grads:
            self.grads[dtype] = grad.to(dtype)
        return self.grads[dtype]

    def run_phase(self, phase: str, batch: Batch, lr: float) -> Any:
        if phase == "forward":
            self.net.eval()
            with torch.no_grad(), self.execution.autocast(self.device.type):
                return self.run(batch.x)
        if phase not in ("forward_backward", "train_step"):
            raise unknown_phase(phase)
        self.net.train()
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        if batch.x.grad is not None:
            batch.x.grad = None
        with self.execution.autocast(self.device.type):
            out = self.run(batch.x)
        if out.requires_grad:
            out.backward(self._grad(out.dtype, batch.grad))
        if phase == "train_step" and self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
        return None
