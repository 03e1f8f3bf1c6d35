"""The framework-neutral graph as a callable TensorFlow network (NHWC), name for name: leaf layers as TensorFlow ops
with fp32 variables in TF's layouts, the containers, the whole ``Net`` and its loss.

Each parametric layer reports its variables as ``Param`` records keyed by portable name, with the
layout conversion to and from ``harness.model.weights`` (conv kernels HWIO <-> OIHW; the rest as they are).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from harness.model import graph as g
from harness.model.shapes import ModelSummary, pool_output_size


@dataclass
class Context:
    """What one call of the network needs besides the input: mode flags and the aux-logit sink."""
    training: bool
    update_stats: bool
    aux: list[tuple[float, tf.Tensor]] = field(default_factory=list)


@dataclass
class Param:
    """A variable and its layout conversion: ``to_tf(portable)`` and ``to_portable(native)``."""
    var: tf.Variable
    to_tf: Callable[[np.ndarray], np.ndarray] = lambda a: a
    to_portable: Callable[[np.ndarray], np.ndarray] = lambda a: a


def _zeros(shape: tuple[int, ...], trainable: bool = True, value: float = 0.0,
           aggregation: tf.VariableAggregation = tf.VariableAggregation.NONE) -> tf.Variable:
    return tf.Variable(tf.fill(shape, value), trainable=trainable, dtype=tf.float32, aggregation=aggregation)


def same_is_symmetric(size: int, kernel: int, stride: int, pad: int) -> bool:
    """True when TF's "SAME" places exactly ``pad`` zeros before and after along an axis of ``size``
    (SAME pads max((ceil(size / stride) - 1) * stride + kernel - size, 0) in all, the odd one after)."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total == 2 * pad and (size + 2 * pad - kernel) // stride + 1 == -(-size // stride)


class Conv:
    """A convolution with torch's symmetric zero padding, computed the way TF's kernels are fast: "SAME"
    where SAME pads exactly that (every stride-1 3x3/5x5 conv of these nets), otherwise ``tf.pad`` + "VALID";
    never an explicit padding list in ``tf.nn.conv2d``, which gives the same numbers with a much slower backward
    pass on the CPU (docs/performance.md)."""

    def __init__(self, node: g.Conv, in_shape: tuple[int, ...]) -> None:
        k, pad = node.kernel, node.padding
        self.kernel = _zeros((k, k, in_shape[0], node.out_channels))  # HWIO
        self.bias = _zeros((node.out_channels,)) if node.bias else None
        self.stride = node.stride
        if not pad:
            self.padding, self.pads = "VALID", None
        elif all(same_is_symmetric(s, k, node.stride, pad) for s in in_shape[1:]):
            self.padding, self.pads = "SAME", None
        else:
            self.padding, self.pads = "VALID", [[0, 0], [pad, pad], [pad, pad], [0, 0]]

    def params(self) -> dict[str, Param]:
        out = {"weight": Param(self.kernel, lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))}
        if self.bias is not None:
            out["bias"] = Param(self.bias)
        return out

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        if self.pads is not None:
            x = tf.pad(x, self.pads)
        y = tf.nn.conv2d(x, tf.cast(self.kernel, x.dtype), self.stride, self.padding)
        return y if self.bias is None else tf.nn.bias_add(y, tf.cast(self.bias, x.dtype))


class Linear:
    """Keeps the portable (out, in) layout and multiplies by its transpose. After an NHWC flatten
    (``read_nhwc``), the columns are kept in (H, W, C) order instead of the portable (C, H, W): the same
    numbers as transposing the activations to NCHW before flattening, without the transpose and its
    gradient in every step; get/set_weights convert."""

    def __init__(self, node: g.Linear, in_shape: tuple[int, ...]) -> None:
        self.weight = _zeros((node.out_features, in_shape[0]))
        self.bias = _zeros((node.out_features,)) if node.bias else None
        self.chw: tuple[int, int, int] | None = None

    def read_nhwc(self, chw: tuple[int, int, int]) -> None:
        self.chw = chw

    def params(self) -> dict[str, Param]:
        if self.chw is None:
            out = {"weight": Param(self.weight)}
        else:
            c, h, w = self.chw
            out = {"weight": Param(self.weight,
                                   lambda a: a.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(a.shape[0], -1),
                                   lambda a: a.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(a.shape[0], -1))}
        if self.bias is not None:
            out["bias"] = Param(self.bias)
        return out

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        y = tf.matmul(x, tf.cast(self.weight, x.dtype), transpose_b=True)
        return y if self.bias is None else tf.nn.bias_add(y, tf.cast(self.bias, x.dtype))


