"""vgg16, resnet32 and googlenet the torchvision way: nn.Module classes, nn.Sequential, inplace ReLU, NCHW,
torch.optim.SGD, eval under torch.inference_mode (as torchvision's references/classification/train.py).

Numerics as convbench's definition: BatchNorm2d/1d defaults are PyTorch's (momentum 0.1, eps 1e-5, unbiased
running variance); GoogLeNet's 3/2 max pools use ceil_mode=True (as torchvision's GoogLeNet), which turns
32 -> 16 -> 8 -> 4 (floor mode would give 15, 7, 3); VGG's 2/2 pools see even sizes, where floor = ceil,
so they are plain. Initial weights are PyTorch's defaults (timing does not depend on them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import (
    AUX_WEIGHT,
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
    in_channels,
    random_batch,
)


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class VGG(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for channels, rates in VGG_BLOCKS:
            for rate in rates:
                layers += conv_bn_relu(cin, channels)
                if rate:
                    layers.append(nn.Dropout(rate))
                cin = channels
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(512, 512), nn.Linear(512, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:  # 1x1 conv + BN projection where the shape changes
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        stages, cin = [], 16
        for s, channels in enumerate(RESNET_STAGES):
            blocks = []
            for b in range(RESNET_BLOCKS):
                blocks.append(BasicBlock(cin, channels, 2 if s > 0 and b == 0 else 1))
                cin = channels
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def conv_relu(cin: int, cout: int, k: int, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=padding), nn.ReLU(inplace=True))


class Inception(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        cin = in_channels(name)
        c1, r3, c3, r5, c5, pp = INCEPTION[name]
        self.branch1 = conv_relu(cin, c1, 1)
        self.branch2 = nn.Sequential(conv_relu(cin, r3, 1), conv_relu(r3, c3, 3, 1))
        self.branch3 = nn.Sequential(conv_relu(cin, r5, 1), conv_relu(r5, c5, 5, 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_relu(cin, pp, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, 3)               # 8x8 -> 2x2
        self.conv = conv_relu(cin, 128, 1)
        self.fc1 = nn.Linear(128 * 2 * 2, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        x = F.dropout(F.relu(self.fc1(x), inplace=True), 0.7, training=self.training)
        return self.fc2(x)


class GoogLeNet(nn.Module):
    """GoogLeNet v1 with the CIFAR stem; in training mode forward returns (logits, aux1, aux2)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_relu(3, 64, 3, 1), conv_relu(64, 64, 1), conv_relu(64, 192, 3, 1),
                                  nn.MaxPool2d(3, 2, ceil_mode=True))
        self.inception3 = nn.Sequential(Inception("3a"), Inception("3b"), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.inception4a = Inception("4a")
        self.aux1 = InceptionAux(512, num_classes)
        self.inception4bcd = nn.Sequential(Inception("4b"), Inception("4c"), Inception("4d"))
        self.aux2 = InceptionAux(528, num_classes)
        self.inception4e = nn.Sequential(Inception("4e"), nn.MaxPool2d(3, 2, ceil_mode=True))
        self.inception5 = nn.Sequential(Inception("5a"), Inception("5b"))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        x = self.inception4a(self.inception3(self.stem(x)))
        aux1 = self.aux1(x) if self.training else None
        x = self.inception4bcd(x)
        aux2 = self.aux2(x) if self.training else None
        x = self.inception5(self.inception4e(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (x, aux1, aux2) if self.training else x


NETS = {"vgg16": VGG, "resnet32": ResNet, "googlenet": GoogLeNet}


def make(model_name: str, batch_size: int, seed: int = 0, device: str = "cpu") -> Reference:
    check_model(model_name)
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = NETS[model_name]().to(dev)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    criterion = nn.CrossEntropyLoss()
    images, labels = random_batch(batch_size, seed)
    x, y = torch.from_numpy(images).to(dev), torch.from_numpy(labels).to(dev)

    def train_step() -> torch.Tensor:
        if not model.training:
            model.train()
        out = model(x)
        if isinstance(out, tuple):  # GoogLeNet in training: main head plus two auxiliary heads
            main, aux1, aux2 = out
            loss = criterion(main, y) + AUX_WEIGHT * (criterion(aux1, y) + criterion(aux2, y))
        else:
            loss = criterion(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    def forward() -> torch.Tensor:
        if model.training:
            model.eval()
        with torch.inference_mode():
            return model(x)

    def synchronize() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Reference("torch", model_name, batch_size, params, {"eager": Variant(forward, train_step)}, synchronize)
