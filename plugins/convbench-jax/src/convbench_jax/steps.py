"""The pure step functions a JaxModel jits: logits, evaluation, gradients and the SGD training step (the update
and fp16's loss scaling are ``optim``'s). ``lr`` is an argument (traced, so a new value does not retrace).
``make_layer_steps`` gives a layer cell's (``convbench explain``): the same node code, key and update rule.

With ``axis`` (data parallel, see ``parallel``) ``grads`` and ``train`` are the body of one replica under
shard_map: its own slice's batch statistics and a dropout key folded with its index; the loss differentiated is
the mean over the axis of the replicas' losses (the global batch's), so its gradient with respect to the
replicated parameters is the mean of the replicas' gradients, the same on every replica (shard_map's transpose of
the implicit broadcast of a replicated value is a psum over the axis: differentiating each replica's own loss
would give the *sum* of the gradients); the batch-norm running statistics are averaged over the axis too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

from convbench_jax.layers import Arrays, Layout, apply, apply_node
from convbench_jax.optim import sgd, skip_non_finite
from harness.model.graph import ModelDef, Node


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy (fp32)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]


@dataclass(frozen=True)
class Steps:
    """The step functions; arguments and results are pytrees of arrays (``scale`` is None unless fp16)."""
    logits: Callable[..., jax.Array]  # (params, stats, x) -> logits
    evaluate: Callable[..., Any]      # (params, stats, x, y) -> (summed CE, correct)
    grads: Callable[..., Any]         # (params, stats, key, scale, x, y) -> (loss, grads, stats, key)
    train: Callable[..., Any]         # (params, stats, velocity, key, scale, x, y, lr)
    #                                   -> (params, stats, velocity, key, scale, loss)


def make_steps(model: ModelDef, layout: Layout, dtype: Any, momentum: float, weight_decay: float,
               loss_scaling: bool, axis: str | None = None) -> Steps:
    def logits(params: Arrays, stats: Arrays, x: jax.Array) -> jax.Array:
        return apply(model, params, stats, x, False, None, layout, dtype)[0]

    def evaluate(params: Arrays, stats: Arrays, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = logits(params, stats, x)
        return cross_entropy(out, y).sum(), (jnp.argmax(out, axis=-1) == y).sum()

    def loss_fn(params: Arrays, stats: Arrays, key: jax.Array, x: jax.Array, y: jax.Array,
                factor: jax.Array) -> tuple[jax.Array, tuple[jax.Array, Arrays]]:
        out, aux, new_stats = apply(model, params, stats, x, True, key, layout, dtype)
        loss = cross_entropy(out, y).mean()
        for weight, aux_logits in aux:
            loss = loss + weight * cross_entropy(aux_logits, y).mean()
        if axis is not None:   # the global batch's loss; each replica's running statistics averaged
            loss, new_stats = lax.pmean((loss, new_stats), axis)
        return loss * factor, (loss, new_stats)

    def grads(params: Arrays, stats: Arrays, key: jax.Array, scale: Any, x: jax.Array,
              y: jax.Array) -> tuple[jax.Array, Arrays, Arrays, jax.Array]:
        """(loss, unscaled gradients, updated statistics, next key); with ``axis``, the same on every replica."""
        key, sub = jax.random.split(key)
        if axis is not None:   # the replicas' dropout masks differ, as one device's over the global batch would
            sub = jax.random.fold_in(sub, lax.axis_index(axis))
        factor = scale["scale"] if loss_scaling else jnp.float32(1.0)
        (_, (loss, new_stats)), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, sub, x, y, factor)
        if loss_scaling:
            g = jax.tree.map(lambda t: t / factor, g)
        return loss, g, new_stats, key

    def train(params: Arrays, stats: Arrays, velocity: Arrays, key: jax.Array, scale: Any, x: jax.Array,
              y: jax.Array, lr: jax.Array) -> tuple[Arrays, Arrays, Arrays, jax.Array, Any, jax.Array]:
        loss, g, new_stats, key = grads(params, stats, key, scale, x, y)
        new_params, new_velocity, g = sgd(params, velocity, g, lr, momentum, weight_decay)
        if loss_scaling:
            new_params, new_velocity, scale = skip_non_finite(g, (params, velocity), (new_params, new_velocity), scale)
        return new_params, new_stats, new_velocity, key, scale, loss

    return Steps(logits, evaluate, grads, train)



@dataclass(frozen=True)
class LayerSteps:
    """A layer cell's steps: ``x`` is the node's input and ``g`` its output's gradient, both in the layout and
    compute dtype; ``out`` the node's output, ``gx`` the input's gradient (None without ``input_grad``)."""
    forward: Callable[..., jax.Array]  # (params, stats, x) -> out
    grads: Callable[..., Any]          # (params, stats, key, x, g) -> (out, grads, gx, stats, key)
    train: Callable[..., Any]          # (params, stats, velocity, key, x, g, lr)
    #                                    -> (params, stats, velocity, key, out, gx)


def make_layer_steps(node: Node, path: str, layout: Layout, dtype: Any, momentum: float, weight_decay: float,
                     input_grad: bool) -> LayerSteps:
    """One node's steps as the network's steps run it: ``grads`` is its share of the network's backward, the
    cotangent ``g`` pulled back through the node (the vjp of ``sum(out * g)``) to every parameter and, with
    ``input_grad``, to the input; ``train`` adds the network's SGD update. No loss scaling (fp16 included)."""
    def forward(params: Arrays, stats: Arrays, x: jax.Array) -> jax.Array:
        return apply_node(node, path, params, stats, x, False, None, layout, dtype)[0]

    def grads(params: Arrays, stats: Arrays, key: jax.Array, x: jax.Array,
              g: jax.Array) -> tuple[jax.Array, Arrays, jax.Array | None, Arrays, jax.Array]:
        key, sub = jax.random.split(key)   # as the network's step: a fresh dropout key per step

        def f(p: Arrays, inp: jax.Array) -> tuple[jax.Array, Arrays]:
            out, _, new_stats = apply_node(node, path, p, stats, inp, True, sub, layout, dtype)
            return out, new_stats

        if input_grad:
            out, pullback, new_stats = jax.vjp(f, params, x, has_aux=True)
            gp, gx = pullback(g.astype(out.dtype))
        elif params:
            out, pullback, new_stats = jax.vjp(lambda p: f(p, x), params, has_aux=True)
            (gp,), gx = pullback(g.astype(out.dtype)), None
        else:   # nothing to differentiate: the training-mode forward
            (out, new_stats), gp, gx = f(params, x), {}, None
        return out, gp, gx, new_stats, key

    def train(params: Arrays, stats: Arrays, velocity: Arrays, key: jax.Array, x: jax.Array, g: jax.Array,
              lr: jax.Array) -> tuple[Arrays, Arrays, Arrays, jax.Array, jax.Array, jax.Array | None]:
        out, gp, gx, new_stats, key = grads(params, stats, key, x, g)
        new_params, new_velocity, _ = sgd(params, velocity, gp, lr, momentum, weight_decay)
        return new_params, new_stats, new_velocity, key, out, gx

    return LayerSteps(forward, grads, train)