class BatchNorm:
    """Fused batch norm over the last axis of a 2-D or 4-D (NHWC) input, with torch's statistics:
    normalise with the biased batch variance, and move running_var towards the unbiased one (the
    fused op's training-mode variance output is Bessel-corrected), at torch's momentum.

    Under MirroredStrategy (data parallel) each replica normalises with its own slice's statistics, and
    the running statistics (aggregation MEAN) get the mean of the replicas' updates, on every copy."""

    def __init__(self, node: g.BatchNorm, in_shape: tuple[int, ...]) -> None:
        c = in_shape[0]
        self.gamma, self.beta = _zeros((c,), value=1.0), _zeros((c,))
        mean = tf.VariableAggregation.MEAN  # no effect outside a tf.distribute strategy
        self.mean, self.var = _zeros((c,), False, aggregation=mean), _zeros((c,), False, 1.0, aggregation=mean)
        self.eps, self.momentum = node.eps, node.momentum

    def params(self) -> dict[str, Param]:
        return {"weight": Param(self.gamma), "bias": Param(self.beta),
                "running_mean": Param(self.mean), "running_var": Param(self.var)}

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        flat = x.shape.rank == 2
        x4 = x[:, None, None, :] if flat else x
        if ctx.training:
            empty = tf.zeros([0], tf.float32)
            y, mean, var = tf.raw_ops.FusedBatchNormV3(
                x=x4, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
                epsilon=self.eps, is_training=True, data_format="NHWC")[:3]
            if ctx.update_stats:
                m = self.momentum
                self.mean.assign(self.mean * (1.0 - m) + tf.stop_gradient(mean) * m)
                self.var.assign(self.var * (1.0 - m) + tf.stop_gradient(var) * m)
        else:
            y = tf.raw_ops.FusedBatchNormV3(
                x=x4, scale=self.gamma, offset=self.beta, mean=self.mean, variance=self.var,
                epsilon=self.eps, is_training=False, data_format="NHWC")[0]
        return y[:, 0, 0, :] if flat else y


class MaxPool:
    """Max pooling with torch's padding and ceil mode: the windows are placed exactly where torch
    places them, using VALID or SAME when one of those does, else an explicit -inf pad + VALID
    (XLA has no explicit-padding pooling)."""

    def __init__(self, node: g.MaxPool, in_shape: tuple[int, ...]) -> None:
        self.kernel, self.stride = node.kernel, node.stride
        self.pads = [self._pads(s, node) for s in in_shape[1:]]
        if all(p == (0, 0) for p in self.pads):
            self.mode = "VALID"
        elif all(self._same_matches(s, node) for s in in_shape[1:]):
            self.mode = "SAME"
        else:
            self.mode = "PAD"

    @staticmethod
    def _pads(size: int, node: g.MaxPool) -> tuple[int, int]:
        out = pool_output_size(size, node.kernel, node.stride, node.padding, node.ceil_mode)
        after = max((out - 1) * node.stride + node.kernel - size - node.padding, 0)
        return node.padding, after

    @staticmethod
    def _same_matches(size: int, node: g.MaxPool) -> bool:
        out = pool_output_size(size, node.kernel, node.stride, node.padding, node.ceil_mode)
        same_out = math.ceil(size / node.stride)
        before = max((same_out - 1) * node.stride + node.kernel - size, 0) // 2
        return same_out == out and before == node.padding

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        if self.mode == "PAD":
            x = tf.pad(x, [[0, 0], list(self.pads[0]), list(self.pads[1]), [0, 0]], constant_values=-np.inf)
        return tf.nn.max_pool2d(x, self.kernel, self.stride, "SAME" if self.mode == "SAME" else "VALID")


