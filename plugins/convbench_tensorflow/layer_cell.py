"""TFLayer: one node of a network built alone (``convbench explain``), by the network's own layer code.

The node is ``layers.Net`` built from the node instead of the body, so its layers, variables, NHWC layout, compute
dtype and fused-flatten weight order are the network's; its steps are wrapped by the network's ``TFExecution``
(eager, tf.function or XLA) and updated by the network's ``optim.SGD``. What crosses the cell's boundary is in the
network's own layout: NHWC, and a flat activation between a spatial Flatten and the Linear reading it in NHWC order
(``layers.flat_order``), the numpy side converted from and to the portable NCHW order outside any step.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from convbench_tensorflow.device import configure, tf_device
from convbench_tensorflow.execution import TFExecution
from convbench_tensorflow.layers import ChannelsHW, Context, Net
from convbench_tensorflow.optim import SGD
from convbench_tensorflow.steps import LearningRate, to_nhwc
from harness.model.graph import ModelDef
from harness.model.layers import LayerSpec
from harness.model.shapes import model_summary
from harness.model.weights import check_fit
from harness.plugin_base import Execution, unknown_phase
from harness.settings import BuildSettings


class Batch(NamedTuple):
    x: tf.Tensor
    grad: tf.Tensor


def hwc_order(array: np.ndarray, chw: ChannelsHW) -> np.ndarray:
    """(N, c*h*w) in portable (c, h, w) order -> the network's (h, w, c) order."""
    c, h, w = chw
    return array.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(len(array), -1)


def chw_order(array: np.ndarray, chw: ChannelsHW) -> np.ndarray:
    """The inverse of ``hwc_order``."""
    c, h, w = chw
    return array.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(len(array), -1)


class TFLayer:
    def __init__(self, model: ModelDef, layer: LayerSpec, execution: Execution, settings: BuildSettings) -> None:
        self.model, self.layer = model, layer
        self.device = tf_device(execution.device)
        self.execution = TFExecution(execution)
        configure(settings.threads, settings.seed)   # before the first op, as the network's
        self.execution.apply()
        summary = model_summary(model)
        with tf.device(self.device):
            self.net = Net(model, summary, self.execution.dtype, settings.seed, layer.node, layer.path)
            self.optimizer = SGD(self.net.trainable, settings.momentum, settings.weight_decay)
        self.shapes = {key: summary.param_shapes[key] for key in self.net.params}
        leaves = [x.path for x in summary.layers if layer.holds(x.path)]
        self.reads = self.net.order.reads.get(leaves[0])     # the input is flat in NHWC order
        self.writes = self.net.order.writes.get(leaves[-1])  # the output is
        # the image reader gets float32 images and casts them in its step, as the network's step does; every other
        # node gets its input in the compute dtype, as the previous layer hands it over
        self.in_dtype = self.execution.dtype if layer.input_grad else tf.float32
        self.eval_step = self.execution.wrap(self._forward)
        self.grads_step = self.execution.wrap(self._forward_backward)
        self.train_step = self.execution.wrap(self._train_step)
        self.lr = LearningRate(self.device)

    # -- graph bodies (traced once per input shape) --------------------------------------------------

    def _run(self, x: tf.Tensor, training: bool, update_stats: bool) -> tf.Tensor:
        return self.net.body(tf.cast(x, self.net.compute_dtype), Context(training, update_stats))

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        return self._run(x, False, False)

    def _backward(self, x: tf.Tensor, grad: tf.Tensor, update_stats: bool) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """The training-mode output and the gradients of sum(output * grad): every trainable variable's, then the
        input's where the network computes it (as the network's backward does, batch-norm statistics moved only
        by a train step). No loss scaling, whatever the precision."""
        sources: list[Any] = [*self.net.trainable, *([x] if self.layer.input_grad else [])]
        with tf.GradientTape() as tape:
            if self.layer.input_grad:
                tape.watch(x)
            out = self._run(x, True, update_stats)
        if not sources:   # nothing to differentiate: the training phases are the training-mode forward
            return out, []
        return out, tape.gradient(out, sources, output_gradients=grad)

    def _forward_backward(self, x: tf.Tensor, grad: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        return self._backward(x, grad, update_stats=False)   # returned, so no gradient is pruned away

    def _train_step(self, x: tf.Tensor, grad: tf.Tensor, lr: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        out, grads = self._backward(x, grad, update_stats=True)
        self.optimizer.apply(grads[:len(self.net.trainable)], lr)
        return out, grads[len(self.net.trainable):]   # the input's gradient returned, so it is not pruned away

    # -- LayerModel ------------------------------------------------------------------------------------

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        check_fit(self.model, self.shapes, weights, f"weights of {self.layer.path}")
        with tf.device(self.device):
            for key, p in self.net.params.items():
                p.var.assign(p.to_tf(np.asarray(weights[key], np.float32)))

    def _tensor(self, array: np.ndarray, chw: ChannelsHW | None, dtype: tf.DType) -> tf.Tensor:
        """A numpy array in portable order as the network holds it on the device: NHWC, or flat in NHWC order."""
        array = np.asarray(array, np.float32)
        with tf.device(self.device):
            if array.ndim == 4:
                t = to_nhwc(array)
            else:
                t = tf.convert_to_tensor(hwc_order(array, chw) if chw else array)
            return tf.cast(t, dtype)

    def _array(self, t: tf.Tensor) -> np.ndarray:
        out = tf.cast(t, tf.float32).numpy()
        if out.ndim == 4:
            return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
        return chw_order(out, self.writes) if self.writes else out

    def forward(self, x: np.ndarray) -> np.ndarray:
        with tf.device(self.device):
            return self._array(self.eval_step(self._tensor(x, self.reads, self.in_dtype)))

    def prepare(self, x: np.ndarray, grad: np.ndarray) -> Batch:
        return Batch(self._tensor(x, self.reads, self.in_dtype), self._tensor(grad, self.writes, self.execution.dtype))

    def run_phase(self, phase: str, batch: Batch, lr: float) -> None:
        with tf.device(self.device):
            if phase == "forward":
                self.eval_step(batch.x)
            elif phase == "forward_backward":
                self.grads_step(batch.x, batch.grad)
            elif phase == "train_step":
                self.train_step(batch.x, batch.grad, self.lr(lr))
            else:
                raise unknown_phase(phase)

    def tracing_counts(self) -> dict[str, int]:
        """How often each step function has been traced (one per distinct batch shape; 0 when eager)."""
        fns = {"forward": self.eval_step, "forward_backward": self.grads_step, "train_step": self.train_step}
        return {name: getattr(fn, "experimental_get_tracing_count", lambda: 0)() for name, fn in fns.items()}
