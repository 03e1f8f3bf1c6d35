"""The pure step functions a JaxModel jits: logits, evaluation, gradients and the SGD training step.

SGD is torch.optim.SGD's rule (dampening 0, no Nesterov) on every parameter, BN and biases included:
g' = g + wd * w; v = m * v + g'; w = w - lr * v. ``lr`` is an argument (traced, so a new value does not
retrace). fp16 adds dynamic loss scaling like torch's GradScaler (skip the update on inf/NaN and halve
the scale; double it after 2000 finite steps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp

from convbench_jax.layers import Arrays, Layout, apply
from harness.model.graph import ModelDef

GROWTH_INTERVAL = 2000


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy (fp32)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]


def initial_scale() -> dict[str, jax.Array]:
    return {"scale": jnp.float32(2.0 ** 16), "good": jnp.int32(0)}


@dataclass(frozen=True)
class Steps:
    """The step functions; arguments and results are pytrees of arrays (``scale`` is None unless fp16)."""
    logits: Callable[..., jax.Array]  # (params, stats, x) -> logits
    evaluate: Callable[..., Any]      # (params, stats, x, y) -> (summed CE, correct)
    grads: Callable[..., Any]         # (params, stats, key, scale, x, y) -> (loss, grads, stats, key)
    train: Callable[..., Any]         # (params, stats, velocity, key, scale, x, y, lr)
    #                                   -> (params, stats, velocity, key, scale, loss)


def make_steps(model: ModelDef, layout: Layout, dtype: Any, momentum: float, weight_decay: float,
               loss_scaling: bool) -> Steps:
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
        return loss * factor, (loss, new_stats)

    def grads(params: Arrays, stats: Arrays, key: jax.Array, scale: Any, x: jax.Array,
              y: jax.Array) -> tuple[jax.Array, Arrays, Arrays, jax.Array]:
        """(loss, unscaled gradients, updated statistics, next key)."""
        key, sub = jax.random.split(key)
        factor = scale["scale"] if loss_scaling else jnp.float32(1.0)
        (_, (loss, new_stats)), g = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, sub, x, y, factor)
        if loss_scaling:
            g = jax.tree.map(lambda t: t / factor, g)
        return loss, g, new_stats, key

    def train(params: Arrays, stats: Arrays, velocity: Arrays, key: jax.Array, scale: Any, x: jax.Array,
              y: jax.Array, lr: jax.Array) -> tuple[Arrays, Arrays, Arrays, jax.Array, Any, jax.Array]:
        loss, g, new_stats, key = grads(params, stats, key, scale, x, y)
        g = jax.tree.map(lambda t, w: t + weight_decay * w, g, params)
        new_velocity = jax.tree.map(lambda v, t: momentum * v + t, velocity, g)
        new_params = jax.tree.map(lambda w, v: w - lr * v, params, new_velocity)
        if loss_scaling:
            new_params, new_velocity, scale = _skip_non_finite(g, (params, velocity), (new_params, new_velocity), scale)
        return new_params, new_stats, new_velocity, key, scale, loss

    return Steps(logits, evaluate, grads, train)


def _skip_non_finite(g: Arrays, old: Any, new: Any, scale: dict[str, jax.Array]) -> tuple[Any, Any, Any]:
    """GradScaler's rule: keep the old state on inf/NaN gradients and halve the scale, else maybe grow it."""
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(t)) for t in jax.tree.leaves(g)]))
    params, velocity = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    good = jnp.where(finite, scale["good"] + 1, 0)
    grow = good >= GROWTH_INTERVAL
    value = jnp.where(finite, jnp.where(grow, scale["scale"] * 2, scale["scale"]), scale["scale"] * 0.5)
    return params, velocity, {"scale": value, "good": jnp.where(grow, 0, good)}
