"""LeNet-5 in plain torch: nn.Sequential, torch.optim.SGD, nothing of convbench's."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def make(weights: dict[str, np.ndarray], images: np.ndarray, labels: np.ndarray):
    net = nn.Sequential(nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2, ceil_mode=True),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2, ceil_mode=True), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    names = ["conv1.conv", "conv2.conv", "fc1", "fc2", "fc3"]
    layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for name, layer in zip(names, layers):
            layer.weight.copy_(torch.from_numpy(weights[f"{name}.weight"]))
            layer.bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=2e-4)
    x, y = torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
    net.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return step
