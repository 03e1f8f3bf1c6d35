"""LeNet-5 in plain paddle dygraph: nn.Sequential, paddle.optimizer.Momentum, nothing of convbench's."""
from __future__ import annotations

import numpy as np
import paddle
from paddle import nn


def make(weights: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray):
    net = nn.Sequential(nn.Conv2D(3, 6, 5), nn.ReLU(), nn.MaxPool2D(2, 2, ceil_mode=True),
                        nn.Conv2D(6, 16, 5), nn.ReLU(), nn.MaxPool2D(2, 2, ceil_mode=True), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    names = ["conv1.conv", "conv2.conv", "fc1", "fc2", "fc3"]
    layers = [m for m in net if isinstance(m, (nn.Conv2D, nn.Linear))]
    for name, layer in zip(names, layers):
        w = np.asarray(weights[f"{name}.weight"], np.float32)
        layer.weight.set_value(w.T if isinstance(layer, nn.Linear) else w)  # paddle's Linear weight is (in, out)
        layer.bias.set_value(np.asarray(weights[f"{name}.bias"], np.float32))
    # paddle's momentum op with L2Decay: v = 0.9 v + (g + 2e-4 w); w -= lr v, i.e. torch's SGD
    opt = paddle.optimizer.Momentum(learning_rate=1e-3, momentum=0.9, parameters=net.parameters(),
                                    use_nesterov=False, weight_decay=paddle.regularizer.L2Decay(2e-4))
    x, y = paddle.to_tensor(np.ascontiguousarray(images, np.float32)), paddle.to_tensor(labels.astype(np.int64))
    net.train()

    def step() -> None:
        opt.clear_grad(set_to_zero=False)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return step
