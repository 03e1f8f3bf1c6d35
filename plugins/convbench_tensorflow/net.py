"""Builds a callable TensorFlow network (NHWC) from the framework-neutral graph, name for name."""
from __future__ import annotations

from typing import Any

import tensorflow as tf

from convbench_tensorflow import layers as L
from convbench_tensorflow.layers import Context, Param
from harness.model import graph as g
from harness.model.shapes import ModelSummary

LEAVES: dict[type, Any] = {g.Conv: L.Conv, g.Linear: L.Linear, g.BatchNorm: L.BatchNorm, g.MaxPool: L.MaxPool,
                           g.LRN: L.LRN, g.Flatten: L.Flatten}


class Container:
    """A Seq, Concat (channel axis, last in NHWC), Residual (sum) or Aux (logits to ``ctx.aux`` in training)."""

    def __init__(self, node: g.Node, parts: list[Any]) -> None:
        self.kind = type(node).__name__
        self.parts = parts
        self.weight = node.weight if isinstance(node, g.Aux) else 0.0

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        if self.kind == "Seq":
            for part in self.parts:
                x = part(x, ctx)
            return x
        if self.kind == "Aux":
            if ctx.training:  # heads are skipped, not merely ignored, at evaluation
                ctx.aux.append((self.weight, tf.cast(self.parts[0](x, ctx), tf.float32)))
            return x
        outs = [part(x, ctx) for part in self.parts]
        return tf.concat(outs, axis=-1) if self.kind == "Concat" else outs[0] + outs[1]


class Net:
    """The whole network. ``params`` maps every portable key to its ``Param``, in definition order."""

    def __init__(self, model: g.ModelDef, summary: ModelSummary, compute_dtype: tf.DType, seed: int) -> None:
        self.compute_dtype = compute_dtype
        self.inputs = {layer.path: layer.input_shape for layer in summary.layers}
        self.params: dict[str, Param] = {}
        self.generator = tf.random.Generator.from_seed(seed)
        self._flatten: L.Flatten | None = None   # a spatial Flatten whose output no layer has mixed yet
        self.body = self._build(model.body, "")
        self.trainable = [p.var for p in self.params.values() if p.var.trainable]

    def _build(self, node: g.Node, path: str) -> Any:
        if isinstance(node, (g.Seq, g.Concat, g.Residual, g.Aux)):
            if not isinstance(node, g.Seq):
                self._flatten = None   # branches: the next layer built is not the next one run
            built = Container(node, [self._build(c, f"{path}.{c.name}" if path else c.name) for c in g.children(node)])
            if not isinstance(node, g.Seq):
                self._flatten = None
            return built
        if isinstance(node, g.Dropout):
            return L.Dropout(node, self.generator)
        if isinstance(node, g.ReLU):
            return L.Stateless(node)   # element-wise: a pending flatten's order passes through
        if type(node) not in LEAVES:
            self._flatten = None
            return L.Stateless(node)
        layer = LEAVES[type(node)](node, self.inputs[path])
        if isinstance(layer, L.Linear) and self._flatten is not None:
            layer.read_nhwc(self._flatten.chw)   # fc weights in NHWC column order: the flatten needs no transpose
            self._flatten.transpose = False
        self._flatten = layer if isinstance(layer, L.Flatten) and layer.spatial else None
        for key, param in getattr(layer, "params", dict)().items():
            self.params[f"{path}.{key}"] = param
        return layer

    def __call__(self, x: tf.Tensor, training: bool, update_stats: bool = False
                 ) -> tuple[tf.Tensor, list[tuple[float, tf.Tensor]]]:
        """(main logits as float32, [(weight, aux logits)]) for an NHWC float32 batch."""
        ctx = Context(training, update_stats)
        logits = self.body(tf.cast(x, self.compute_dtype), ctx)
        return tf.cast(logits, tf.float32), ctx.aux


def loss_fn(logits: tf.Tensor, aux: list[tuple[float, tf.Tensor]], labels: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy of the main head plus each aux head's mean cross-entropy times its weight."""
    def ce(z: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=z))
    loss = ce(logits)
    for weight, aux_logits in aux:
        loss = loss + weight * ce(aux_logits)
    return loss
