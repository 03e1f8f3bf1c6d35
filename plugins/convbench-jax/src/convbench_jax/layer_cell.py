"""JaxLayer: one node of a network built alone (``convbench explain``), by the network's own layer code and steps.

The node runs through ``layers.apply_node`` (the function the network's steps run its body through) inside jitted
steps shaped as the network's (``steps.make_layer_steps``): the same execution settings, layout, compute dtype,
weight order, dropout key threading, batch-norm statistics (updated by train steps only) and SGD rule, the train
step donating the state it replaces. Its input and output gradient are converted to the layout and compute dtype
once, in ``prepare``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from convbench_jax.device import jax_device, track
from convbench_jax.execution import JaxExecution
from convbench_jax.layers import Arrays, Layout, NativeOrder, from_layout, to_layout
from convbench_jax.model import placeholders
from convbench_jax.steps import make_layer_steps
from harness.errors import ConvbenchError
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.model.shapes import model_summary
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings


class Batch(NamedTuple):
    x: jax.Array      # the node's input, in the layout and compute dtype
    grad: jax.Array   # the gradient of its output, likewise


class JaxLayer:
    def __init__(self, model: ModelDef, layer: LayerSpec, execution: Execution, settings: BuildSettings) -> None:
        self.layer = layer
        self.device = jax_device(execution.device)
        self.execution = JaxExecution(execution)
        self.execution.apply()
        self.layout = Layout(self.execution.layout)
        summary = model_summary(model)
        self.order = NativeOrder(summary, self.layout)
        self.shapes = {k: tuple(s) for k, s in summary.param_shapes.items() if layer.holds(k)}
        self.params, self.stats, self.velocity = placeholders(self.order, self.shapes, self.device)
        self.key = jax.device_put(jax.random.key(settings.seed), self.device)
        steps = make_layer_steps(layer.node, layer.path, self.layout, self.execution.dtype, settings.momentum,
                                 settings.weight_decay, layer.input_grad)
        wrap = self.execution.wrap
        self._forward, self._grads = wrap(steps.forward), wrap(steps.grads)
        self._train = wrap(steps.train, donate=(0, 1, 2))  # params, stats, velocity, as the network's train step
        self._last: Any = None  # the latest step's outputs, kept so nothing looks dead
        self._stream = f"layer {layer.path}"   # this cell's steps, apart from the network's and other cells'

    def _put(self, arrays: dict[str, np.ndarray]) -> Arrays:
        return {k: jax.device_put(np.ascontiguousarray(v, np.float32), self.device) for k, v in arrays.items()}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        if set(weights) != set(self.shapes):
            raise ConvbenchError(f"{self.layer.path}: weights {sorted(weights)} do not match {sorted(self.shapes)}")
        for key, value in weights.items():
            if tuple(np.shape(value)) != self.shapes[key]:
                raise ConvbenchError(f"{key}: shape {tuple(np.shape(value))}, expected {self.shapes[key]}")
        native = {k: self.order.native(k, np.asarray(v, np.float32)) for k, v in weights.items()}
        self.params = self._put({k: native[k] for k in self.params})
        self.stats = self._put({k: native[k] for k in self.stats})

    def _native(self, array: np.ndarray) -> jax.Array:
        x = jax.device_put(np.ascontiguousarray(array, np.float32), self.device)
        return to_layout(x, self.layout, self.execution.dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = self._forward(self.params, self.stats, self._native(x))
        return np.asarray(from_layout(out, self.layout), np.float32)

    def prepare(self, x: np.ndarray, grad: np.ndarray) -> Batch:
        return Batch(self._native(x), self._native(grad))

    def run_phase(self, phase: str, batch: Batch, lr: float) -> None:
        if phase == "forward":
            self._last = self._forward(self.params, self.stats, batch.x)
        elif phase == "forward_backward":  # the gradients are outputs of the jitted function, so XLA computes them
            out, grads, gx, _, self.key = self._grads(self.params, self.stats, self.key, batch.x, batch.grad)
            self._last = (out, grads, gx)
        elif phase == "train_step":
            out = self._train(self.params, self.stats, self.velocity, self.key, batch.x, batch.grad, np.float32(lr))
            self.params, self.stats, self.velocity, self.key = out[:4]
            self._last = out[4:]
        else:
            raise unknown_phase(phase)
        # training steps chain the key (and parameters); forwards are independent (in order on a GPU)
        track(jax.tree.leaves(self._last)[0], f"{self._stream} {phase}",
              ordered=phase != "forward" or self.device.platform != "cpu")
