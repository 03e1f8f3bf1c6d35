"""torch.optim.SGD's update and torch's GradScaler loss scaling, as pure functions of arrays.

SGD is torch.optim.SGD's rule (dampening 0, no Nesterov) on every parameter, BN and biases included:
g' = g + wd * w; v = m * v + g'; w = w - lr * v. fp16 adds dynamic loss scaling like torch's GradScaler (skip
the update on inf/NaN and halve the scale; double it after 2000 finite steps).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from convbench_jax.layers import Arrays

GROWTH_INTERVAL = 2000


def initial_scale() -> dict[str, jax.Array]:
    return {"scale": jnp.float32(2.0 ** 16), "good": jnp.int32(0)}


def sgd(params: Arrays, velocity: Arrays, g: Arrays, lr: jax.Array, momentum: float,
        weight_decay: float) -> tuple[Arrays, Arrays, Arrays]:
    """(new params, new velocity, the gradients with weight decay added) after one SGD step."""
    g = jax.tree.map(lambda t, w: t + weight_decay * w, g, params)
    new_velocity = jax.tree.map(lambda v, t: momentum * v + t, velocity, g)
    new_params = jax.tree.map(lambda w, v: w - lr * v, params, new_velocity)
    return new_params, new_velocity, g


def skip_non_finite(g: Arrays, old: Any, new: Any, scale: dict[str, jax.Array]) -> tuple[Any, Any, Any]:
    """GradScaler's rule: keep the old state on inf/NaN gradients and halve the scale, else maybe grow it."""
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(t)) for t in jax.tree.leaves(g)]))
    params, velocity = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    good = jnp.where(finite, scale["good"] + 1, 0)
    grow = good >= GROWTH_INTERVAL
    value = jnp.where(finite, jnp.where(grow, scale["scale"] * 2, scale["scale"]), scale["scale"] * 0.5)
    return params, velocity, {"scale": value, "good": jnp.where(grow, 0, good)}
