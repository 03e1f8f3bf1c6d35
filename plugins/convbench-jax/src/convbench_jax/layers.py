"""Realises convbench's layer graph as one pure function over flat parameter dicts (jax.lax, no Flax).

Parameters and statistics are dicts keyed by the portable names (``conv1.conv.weight``); convolution
kernels are stored in the layout's native order (HWIO for NHWC, OIHW for NCHW) and dense weights as
(in, out). Activations run in NHWC by default; Flatten transposes to NCHW first, so dense weights keep
the portable NCHW flatten order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from harness.model import graph as g
from harness.model.shapes import ModelSummary, pool_output_size

Arrays = dict[str, jax.Array]


@dataclass(frozen=True)
class Layout:
    name: str  # nhwc | nchw

    @property
    def channel(self) -> int:
        return 3 if self.name == "nhwc" else 1

    @property
    def spatial(self) -> tuple[int, int]:
        return (1, 2) if self.name == "nhwc" else (2, 3)

    @property
    def conv_dims(self) -> tuple[str, str, str]:
        return ("NHWC", "HWIO", "NHWC") if self.name == "nhwc" else ("NCHW", "OIHW", "NCHW")

    def window(self, k: int, c: int = 1) -> tuple[int, int, int, int]:
        """A 4-D window/stride tuple: ``k`` on both spatial axes, ``c`` on the channel axis."""
        return (1, k, k, c) if self.name == "nhwc" else (1, c, k, k)


@dataclass
class Ctx:
    """What one pass through the graph reads and writes."""
    params: Arrays
    stats: Arrays
    train: bool
    key: jax.Array | None
    layout: Layout
    dtype: Any
    new_stats: Arrays = field(default_factory=dict)
    aux: list[tuple[float, jax.Array]] = field(default_factory=list)
    draws: int = 0

    def next_key(self) -> jax.Array:
        """A fresh key per dropout layer: the step key folded with the layer's position in the pass."""
        assert self.key is not None, "training pass without a PRNG key"
        self.draws += 1
        return jax.random.fold_in(self.key, self.draws)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def run(node: g.Node, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    """Applies ``node`` (at dotted ``path``) to ``x``."""
    if isinstance(node, g.Seq):
        for child in node.children:
            x = run(child, join(path, child.name), x, ctx)
        return x
    if isinstance(node, g.Concat):
        parts = [run(b, join(path, b.name), x, ctx) for b in node.branches]
        return jnp.concatenate(parts, axis=ctx.layout.channel)
    if isinstance(node, g.Residual):
        body = run(node.body, join(path, node.body.name), x, ctx)
        return body + run(node.shortcut, join(path, node.shortcut.name), x, ctx)
    if isinstance(node, g.Aux):
        if ctx.train:  # auxiliary heads only exist for the training loss
            ctx.aux.append((node.weight, run(node.head, join(path, node.head.name), x, ctx)))
        return x
    with jax.named_scope(path):   # in each HLO op's metadata: explain --method profiler maps the trace to layers
        return LAYERS[type(node)](node, path, x, ctx)


def conv(node: g.Conv, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    p = node.padding
    w = ctx.params[f"{path}.weight"].astype(ctx.dtype)
    y = lax.conv_general_dilated(x, w, (node.stride, node.stride), [(p, p), (p, p)],
                                 dimension_numbers=ctx.layout.conv_dims)
    if node.bias:
        y = y + _per_channel(ctx.params[f"{path}.bias"].astype(ctx.dtype), y.ndim, ctx.layout)
    return y


def linear(node: g.Linear, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    y = x @ ctx.params[f"{path}.weight"].astype(ctx.dtype)
    return y + ctx.params[f"{path}.bias"].astype(ctx.dtype) if node.bias else y


def batch_norm(node: g.BatchNorm, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    """PyTorch's batch norm, computed in fp32: biased batch variance normalises, unbiased goes to running_var."""
    axes = (0,) if x.ndim == 2 else (0, *ctx.layout.spatial)
    xf = x.astype(jnp.float32)
    if ctx.train:
        mean = xf.mean(axes)
        centred = xf - _per_channel(mean, x.ndim, ctx.layout)
        var = jnp.square(centred).mean(axes)
        n, m = x.size // mean.size, node.momentum
        run_mean, run_var = ctx.stats[f"{path}.running_mean"], ctx.stats[f"{path}.running_var"]
        ctx.new_stats[f"{path}.running_mean"] = (1 - m) * run_mean + m * lax.stop_gradient(mean)
        ctx.new_stats[f"{path}.running_var"] = (1 - m) * run_var + m * lax.stop_gradient(var) * (n / max(n - 1, 1))
    else:
        var = ctx.stats[f"{path}.running_var"]
        centred = xf - _per_channel(ctx.stats[f"{path}.running_mean"], x.ndim, ctx.layout)
    scale = _per_channel(ctx.params[f"{path}.weight"] * lax.rsqrt(var + node.eps), x.ndim, ctx.layout)
    return (centred * scale + _per_channel(ctx.params[f"{path}.bias"], x.ndim, ctx.layout)).astype(x.dtype)


def max_pool(node: g.MaxPool, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    """Pads with -inf; the right pad is grown so the output size is pool_output_size (torch's ceil rule)."""
    pads = [(0, 0)] * 4
    for axis in ctx.layout.spatial:
        size = x.shape[axis]
        out = pool_output_size(size, node.kernel, node.stride, node.padding, node.ceil_mode)
        right = max(node.padding, (out - 1) * node.stride + node.kernel - size - node.padding)
        pads[axis] = (node.padding, right)
    init = np.array(-np.inf, x.dtype)  # a concrete identity, so JAX uses its differentiable max-pool primitive
    lay = ctx.layout
    return lax.reduce_window(x, init, lax.max, lay.window(node.kernel), lay.window(node.stride), pads)


def avg_pool(node: g.AvgPool, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    lay = ctx.layout
    total = lax.reduce_window(x.astype(jnp.float32), np.float32(0), lax.add, lay.window(node.kernel),
                              lay.window(node.stride), "VALID")
    return (total / (node.kernel * node.kernel)).astype(x.dtype)


def lrn(node: g.LRN, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    """x / (k + alpha/size * sum of x^2 over ``size`` channels centred on c, zero padded) ^ beta."""
    sq = jnp.square(x.astype(jnp.float32))
    window = [1, 1, 1, 1]
    window[ctx.layout.channel] = node.size
    pads = [(0, 0)] * 4
    pads[ctx.layout.channel] = (node.size // 2, (node.size - 1) // 2)
    total = lax.reduce_window(sq, np.float32(0), lax.add, tuple(window), (1, 1, 1, 1), pads)
    return (x.astype(jnp.float32) / (node.k + node.alpha / node.size * total) ** node.beta).astype(x.dtype)


def dropout(node: g.Dropout, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    if not ctx.train or node.rate == 0:
        return x
    keep = jax.random.bernoulli(ctx.next_key(), 1.0 - node.rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - node.rate, x.dtype), jnp.zeros((), x.dtype))


def flatten(node: g.Flatten, path: str, x: jax.Array, ctx: Ctx) -> jax.Array:
    if x.ndim == 4 and ctx.layout.name == "nhwc":
        x = jnp.transpose(x, (0, 3, 1, 2))  # NCHW (C-major) flatten order, as the portable dense weights
    return x.reshape(x.shape[0], -1)


def _per_channel(v: jax.Array, ndim: int, layout: Layout) -> jax.Array:
    """Reshapes a (C,) vector to broadcast over the channel axis of a ``ndim``-D activation."""
    if ndim == 2:
        return v
    shape = [1] * ndim
    shape[layout.channel] = v.shape[0]
    return v.reshape(shape)


LAYERS: dict[type, Callable[[Any, str, jax.Array, Ctx], jax.Array]] = {
    g.Conv: conv, g.Linear: linear, g.BatchNorm: batch_norm, g.MaxPool: max_pool, g.AvgPool: avg_pool,
    g.LRN: lrn, g.Dropout: dropout, g.Flatten: flatten,
    g.ReLU: lambda node, path, x, ctx: jax.nn.relu(x),
    g.GlobalAvgPool: lambda node, path, x, ctx: x.mean(ctx.layout.spatial),
}


def to_layout(x: jax.Array, layout: Layout, dtype: Any) -> jax.Array:
    """An NCHW (or (N, F)) float32 tensor as the layers take it: in the compute dtype, channels last for NHWC."""
    x = x.astype(dtype)
    return jnp.transpose(x, (0, 2, 3, 1)) if x.ndim == 4 and layout.name == "nhwc" else x


def from_layout(x: jax.Array, layout: Layout) -> jax.Array:
    """A layer's output back in NCHW (or (N, F)) order, float32."""
    x = x.astype(jnp.float32)
    return jnp.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 and layout.name == "nhwc" else x


def apply_node(node: g.Node, path: str, params: Arrays, stats: Arrays, x: jax.Array, train: bool,
               key: jax.Array | None, layout: Layout,
               dtype: Any) -> tuple[jax.Array, list[tuple[float, jax.Array]], Arrays]:
    """Runs one node (the network's body, a block or a layer, at dotted ``path``) on ``x`` in the layout and compute
    dtype: (its output, [(weight, aux logits)] of the auxiliary heads it ran, the statistics with its updates)."""
    ctx = Ctx(params, stats, train, key, layout, dtype)
    out = run(node, path, x, ctx)
    return out, ctx.aux, {**stats, **ctx.new_stats}


def apply(model: g.ModelDef, params: Arrays, stats: Arrays, images: jax.Array, train: bool,
          key: jax.Array | None, layout: Layout, dtype: Any) -> tuple[jax.Array, list[tuple[float, jax.Array]], Arrays]:
    """Runs the network on NCHW ``images``: (fp32 logits, [(weight, fp32 aux logits)], updated statistics)."""
    logits, aux, stats_out = apply_node(model.body, "", params, stats, to_layout(images, layout, dtype), train, key,
                                        layout, dtype)
    return logits.astype(jnp.float32), [(w, a.astype(jnp.float32)) for w, a in aux], stats_out


class NativeOrder:
    """Portable <-> native order of a network's weights: conv kernels OIHW <-> HWIO (NHWC), dense weights
    (out, in) <-> (in, out); everything else as it is."""

    def __init__(self, summary: ModelSummary, layout: Layout) -> None:
        self.layout = layout
        self.kind = {f"{layer.path}.weight": type(layer.node).__name__ for layer in summary.layers
                     if isinstance(layer.node, (g.Conv, g.Linear))}

    def shape(self, key: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(self.native(key, np.broadcast_to(np.float32(0), shape)).shape)  # no allocation

    def native(self, key: str, value: np.ndarray) -> np.ndarray:
        kind = self.kind.get(key)
        if kind == "Conv" and self.layout.name == "nhwc":
            return value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        return value.T if kind == "Linear" else value

    def portable(self, key: str, value: np.ndarray) -> np.ndarray:
        kind = self.kind.get(key)
        if kind == "Conv" and self.layout.name == "nhwc":
            return value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        return value.T if kind == "Linear" else value
