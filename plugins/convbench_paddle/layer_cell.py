"""PaddleLayer: one node of a network built alone (``convbench explain``), by the network's own layer code and
with its steps' own setup, AMP, to_static and SGD (execution.py, sgd.py)."""
from __future__ import annotations

import types
from typing import Any, NamedTuple

import numpy as np
import paddle
from paddle import nn

from convbench_paddle.execution import PaddleExecution, start
from convbench_paddle.layers import Container, Net, PortableState, build
from convbench_paddle.sgd import Sgd
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.model.shapes import model_summary
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings

PREFIX = "node."


class Node(nn.Layer):
    """The node as the network calls it: a container with an (unused) auxiliary list, a layer with its input.

    Each node's ``forward`` has a code object of its own (named after its path). to_static's SOT keeps what it
    learnt per code object: sharing one, the cells a process builds one after another (a convolution on 3 channels,
    then one on 64) would make it trace every later cell with symbolic dimensions (some layers, paddle's
    LocalResponseNorm among them, then fail to trace at all), where the network's single trace sees static ones."""

    def __init__(self, layer: nn.Layer, path: str) -> None:
        super().__init__()
        self.node = layer
        self.nested = isinstance(layer, Container)
        forward = type(self).forward
        code = forward.__code__.replace(co_name=f"forward_{path}")   # code objects compare (and hash) by name too
        self.forward = types.MethodType(types.FunctionType(code, forward.__globals__, code.co_name), self)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.node(x, []) if self.nested else self.node(x)


class Batch(NamedTuple):
    x: paddle.Tensor
    grad: paddle.Tensor


def input_dtype(model: ModelDef, path: str, execution: PaddleExecution) -> str:
    """The dtype the node at ``path`` reads inside the network. float32 without AMP; under AMP O1 it is whatever
    the ops before the node leave: bf16/fp16 after a white-list op (convolution, matmul), float32 after a black-list
    one (the mean of GlobalAvgPool, the pow of LRN) and the images, the input's dtype after the rest. Read from one
    training-mode pass of the network on two images, without gradients, by a hook on the node."""
    if execution.amp_dtype is None:
        return "float32"
    net = Net(model, model_summary(model))
    seen: list[str] = []
    node = net.body
    for name in path.split("."):
        node = node._sub_layers[name]
    node.register_forward_pre_hook(lambda _, inputs: seen.append(str(inputs[0].dtype).removeprefix("paddle.")))
    net.train()
    with paddle.no_grad(), execution.autocast():
        net(paddle.rand([2, *model.input_shape]))
    if not seen:
        raise ConvbenchError(f"{model.name}: the network never called its node {path!r}")
    return seen[0]


class PaddleLayer:
    def __init__(self, model: ModelDef, layer: LayerSpec, execution: Execution, settings: BuildSettings) -> None:
        self.layer = layer
        self.place, self.execution = start(execution, settings)
        self.dtype = input_dtype(model, layer.path, self.execution)
        shapes = {x.path: x.input_shape for x in model_summary(model).layers}
        self.net = Node(build(layer.node, layer.path, shapes), layer.path)
        self.run = self.execution.wrap(self.net)
        params = [p for p in self.net.parameters() if not p.stop_gradient]
        self.sgd = Sgd(params, settings) if params else None   # no loss scaling in a cell: no GradScaler for fp16
        self.weights = PortableState(self.net, PREFIX, layer.path + ".")
        self.grads: dict[Any, paddle.Tensor] = {}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        try:
            self.weights.load(weights)
        except ConvbenchError as exc:
            raise ConvbenchError(f"{self.layer.path}: {exc}") from None

    def _tensor(self, array: np.ndarray, dtype: str = "float32") -> paddle.Tensor:
        t = paddle.to_tensor(np.ascontiguousarray(array, np.float32))   # on the current device (set by start)
        return t if dtype == "float32" else t.astype(dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.net.eval()
        with paddle.no_grad(), self.execution.autocast():
            out = self.run(self._tensor(x, self.dtype))
        return out.astype("float32").numpy()

    def prepare(self, x: np.ndarray, grad: np.ndarray) -> Batch:
        """The input in the dtype the node reads in the network (a leaf that keeps its gradient where
        ``input_grad``), the output's gradient in float32 (cast once to the output's dtype at the first step)."""
        t = self._tensor(x, self.dtype)
        t.stop_gradient = not self.layer.input_grad
        return Batch(t, self._tensor(grad))

    def _grad(self, dtype: Any, grad: paddle.Tensor) -> paddle.Tensor:
        """The output's gradient in the output's dtype (bf16/fp16 under AMP), converted once."""
        if dtype == grad.dtype:
            return grad
        if dtype not in self.grads:
            self.grads[dtype] = grad.astype(dtype)
        return self.grads[dtype]

    def run_phase(self, phase: str, batch: Batch, lr: float) -> None:
        if phase == "forward":
            self.net.eval()
            with paddle.no_grad(), self.execution.autocast():
                self.run(batch.x)
            return
        if phase not in ("forward_backward", "train_step"):
            raise unknown_phase(phase)
        self.net.train()
        if self.sgd is not None:
            self.sgd.clear()
        if not batch.x.stop_gradient:
            batch.x.clear_gradient(False)
        with self.execution.autocast():
            out = self.run(batch.x)
        if not out.stop_gradient:
            out.backward(self._grad(out.dtype, batch.grad))
        if phase == "train_step" and self.sgd is not None:
            self.sgd.step(lr)