class LRN:
    """torch.nn.LocalResponseNorm: x / (k + alpha/size * sum of x^2 over the size channels centred on c)^beta.

    Odd sizes map onto TF's LRN op (depth_radius = size // 2, alpha / size); even sizes (torch's
    window is then c - size//2 .. c + size//2 - 1) use a banded channel matrix.
    """

    def __init__(self, node: g.LRN, in_shape: tuple[int, ...]) -> None:
        self.node = node
        c, size = in_shape[0], node.size
        band = np.zeros((c, c), np.float32)
        for out_c in range(c):
            band[max(out_c - size // 2, 0):out_c + (size - 1) // 2 + 1, out_c] = 1.0
        self.band = band

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        n, dtype = self.node, x.dtype
        x = tf.cast(x, tf.float32)  # TF's CPU LRN kernel has no bfloat16
        if n.size % 2:
            y = tf.nn.local_response_normalization(x, n.size // 2, n.k, n.alpha / n.size, n.beta)
        else:
            sums = tf.tensordot(tf.square(x), tf.constant(self.band), axes=[[3], [0]])
            y = x * tf.pow(n.k + (n.alpha / n.size) * sums, -n.beta)
        return tf.cast(y, dtype)


class Dropout:
    """Inverted dropout from a seeded stateful generator (stateless op, so it also compiles with XLA)."""

    def __init__(self, node: g.Dropout, gen: tf.random.Generator) -> None:
        self.rate, self.gen = node.rate, gen

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        if not ctx.training or self.rate == 0:
            return x
        return tf.nn.experimental.stateless_dropout(x, self.rate, seed=self.gen.make_seeds(1)[:, 0])


class Flatten:
    """C-major (NCHW) flatten, so portable linear weights apply unchanged; no transpose when H = W = 1, nor
    when the next Linear reads NHWC order (``Net`` arranges that where nothing but element-wise layers lie
    between them: ``flat_order``)."""

    def __init__(self, node: g.Flatten, in_shape: tuple[int, ...]) -> None:
        self.size = math.prod(in_shape)
        self.spatial = len(in_shape) == 3 and in_shape[1] * in_shape[2] > 1
        self.chw = in_shape
        self.transpose = self.spatial

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        if self.transpose:
            x = tf.transpose(x, [0, 3, 1, 2])
        return tf.reshape(x, [-1, self.size])


class Stateless:
    """ReLU, AvgPool and GlobalAvgPool: a function of the input alone."""

    def __init__(self, node: g.Node) -> None:
        if isinstance(node, g.ReLU):
            self.fn = tf.nn.relu
        elif isinstance(node, g.AvgPool):
            self.fn = lambda x, k=node.kernel, s=node.stride: tf.nn.avg_pool2d(x, k, s, "VALID")
        elif isinstance(node, g.GlobalAvgPool):
            self.fn = lambda x: tf.reduce_mean(x, axis=[1, 2])
        else:
            raise TypeError(f"tensorflow plugin cannot build {type(node).__name__}")

    def __call__(self, x: tf.Tensor, ctx: Context) -> tf.Tensor:
        return self.fn(x)


LEAVES: dict[type, Any] = {g.Conv: Conv, g.Linear: Linear, g.BatchNorm: BatchNorm, g.MaxPool: MaxPool,
                           g.LRN: LRN, g.Flatten: Flatten}


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


ChannelsHW = tuple[int, int, int]


@dataclass
class FlatOrder:
    """Where the network keeps a flattened activation in NHWC (h, w, c) order instead of the portable (c, h, w): from
    a spatial Flatten through the element-wise layers after it (ReLU, Dropout) to the Linear that reads it, whose
    weight columns are then in that order, so the flatten needs no transpose. ``writes``: the layers whose output is
    in that order, ``reads``: those whose input is; each path -> the (c, h, w) flattened."""
    writes: dict[str, ChannelsHW] = field(default_factory=dict)
    reads: dict[str, ChannelsHW] = field(default_factory=dict)


def flat_order(body: g.Node, summary: ModelSummary) -> FlatOrder:
    """The network's NHWC-ordered flat activations, in build order: a branching container (Concat, Residual, Aux)
    ends the search, as its next layer built is not the next one run; so does any layer but ReLU and Dropout."""
    inputs = {layer.path: layer.input_shape for layer in summary.layers}
    order = FlatOrder()
    pending: list[str] = []   # a spatial Flatten and the element-wise layers after it so far

    def visit(node: g.Node, path: str) -> None:
        nonlocal pending
        if isinstance(node, (g.Seq, g.Concat, g.Residual, g.Aux)):
            branches = not isinstance(node, g.Seq)
            if branches:
                pending = []
            for child in g.children(node):
                visit(child, f"{path}.{child.name}" if path else child.name)
            if branches:
                pending = []
        elif isinstance(node, (g.ReLU, g.Dropout)):
            if pending:
                pending.append(path)
        elif isinstance(node, g.Linear) and pending:
            chw = inputs[pending[0]]
            order.writes.update((p, chw) for p in pending)
            order.reads.update((p, chw) for p in (*pending[1:], path))
            pending = []
        else:
            shape = inputs.get(path, ())
            spatial = isinstance(node, g.Flatten) and len(shape) == 3 and shape[1] * shape[2] > 1
            pending = [path] if spatial else []

    visit(body, "")
    return order


class Net:
    """The whole network, or one node of it (``node`` at ``path``, for a layer cell) built exactly as the network
    builds it. ``params`` maps every portable key to its ``Param``, in definition order."""

    def __init__(self, model: g.ModelDef, summary: ModelSummary, compute_dtype: tf.DType, seed: int,
                 node: g.Node | None = None, path: str = "") -> None:
        self.compute_dtype = compute_dtype
        self.inputs = {layer.path: layer.input_shape for layer in summary.layers}
        self.order = flat_order(model.body, summary)
        self.params: dict[str, Param] = {}
        self.generator = tf.random.Generator.from_seed(seed)
        self.body = self._build(model.body if node is None else node, path)
        self.trainable = [p.var for p in self.params.values() if p.var.trainable]

    def _build(self, node: g.Node, path: str) -> Any:
        if isinstance(node, (g.Seq, g.Concat, g.Residual, g.Aux)):
            return Container(node, [self._build(c, f"{path}.{c.name}" if path else c.name) for c in g.children(node)])
        if isinstance(node, g.Dropout):
            return Dropout(node, self.generator)
        if type(node) not in LEAVES:
            return Stateless(node)
        layer = LEAVES[type(node)](node, self.inputs[path])
        if isinstance(layer, Linear) and path in self.order.reads:
            layer.read_nhwc(self.order.reads[path])   # fc weights in NHWC column order: the flatten needs no transpose
        if isinstance(layer, Flatten) and path in self.order.writes:
            layer.transpose = False
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
