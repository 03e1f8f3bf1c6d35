"""vgg16, resnet32 and googlenet in plain JAX (no flax/optax): pure functions over a parameter dict, jax.lax
convolutions and reduce_window pooling in NHWC, one jax.jit'ed train step with a hand-written SGD-momentum update.

A model is one Python function ``net(layers, x) -> (logits, aux_logits)`` written against ``Layers``, which owns
the parameters: ``init`` traces the function once under ``jax.eval_shape`` to learn every parameter's shape
(nothing is computed), then draws He-normal weights; at run time ``Layers`` reads parameters and collects the
new batch-norm statistics. Numerics as convbench's definition: PyTorch's SGD (v = m v + g + wd w; w -= lr v), batch
norm with momentum 0.1, eps 1e-5 and the unbiased batch variance in the running variance, inverted dropout, 3x3
pools with padding "SAME" (at the even sizes here that is exactly ceil mode for the 3/2 pools and pad 1 for the
3/1 ones), explicit symmetric padding for the other convolutions. Only the flatten order (NHWC) differs.

jax dispatches asynchronously: ``train_step`` and ``forward`` return at once; ``synchronize`` blocks on every
output dispatched since the last call (one per step in a timed loop).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import (
    AUX_WEIGHT,
    BN_EPS,
    BN_MOMENTUM,
    INCEPTION,
    LR,
    MOMENTUM,
    NUM_CLASSES,
    RESNET_BLOCKS,
    RESNET_STAGES,
    VGG_BLOCKS,
    WEIGHT_DECAY,
    Reference,
    Variant,
    check_model,
    random_batch,
)

Params = dict[str, jax.Array]
DIMS = ("NHWC", "HWIO", "NHWC")


class Layers:
    """Parameter lookup (or, in shape mode, creation) plus the layer functions the networks are written with."""

    def __init__(self, params: Params, stats: Params, train: bool, key: jax.Array | None = None,
                 shapes: dict[str, tuple[tuple[int, ...], str]] | None = None) -> None:
        self.params, self.stats, self.train, self.key = params, stats, train, key
        self.shapes = shapes          # shape mode: name -> (shape, initialiser)
        self.new_stats: Params = {}
        self.dropouts = 0

    def param(self, name: str, shape: tuple[int, ...], init: str) -> jax.Array:
        if self.shapes is not None:
            self.shapes[name] = (shape, init)
            return jnp.ones(shape, jnp.float32) if init in ("ones", "var") else jnp.zeros(shape, jnp.float32)
        return self.params[name] if init not in ("mean", "var") else self.stats[name]

    def conv(self, name: str, x: jax.Array, out: int, k: int, stride: int = 1, pad: int = 0,
             bias: bool = True) -> jax.Array:
        w = self.param(f"{name}.w", (k, k, x.shape[-1], out), "he")
        x = lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)), dimension_numbers=DIMS)
        return x + self.param(f"{name}.b", (out,), "zeros") if bias else x

    def dense(self, name: str, x: jax.Array, out: int) -> jax.Array:
        return x @ self.param(f"{name}.w", (x.shape[-1], out), "he") + self.param(f"{name}.b", (out,), "zeros")

    def batch_norm(self, name: str, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        gamma, beta = self.param(f"{name}.gamma", (c,), "ones"), self.param(f"{name}.beta", (c,), "zeros")
        mean, var = self.param(f"{name}.mean", (c,), "mean"), self.param(f"{name}.var", (c,), "var")
        if self.train:
            axes = tuple(range(x.ndim - 1))
            n = x.size // c
            mean_b, var_b = jnp.mean(x, axes), jnp.var(x, axes)
            self.new_stats[f"{name}.mean"] = (1 - BN_MOMENTUM) * mean + BN_MOMENTUM * mean_b
            self.new_stats[f"{name}.var"] = (1 - BN_MOMENTUM) * var + BN_MOMENTUM * var_b * (n / (n - 1))
            mean, var = mean_b, var_b
        return (x - mean) * (gamma * lax.rsqrt(var + BN_EPS)) + beta

    def dropout(self, x: jax.Array, rate: float) -> jax.Array:
        if not self.train or not rate:
            return x
        self.dropouts += 1
        keep = jax.random.bernoulli(jax.random.fold_in(self.key, self.dropouts), 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), 0.0)

    def conv_bn(self, name: str, x: jax.Array, out: int, k: int, stride: int = 1, relu: bool = True) -> jax.Array:
        x = self.batch_norm(f"{name}.bn", self.conv(name, x, out, k, stride, k // 2, bias=False))
        return jax.nn.relu(x) if relu else x

    def conv_relu(self, name: str, x: jax.Array, out: int, k: int) -> jax.Array:
        return jax.nn.relu(self.conv(name, x, out, k, 1, k // 2))


def max_pool(x: jax.Array, k: int, stride: int, padding: str) -> jax.Array:
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, stride, stride, 1), padding)


def vgg16(nn: Layers, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    for b, (channels, rates) in enumerate(VGG_BLOCKS):
        for i, rate in enumerate(rates):
            x = nn.dropout(nn.conv_bn(f"block{b}.conv{i}", x, channels, 3), rate)
        x = max_pool(x, 2, 2, "VALID")
    x = nn.dropout(x.reshape(x.shape[0], -1), 0.5)
    x = nn.dropout(jax.nn.relu(nn.batch_norm("bn1", nn.dense("fc1", x, 512))), 0.5)
    return nn.dense("fc3", nn.dense("fc2", x, 512), NUM_CLASSES), []


def resnet32(nn: Layers, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    x = nn.conv_bn("stem", x, 16, 3)
    for s, channels in enumerate(RESNET_STAGES):
        for b in range(RESNET_BLOCKS):
            name, stride = f"stage{s}.block{b}", 2 if s > 0 and b == 0 else 1
            y = nn.conv_bn(f"{name}.conv1", x, channels, 3, stride)
            y = nn.conv_bn(f"{name}.conv2", y, channels, 3, relu=False)
            if stride != 1 or x.shape[-1] != channels:  # 1x1 conv + BN projection where the shape changes
                x = nn.conv_bn(f"{name}.proj", x, channels, 1, stride, relu=False)
            x = jax.nn.relu(y + x)
    return nn.dense("fc", x.mean(axis=(1, 2)), NUM_CLASSES), []


def inception(nn: Layers, name: str, x: jax.Array) -> jax.Array:
    c1, r3, c3, r5, c5, pp = INCEPTION[name]
    b1 = nn.conv_relu(f"{name}.b1", x, c1, 1)
    b2 = nn.conv_relu(f"{name}.b2", nn.conv_relu(f"{name}.b2r", x, r3, 1), c3, 3)
    b3 = nn.conv_relu(f"{name}.b3", nn.conv_relu(f"{name}.b3r", x, r5, 1), c5, 5)
    b4 = nn.conv_relu(f"{name}.b4", max_pool(x, 3, 1, "SAME"), pp, 1)
    return jnp.concatenate([b1, b2, b3, b4], axis=-1)


def aux_head(nn: Layers, name: str, x: jax.Array) -> jax.Array:
    x = lax.reduce_window(x, 0.0, lax.add, (1, 5, 5, 1), (1, 3, 3, 1), "VALID") / 25.0  # 8x8 -> 2x2
    x = nn.conv_relu(f"{name}.conv", x, 128, 1)
    x = nn.dropout(jax.nn.relu(nn.dense(f"{name}.fc1", x.reshape(x.shape[0], -1), 1024)), 0.7)
    return nn.dense(f"{name}.fc2", x, NUM_CLASSES)


def googlenet(nn: Layers, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    x = nn.conv_relu("stem.conv3", nn.conv_relu("stem.conv2", nn.conv_relu("stem.conv1", x, 64, 3), 64, 1), 192, 3)
    x = max_pool(x, 3, 2, "SAME")          # = ceil mode here: 32 -> 16
    x = max_pool(inception(nn, "3b", inception(nn, "3a", x)), 3, 2, "SAME")
    x = inception(nn, "4a", x)
    aux = [aux_head(nn, "aux1", x)] if nn.train else []
    for name in ("4b", "4c", "4d"):
        x = inception(nn, name, x)
    aux += [aux_head(nn, "aux2", x)] if nn.train else []
    x = max_pool(inception(nn, "4e", x), 3, 2, "SAME")
    x = inception(nn, "5b", inception(nn, "5a", x))
    return nn.dense("fc", nn.dropout(x.mean(axis=(1, 2)), 0.4), NUM_CLASSES), aux


NETS: dict[str, Callable[[Layers, jax.Array], tuple[jax.Array, list[jax.Array]]]] = {
    "vgg16": vgg16, "resnet32": resnet32, "googlenet": googlenet}


def init(net: Callable, seed: int, device: Any) -> tuple[Params, Params]:  # type: ignore[type-arg]
    shapes: dict[str, tuple[tuple[int, ...], str]] = {}
    layers = Layers({}, {}, train=True, key=jax.random.key(0), shapes=shapes)
    jax.eval_shape(lambda x: net(layers, x)[0], jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32))
    rng = np.random.default_rng(seed)
    params, stats = {}, {}
    for name, (shape, kind) in shapes.items():
        if kind == "he":  # He-normal on the fan-in: every dimension but the output one
            value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
        else:
            value = np.ones(shape) if kind in ("ones", "var") else np.zeros(shape)
        (stats if kind in ("mean", "var") else params)[name] = jax.device_put(value.astype(np.float32), device)
    return params, stats


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1).mean()


def make(model_name: str, batch_size: int, seed: int = 0, device: str = "cpu") -> Reference:
    check_model(model_name)
    net = NETS[model_name]
    kind, _, index = device.partition(":")
    dev = jax.devices("cpu" if kind == "cpu" else "gpu")[int(index or 0)]

    def loss_fn(params: Params, stats: Params, key: jax.Array, x: jax.Array, y: jax.Array):  # type: ignore[no-untyped-def]
        layers = Layers(params, stats, train=True, key=key)
        logits, aux = net(layers, x)
        loss = cross_entropy(logits, y) + sum(AUX_WEIGHT * cross_entropy(a, y) for a in aux)
        return loss, layers.new_stats

    @jax.jit
    def forward(params: Params, stats: Params, x: jax.Array) -> jax.Array:
        return net(Layers(params, stats, train=False), x)[0]

    def train_step(params: Params, velocity: Params, stats: Params, key: jax.Array, x: jax.Array, y: jax.Array):  # type: ignore[no-untyped-def]
        key, dropout_key = jax.random.split(key)
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, dropout_key, x, y)
        # PyTorch's SGD: v = m v + (g + wd w); w -= lr v
        velocity = jax.tree.map(lambda v, g, w: MOMENTUM * v + (g + WEIGHT_DECAY * w), velocity, grads, params)
        params = jax.tree.map(lambda w, v: w - LR * v, params, velocity)
        return params, velocity, stats, key, loss

    train_step_jit = jax.jit(train_step, donate_argnums=(0, 1, 2))  # params, velocity and statistics are replaced
    params, stats = init(net, seed, dev)
    state: dict[str, Any] = {"params": params, "stats": stats, "velocity": jax.tree.map(jnp.zeros_like, params),
                             "key": jax.device_put(jax.random.key(seed), dev), "pending": []}
    images, labels = random_batch(batch_size, seed)
    x = jax.device_put(images.transpose(0, 2, 3, 1), dev)  # NCHW -> NHWC, once
    y = jax.device_put(labels.astype(np.int32), dev)

    def run_train() -> jax.Array:
        s = state
        s["params"], s["velocity"], s["stats"], s["key"], loss = train_step_jit(
            s["params"], s["velocity"], s["stats"], s["key"], x, y)
        s["pending"].append(loss)
        return loss

    def run_forward() -> jax.Array:
        logits = forward(state["params"], state["stats"], x)
        state["pending"].append(logits)
        return logits

    def synchronize() -> None:
        jax.block_until_ready(state["pending"])
        state["pending"] = []

    n_params = sum(int(np.prod(p.shape)) for p in params.values())
    return Reference("jax", model_name, batch_size, n_params, {"jax.jit": Variant(run_forward, run_train)}, synchronize)
