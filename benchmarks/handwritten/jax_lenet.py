"""LeNet-5 in plain jax: jax.lax convolutions and pooling, one jitted train step, nothing of convbench's.

Synchronisation: jax dispatches asynchronously, on the CPU too. convbench's jax train_step only dispatches
(it keeps the step's loss for the plugin's synchronize hook, which blocks on it at the end of a timed round,
or when 32 outputs are pending), so its timed rounds let dispatch overlap the running steps. The hand-written
step does the same: it dispatches and keeps the new state; ``synchronize`` (which overhead.py calls with the
plugin's hook) blocks on the latest loss. Steps are chained through params and velocity, so the latest loss
being ready means every earlier step has finished. Blocking inside every step instead would serialise
dispatch with compute and hand the harness an advantage.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

LR, MOMENTUM, WEIGHT_DECAY = 1e-3, 0.9, 2e-4
DIMS = ("NHWC", "HWIO", "NHWC")


def logits(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    for name in ("conv1", "conv2"):
        x = lax.conv_general_dilated(x, params[f"{name}.w"], (1, 1), "VALID", dimension_numbers=DIMS)
        x = jax.nn.relu(x + params[f"{name}.b"])
        x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    x = x.reshape(x.shape[0], -1)  # NHWC flatten; fc1's rows were reordered to match
    x = jax.nn.relu(x @ params["fc1.w"] + params["fc1.b"])
    x = jax.nn.relu(x @ params["fc2.w"] + params["fc2.b"])
    return x @ params["fc3.w"] + params["fc3.b"]


def loss_fn(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits(params, x))
    return -jnp.take_along_axis(logp, y[:, None], axis=1).mean()


def _train_step(params: dict[str, jax.Array], velocity: dict[str, jax.Array], x: jax.Array, y: jax.Array
                ) -> tuple[dict[str, jax.Array], dict[str, jax.Array], jax.Array]:
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    # torch's SGD: v = m v + (g + wd w); w -= lr v
    velocity = jax.tree.map(lambda v, g, w: MOMENTUM * v + (g + WEIGHT_DECAY * w), velocity, grads, params)
    params = jax.tree.map(lambda w, v: w - LR * v, params, velocity)
    return params, velocity, loss


train_step = jax.jit(_train_step, donate_argnums=(0, 1))  # params and velocity are replaced


def make(weights: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray):
    native = {f"{n}.w": weights[f"{n}.conv.weight"].transpose(2, 3, 1, 0) for n in ("conv1", "conv2")}  # OIHW -> HWIO
    native |= {f"{n}.b": weights[f"{n}.conv.bias"] for n in ("conv1", "conv2")}
    # fc1 sees an NHWC flatten here, the portable weight an NCHW one: reorder its input rows (c, h, w) -> (h, w, c)
    native["fc1.w"] = weights["fc1.weight"].reshape(120, 16, 5, 5).transpose(2, 3, 1, 0).reshape(400, 120)
    native |= {f"{n}.w": weights[f"{n}.weight"].T for n in ("fc2", "fc3")}
    native |= {f"{n}.b": weights[f"{n}.bias"] for n in ("fc1", "fc2", "fc3")}
    cpu = jax.devices("cpu")[0]
    state = {"params": {k: jax.device_put(np.ascontiguousarray(v, np.float32), cpu) for k, v in native.items()}}
    state["velocity"] = jax.tree.map(jnp.zeros_like, state["params"])
    state["loss"] = None
    x = jax.device_put(np.ascontiguousarray(images, np.float32).transpose(0, 2, 3, 1), cpu)  # NCHW -> NHWC, once
    y = jax.device_put(labels.astype(np.int32), cpu)

    def step() -> None:
        state["params"], state["velocity"], state["loss"] = train_step(state["params"], state["velocity"], x, y)

    def synchronize() -> None:
        if state["loss"] is not None:
            state["loss"].block_until_ready()
    step.synchronize = synchronize
    return step
