"""vgg16, resnet32 and googlenet the PaddlePaddle way: paddle.nn.Layer classes as in paddle.vision.models, NCHW,
paddle.optimizer.Momentum with weight_decay (L2Decay on the gradient, as PyTorch), F.cross_entropy.

Two variants, each on its own model and optimizer: ``dygraph`` (eager) and ``to_static`` (the model wrapped by
``paddle.jit.to_static`` with its defaults, trained with the usual backward / step / clear_grad; forward under
``paddle.no_grad``). Numerics as convbench's definition: BatchNorm2D/1D defaults are momentum 0.9, eps 1e-5 (PyTorch's
0.1 in Paddle's convention); nn.Dropout's default mode is inverted dropout; GoogLeNet's 3/2 max pools use
ceil_mode=True (32 -> 16 -> 8 -> 4; floor would give 15, 7, 3), VGG's 2/2 pools are plain (floor = ceil at even
sizes). Differences, Paddle's own: the running variance takes the biased batch variance (PyTorch: unbiased),
nn.ReLU has no inplace form, initialisers are Paddle's. paddle.vision.models' GoogLeNet runs its auxiliary heads
at evaluation too and uses floor-mode pools; this one follows the definition (aux heads in training only).
"""
from __future__ import annotations

import paddle
import paddle.nn.functional as F
from paddle import nn

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


def conv_bn_relu(cin: int, cout: int) -> list[nn.Layer]:
    return [nn.Conv2D(cin, cout, 3, padding=1, bias_attr=False), nn.BatchNorm2D(cout), nn.ReLU()]


class VGG(nn.Layer):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        layers: list[nn.Layer] = []
        cin = 3
        for channels, rates in VGG_BLOCKS:
            for rate in rates:
                layers += conv_bn_relu(cin, channels)
                if rate:
                    layers.append(nn.Dropout(rate))
                cin = channels
            layers.append(nn.MaxPool2D(2, 2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(512, 512), nn.BatchNorm1D(512), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(512, 512), nn.Linear(512, num_classes))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.classifier(paddle.flatten(self.features(x), 1))


class BasicBlock(nn.Layer):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(cin, cout, 3, stride, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(cout, cout, 3, 1, 1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(cout)
        self.downsample = None
        if stride != 1 or cin != cout:  # 1x1 conv + BN projection where the shape changes
            self.downsample = nn.Sequential(nn.Conv2D(cin, cout, 1, stride, bias_attr=False), nn.BatchNorm2D(cout))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Layer):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(3, 16, 3, 1, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(16)
        self.relu = nn.ReLU()
        stages, cin = [], 16
        for s, channels in enumerate(RESNET_STAGES):
            blocks = []
            for b in range(RESNET_BLOCKS):
                blocks.append(BasicBlock(cin, channels, 2 if s > 0 and b == 0 else 1))
                cin = channels
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(paddle.flatten(self.avgpool(x), 1))


def conv_relu(cin: int, cout: int, k: int, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2D(cin, cout, k, padding=padding), nn.ReLU())


class Inception(nn.Layer):
    def __init__(self, name: str) -> None:
        super().__init__()
        cin = in_channels(name)
        c1, r3, c3, r5, c5, pp = INCEPTION[name]
        self.branch1 = conv_relu(cin, c1, 1)
        self.branch2 = nn.Sequential(conv_relu(cin, r3, 1), conv_relu(r3, c3, 3, 1))
        self.branch3 = nn.Sequential(conv_relu(cin, r5, 1), conv_relu(r5, c5, 5, 2))
        self.branch4 = nn.Sequential(nn.MaxPool2D(3, 1, 1), conv_relu(cin, pp, 1))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return paddle.concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=1)


class InceptionAux(nn.Layer):
    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2D(5, 3)               # 8x8 -> 2x2
        self.conv = conv_relu(cin, 128, 1)
        self.fc1 = nn.Linear(128 * 2 * 2, 1024)
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = paddle.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x))))


class GoogLeNet(nn.Layer):
    """GoogLeNet v1 with the CIFAR stem; in training mode forward returns (logits, aux1, aux2)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_relu(3, 64, 3, 1), conv_relu(64, 64, 1), conv_relu(64, 192, 3, 1),
                                  nn.MaxPool2D(3, 2, ceil_mode=True))
        self.inception3 = nn.Sequential(Inception("3a"), Inception("3b"), nn.MaxPool2D(3, 2, ceil_mode=True))
        self.inception4a = Inception("4a")
        self.aux1 = InceptionAux(512, num_classes)
        self.inception4bcd = nn.Sequential(Inception("4b"), Inception("4c"), Inception("4d"))
        self.aux2 = InceptionAux(528, num_classes)
        self.inception4e = nn.Sequential(Inception("4e"), nn.MaxPool2D(3, 2, ceil_mode=True))
        self.inception5 = nn.Sequential(Inception("5a"), Inception("5b"))
        self.avgpool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: paddle.Tensor):  # type: ignore[no-untyped-def]
        x = self.inception4a(self.inception3(self.stem(x)))
        if self.training:
            aux1 = self.aux1(x)
        x = self.inception4bcd(x)
        if self.training:
            aux2 = self.aux2(x)
        x = self.inception5(self.inception4e(x))
        x = self.fc(self.dropout(paddle.flatten(self.avgpool(x), 1)))
        if self.training:
            return x, aux1, aux2
        return x


NETS = {"vgg16": VGG, "resnet32": ResNet, "googlenet": GoogLeNet}


def variant(model: nn.Layer, x: paddle.Tensor, y: paddle.Tensor) -> Variant:
    optimizer = paddle.optimizer.Momentum(learning_rate=LR, momentum=MOMENTUM, parameters=model.parameters(),
                                          weight_decay=WEIGHT_DECAY)

    def train_step() -> paddle.Tensor:
        if not model.training:
            model.train()
        out = model(x)
        if isinstance(out, (tuple, list)):  # GoogLeNet in training: main head plus two auxiliary heads
            loss = F.cross_entropy(out[0], y) + AUX_WEIGHT * (F.cross_entropy(out[1], y) + F.cross_entropy(out[2], y))
        else:
            loss = F.cross_entropy(out, y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        return loss

    def forward() -> paddle.Tensor:
        if model.training:
            model.eval()
        with paddle.no_grad():
            return model(x)

    return Variant(forward, train_step)


def make(model_name: str, batch_size: int, seed: int = 0, device: str = "cpu") -> Reference:
    check_model(model_name)
    paddle.set_device("cpu" if device == "cpu" else device.replace("cuda", "gpu"))
    paddle.seed(seed)
    images, labels = random_batch(batch_size, seed)
    x, y = paddle.to_tensor(images), paddle.to_tensor(labels)
    model = NETS[model_name]()
    variants = {"dygraph": variant(model, x, y),
                "to_static": variant(paddle.jit.to_static(NETS[model_name]()), x, y)}

    def synchronize() -> None:  # paddle.device.synchronize raises on CPU builds, where ops finish on return
        if device != "cpu":
            paddle.device.synchronize()

    params = sum(int(p.numel()) for p in model.parameters() if not p.stop_gradient)
    return Reference("paddle", model_name, batch_size, params, variants, synchronize)
