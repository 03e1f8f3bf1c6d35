"""The SGD update of every paddle step, the whole network's (model.py) and one layer's alone (layer_cell.py)."""
from __future__ import annotations

import paddle

from harness.settings import BuildSettings


class Sgd:
    """Paddle's Momentum optimiser as convbench's SGD: v = m * v + (g + wd * w); w -= lr * v, i.e. torch's SGD with
    dampening 0. The learning rate is written (a device tensor) only when it changes; with ``scaler`` (fp16's
    GradScaler) the step unscales the gradients and skips an overflowing update."""

    def __init__(self, params: list[paddle.Tensor], settings: BuildSettings,
                 scaler: paddle.amp.GradScaler | None = None) -> None:
        wd = settings.weight_decay
        self.optimizer = paddle.optimizer.Momentum(
            learning_rate=0.0, momentum=settings.momentum, parameters=params,
            use_nesterov=False, weight_decay=paddle.regularizer.L2Decay(wd) if wd else None)
        self.scaler = scaler
        self.lr: float | None = None

    def clear(self) -> None:
        """Drops the gradients (set to None, not zeroed), before a step's backward pass."""
        self.optimizer.clear_grad(set_to_zero=False)

    def backward(self, loss: paddle.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, lr: float) -> None:
        if lr != self.lr:
            self.optimizer.set_lr(float(lr))
            self.lr = lr
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
