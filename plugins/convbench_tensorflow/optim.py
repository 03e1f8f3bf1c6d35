"""torch.optim.SGD's update (coupled L2 weight decay, momentum without dampening) and fp16 loss scaling.

Keras's SGD keeps v = m*v - lr*g and decouples weight decay, so it is not used. TF's fused
ResourceApplyMomentum computes exactly torch's form: v = m*v + g'; w -= lr*v, with g' = g + wd*w
(and v starting at 0, the first step's v is g', as torch's).

Updates go through the variables' handles, so under MirroredStrategy each replica updates its own copy
(with gradients all-reduced beforehand, every copy gets the same update).
"""
from __future__ import annotations

import tensorflow as tf


class SGD:
    def __init__(self, variables: list[tf.Variable], momentum: float, weight_decay: float) -> None:
        self.variables = variables
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.buffers = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]

    def apply(self, grads: list[tf.Tensor | None], lr: tf.Tensor, finite: tf.Tensor | None = None) -> None:
        """One update at learning rate ``lr`` (a float32 scalar tensor, so new values do not retrace).

        ``finite`` (fp16 loss scaling): a scalar bool on the device; where it is False the same ops run with
        gradient 0, momentum 1 and learning rate 0, so every variable and buffer keeps its value exactly
        (v = 1*v + 0; w -= 0*v). The decision stays on the device, as JAX's and torch's fused SGD's: a tf.cond
        would send the predicate to the host every step."""
        momentum = tf.constant(self.momentum, tf.float32)
        if finite is not None:
            lr = tf.where(finite, lr, tf.zeros_like(lr))
            momentum = tf.where(finite, momentum, tf.ones_like(momentum))
        for var, buf, grad in zip(self.variables, self.buffers, grads):
            if grad is None:  # like torch: a parameter without a gradient is not touched
                continue
            if self.weight_decay:
                grad = grad + self.weight_decay * var
            if finite is not None:
                grad = tf.where(finite, grad, tf.zeros_like(grad))
            if self.momentum:
                tf.raw_ops.ResourceApplyMomentum(var=var.handle, accum=buf.handle, lr=lr, grad=grad,
                                                 momentum=momentum, use_locking=False, use_nesterov=False)
            else:
                tf.raw_ops.AssignSubVariableOp(resource=var.handle, value=lr * grad)


class LossScaler:
    """Dynamic loss scaling as torch.cuda.amp.GradScaler's defaults: start at 2^16, halve and skip the
    step on non-finite gradients, double after 2000 finite steps in a row."""

    def __init__(self, init: float = 2.0**16, growth_interval: int = 2000) -> None:
        # ONLY_FIRST_REPLICA: under MirroredStrategy every replica computes the same new values (from
        # all-reduced gradients); the first replica's is written to every copy
        first = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.scale = tf.Variable(init, trainable=False, dtype=tf.float32, aggregation=first)
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, aggregation=first)
        self.growth_interval = growth_interval

    def unscale(self, grads: list[tf.Tensor | None]) -> tuple[list[tf.Tensor | None], tf.Tensor]:
        """(gradients divided by the scale, whether all of them are finite)."""
        inv = 1.0 / self.scale
        out = [None if g is None else g * inv for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in out if g is not None])
        return out, finite

    def update(self, finite: tf.Tensor) -> None:
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.growth_interval)
        self.scale.assign(tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale), self.scale * 0.5))
        self.good_steps.assign(tf.where(finite & ~grow, self.good_steps + 1, tf.zeros_like(self.good_steps)))
