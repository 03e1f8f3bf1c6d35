"""LeNet-5 in plain TensorFlow: tf.Variables, NHWC, a tf.function train step, nothing of convbench's."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

LR, MOMENTUM, WEIGHT_DECAY = 1e-3, 0.9, 2e-4


def make(weights: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray):
    def var(array: np.ndarray) -> tf.Variable:
        return tf.Variable(np.ascontiguousarray(array, np.float32))

    conv = {n: (var(weights[f"{n}.conv.weight"].transpose(2, 3, 1, 0)), var(weights[f"{n}.conv.bias"]))  # OIHW -> HWIO
            for n in ("conv1", "conv2")}
    # fc1 sees an NHWC flatten here, the portable weight an NCHW one: reorder its input rows (c, h, w) -> (h, w, c)
    fc1 = weights["fc1.weight"].reshape(120, 16, 5, 5).transpose(2, 3, 1, 0).reshape(400, 120)
    dense = [(var(fc1), var(weights["fc1.bias"]))] + [(var(weights[f"{n}.weight"].T), var(weights[f"{n}.bias"]))
                                                       for n in ("fc2", "fc3")]
    params = [v for pair in (*conv.values(), *dense) for v in pair]
    velocity = [tf.Variable(tf.zeros_like(p)) for p in params]
    lr, momentum = tf.constant(LR, tf.float32), tf.constant(MOMENTUM, tf.float32)
    x = tf.transpose(tf.constant(images, tf.float32), [0, 2, 3, 1])  # NCHW -> NHWC, once
    y = tf.constant(labels.astype(np.int64))

    def logits(x: tf.Tensor) -> tf.Tensor:
        for w, b in conv.values():
            x = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "VALID"), b))
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        x = tf.reshape(x, [-1, 400])
        for i, (w, b) in enumerate(dense):
            x = tf.matmul(x, w) + b
            x = tf.nn.relu(x) if i < len(dense) - 1 else x
        return x

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits(x)))
        for w, v, g in zip(params, velocity, tape.gradient(loss, params)):
            # v = m v + (g + wd w); w -= lr v  (torch's SGD)
            tf.raw_ops.ResourceApplyMomentum(var=w.handle, accum=v.handle, lr=lr, grad=g + WEIGHT_DECAY * w,
                                             momentum=momentum, use_locking=False, use_nesterov=False)
        return loss

    def step() -> None:
        train_step(x, y)  # eager dispatch of a tf.function runs synchronously on the CPU
    return step
