"""Builds a paddle.nn.Layer tree that mirrors the framework-neutral graph, name for name.

Paddle differs from the graph's (PyTorch's) conventions in four places, each corrected here:
batch-norm momentum is the opposite weight and the running variance is biased (``BatchNorm``),
ceil-mode pooling keeps a last window that starts in the right padding (``MaxPool``), and the
built-in cross-entropy clamps log-probabilities at -64 (``cross_entropy``). Linear weights are
stored (in, out); ``PortableState`` transposes them on import and export.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from harness.errors import ConvbenchError
from harness.model import graph as g
from harness.model.shapes import ModelSummary, pool_output_size


class BatchNorm(nn.Layer):
    """Batch norm over axis 1 of a 2-D or 4-D input with torch's running-statistics update.

    Paddle updates ``running = p * running + (1 - p) * biased_var``; torch uses the unbiased
    variance, ``running = (1 - m) * running + m * n / (n - 1) * biased_var``. Dividing the running
    variance by c = n / (n - 1) before paddle's update (with p = 1 - m) and multiplying by c after
    gives exactly torch's update, at the cost of two elementwise ops on a (C,) vector.
    """

    def __init__(self, channels: int, eps: float, momentum: float) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = self.create_parameter([channels], default_initializer=nn.initializer.Constant(1.0))
        self.bias = self.create_parameter([channels], is_bias=True)
        self.register_buffer("running_mean", paddle.zeros([channels]))
        self.register_buffer("running_var", paddle.ones([channels]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if x.ndim not in (2, 4):
            raise ValueError(f"expected 2-D or 4-D input, got {x.ndim}-D")
        fmt = "NCHW" if x.ndim == 4 else "NC"
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                training=False, epsilon=self.eps, data_format=fmt)
        n = x.shape[0] * (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)
        if n < 2:
            raise ValueError("batch norm in training needs more than one value per channel")
        c = n / (n - 1)
        scaled = self.running_var / c  # batch_norm updates it in place (and keeps it for its backward)
        out = F.batch_norm(x, self.running_mean, scaled, self.weight, self.bias, training=True,
                           momentum=1.0 - self.momentum, epsilon=self.eps, data_format=fmt)
        paddle.assign(scaled * c, output=self.running_var)
        return out


class MaxPool(nn.Layer):
    """Max pooling; in ceil mode paddle may add a last window starting in the right padding,
    which torch's rule (harness.model.shapes.pool_output_size) drops: slice it off."""

    def __init__(self, node: g.MaxPool, in_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.node = node
        self.out_hw = tuple(pool_output_size(s, node.kernel, node.stride, node.padding, node.ceil_mode)
                            for s in in_shape[1:])
        paddle_hw = tuple(_paddle_pool_size(s, node) for s in in_shape[1:])
        self.trim = paddle_hw != self.out_hw

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        n = self.node
        y = F.max_pool2d(x, n.kernel, n.stride, n.padding, ceil_mode=n.ceil_mode)
        return y[:, :, : self.out_hw[0], : self.out_hw[1]] if self.trim else y


def _paddle_pool_size(size: int, node: g.MaxPool) -> int:
    span = size + 2 * node.padding - node.kernel
    return (-(-span // node.stride) if node.ceil_mode else span // node.stride) + 1


class GlobalAvgPool(nn.Layer):
    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x.mean(axis=[2, 3])


class Flatten(nn.Layer):
    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x.flatten(start_axis=1)  # NCHW: C-major, as the graph's Flatten


AuxList = list[tuple[float, paddle.Tensor]]
Shapes = dict[str, tuple[int, ...]]


class Container(nn.Layer):
    """A Seq, Concat, Residual or Aux node; ``forward(x, aux)`` appends auxiliary logits to ``aux``."""

    def __init__(self, node: g.Node, path: str, shapes: Shapes) -> None:
        super().__init__()
        self.kind = type(node).__name__
        self.aux_weight = node.weight if isinstance(node, g.Aux) else 0.0
        for child in g.children(node):
            self.add_sublayer(child.name, build(child, f"{path}.{child.name}" if path else child.name, shapes))
        # a plain tuple, not self.children() (whose internal set() stops paddle.jit.to_static's capture)
        self.ordered = tuple((layer, isinstance(layer, Container)) for layer in self._sub_layers.values())

    def forward(self, x: paddle.Tensor, aux: AuxList) -> paddle.Tensor:
        if self.kind == "Seq":
            for layer, nested in self.ordered:
                x = layer(x, aux) if nested else layer(x)
            return x
        if self.kind == "Aux" and not self.training:  # heads are skipped, not computed and dropped, at evaluation
            return x
        parts = []
        for layer, _ in self.ordered:  # a loop: a comprehension's closure would also stop the capture
            parts.append(layer(x, aux))
        if self.kind == "Concat":
            return paddle.concat(parts, axis=1)
        if self.kind == "Residual":
            return parts[0] + parts[1]
        aux.append((self.aux_weight, parts[0]))  # Aux, in training
        return x


def build(node: g.Node, path: str, shapes: Shapes) -> nn.Layer:
    """The paddle layer of one node; ``shapes`` maps each layer's dotted path to its input shape."""
    if isinstance(node, (g.Seq, g.Concat, g.Residual, g.Aux)):
        return Container(node, path, shapes)
    in_shape = shapes[path]
    if isinstance(node, g.Conv):
        return nn.Conv2D(in_shape[0], node.out_channels, node.kernel, node.stride, node.padding,
                         bias_attr=None if node.bias else False)
    if isinstance(node, g.Linear):  # paddle stores the weight as (in, out)
        return nn.Linear(in_shape[0], node.out_features, bias_attr=None if node.bias else False)
    if isinstance(node, g.BatchNorm):
        return BatchNorm(in_shape[0], node.eps, node.momentum)
    if isinstance(node, g.ReLU):
        return nn.ReLU()
    if isinstance(node, g.MaxPool):
        return MaxPool(node, in_shape)
    if isinstance(node, g.AvgPool):  # no padding, floor mode: `exclusive` cannot matter
        return nn.AvgPool2D(node.kernel, node.stride)
    if isinstance(node, g.GlobalAvgPool):
        return GlobalAvgPool()
    if isinstance(node, g.LRN):  # same formula as torch: x / (k + alpha/size * window sum of x^2)^beta
        return nn.LocalResponseNorm(node.size, node.alpha, node.beta, node.k)
    if isinstance(node, g.Dropout):  # "upscale_in_train" is inverted dropout
        return nn.Dropout(node.rate, mode="upscale_in_train")
    if isinstance(node, g.Flatten):
        return Flatten()
    raise TypeError(f"paddle plugin cannot build {type(node).__name__}")


class Net(nn.Layer):
    """The whole network: ``forward(x)`` returns (logits, [(weight, aux_logits), ...])."""

    def __init__(self, model: g.ModelDef, summary: ModelSummary) -> None:
        super().__init__()
        self.body = Container(model.body, "", {layer.path: layer.input_shape for layer in summary.layers})

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, AuxList]:
        aux: AuxList = []
        return self.body(x, aux), aux


class PortableState:
    """A layer tree's parameters and statistics under their portable keys: each state key's ``prefix`` replaced by
    ``into`` (``body.conv1.weight`` -> ``conv1.weight`` for a network), the Linear weights transposed on the way
    in and out (paddle stores them (in, out), the portable weights (out, in))."""

    def __init__(self, layer: nn.Layer, prefix: str, into: str = "") -> None:
        def key(name: str) -> str:
            return into + name[len(prefix):]
        self.tensors = {key(k): v for k, v in layer.state_dict().items()}
        self.transposed = {key(f"{name}.weight") for name, sub in layer.named_sublayers()
                           if isinstance(sub, nn.Linear)}

    def numpy(self) -> dict[str, np.ndarray]:
        # Tensor.numpy() copies; paddle's own transpose of the linear weights is the fast one
        return {key: (t.T if key in self.transposed else t).numpy() for key, t in self.tensors.items()}

    def load(self, weights: dict[str, np.ndarray]) -> None:
        """Copies ``weights`` in (``set_value`` copies); ConvbenchError on a missing or extra key or a wrong shape."""
        if set(weights) != set(self.tensors):
            raise ConvbenchError(f"weights {sorted(weights)} do not match {sorted(self.tensors)}")
        for key, value in weights.items():
            target, flip = self.tensors[key], key in self.transposed
            expected = tuple(target.shape[::-1] if flip else target.shape)
            if np.shape(value) != expected:
                raise ConvbenchError(f"{key}: shape {np.shape(value)}, expected {expected}")
            value = np.asarray(value, np.float32)
            target.set_value(value.T if flip else value)


def cross_entropy(logits: paddle.Tensor, labels: paddle.Tensor, reduction: str = "mean") -> paddle.Tensor:
    """Softmax cross-entropy as logsumexp - picked logit. Paddle's own cross_entropy and log_softmax
    clamp log-probabilities at -64 on CPU, which changes the loss (and gradient) of confident logits."""
    picked = paddle.take_along_axis(logits, labels.unsqueeze(1), axis=1).squeeze(1)
    losses = paddle.logsumexp(logits, axis=1) - picked
    return losses.mean() if reduction == "mean" else losses.sum()


def loss_fn(logits: paddle.Tensor, aux: AuxList, labels: paddle.Tensor) -> paddle.Tensor:
    loss = cross_entropy(logits, labels)
    for weight, aux_logits in aux:
        loss = loss + weight * cross_entropy(aux_logits, labels)
    return loss
