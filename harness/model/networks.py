"""The built-in networks, each defined once in the framework-neutral graph (docs/articles.md, 'The networks').

Registered as the built-in plugin "models" (``harness.plugin_manager.BUILTIN``); a third-party model plugin
implements the same hook and registers through the ``convbench`` entry-point group.
"""
from __future__ import annotations

from harness import hookimpl
from harness.model.graph import (
    LRN,
    Aux,
    AvgPool,
    BatchNorm,
    Concat,
    Conv,
    Dropout,
    Flatten,
    GlobalAvgPool,
    Linear,
    MaxPool,
    ModelDef,
    Node,
    ReLU,
    Residual,
    Seq,
)

CIFAR = (3, 32, 32)
IMAGENET = (3, 224, 224)


def seq(name: str, *nodes: Node) -> Seq:
    return Seq(name, tuple(nodes))


def conv_relu(name: str, out: int, k: int, stride: int = 1, pad: int = 0) -> Seq:
    return seq(name, Conv("conv", out, k, stride, pad), ReLU("relu"))


def conv_bn(name: str, out: int, k: int, stride: int = 1, pad: int = 0, relu: bool = True) -> Seq:
    """Convolution without bias (the batch norm's shift replaces it), batch norm, optional ReLU."""
    nodes: list[Node] = [Conv("conv", out, k, stride, pad, bias=False), BatchNorm("bn")]
    if relu:
        nodes.append(ReLU("relu"))
    return seq(name, *nodes)


def fc_relu_drop(name: str, out: int, rate: float) -> Seq:
    return seq(name, Linear("fc", out), ReLU("relu"), Dropout("drop", rate))


def simple_cnn() -> ModelDef:
    body = seq("net",
               conv_relu("conv1", 20, 5), MaxPool("pool1", 2, 2, ceil_mode=True),
               conv_relu("conv2", 50, 5), MaxPool("pool2", 2, 2, ceil_mode=True),
               Flatten("flatten"), Linear("fc1", 512), ReLU("relu"), Linear("fc2", 10))
    return ModelDef("simple_cnn", CIFAR, 10, body,
                    "2 conv + 2 fc (docs/articles.md); ReLU on fc 512, not the original's softmax slip")


def lenet5() -> ModelDef:
    body = seq("net",
               conv_relu("conv1", 6, 5), MaxPool("pool1", 2, 2, ceil_mode=True),
               conv_relu("conv2", 16, 5), MaxPool("pool2", 2, 2, ceil_mode=True),
               Flatten("flatten"), Linear("fc1", 120), ReLU("relu1"), Linear("fc2", 84), ReLU("relu2"),
               Linear("fc3", 10))
    return ModelDef("lenet5", CIFAR, 10, body, "classic LeNet-5 for 3x32x32, ReLU, max pooling (docs/articles.md)")


def _alexnet(name: str, shape: tuple[int, int, int], classes: int, lrn: bool,
             stem: tuple[int, int, int], desc: str) -> ModelDef:
    k1, s1, p1 = stem
    norm = (lambda n: [LRN(n, 5, 1e-4, 0.75, 1.0)]) if lrn else (lambda n: [])
    body = seq("net",
               conv_relu("conv1", 96, k1, s1, p1), *norm("lrn1"), MaxPool("pool1", 3, 2, ceil_mode=True),
               conv_relu("conv2", 256, 5, 1, 2), *norm("lrn2"), MaxPool("pool2", 3, 2, ceil_mode=True),
               conv_relu("conv3", 384, 3, 1, 1), conv_relu("conv4", 384, 3, 1, 1),
               conv_relu("conv5", 256, 3, 1, 1), MaxPool("pool5", 3, 2, ceil_mode=True),
               Flatten("flatten"), fc_relu_drop("fc6", 4096, 0.5), fc_relu_drop("fc7", 4096, 0.5),
               Linear("fc8", classes))
    return ModelDef(name, shape, classes, body, desc)


def alexnet(lrn: bool = False) -> ModelDef:
    stem_note = "CIFAR stem: conv1 5x5 stride 1 pad 2 (the 11x11/4 stem collapses a 32x32 input)"
    return _alexnet("alexnet_lrn" if lrn else "alexnet", CIFAR, 10, lrn, (5, 1, 2),
                    f"AlexNet 96-256-384-384-256, fc 4096-4096{', LRN' if lrn else ''}; {stem_note}")


def alexnet_imagenet() -> ModelDef:
    return _alexnet("alexnet_imagenet", IMAGENET, 1000, True, (11, 4, 1),
                    "the articles' AlexNet as written: conv1 11x11/4 pad 1, LRN, ceil-mode pools (6x6x256 into fc6)")


VGG_CIFAR_BLOCKS = ((64, (0.3, 0.0)), (128, (0.4, 0.0)), (256, (0.4, 0.4, 0.0)),
                    (512, (0.4, 0.4, 0.0)), (512, (0.4, 0.4, 0.0)))


def vgg16() -> ModelDef:
    blocks: list[Node] = []
    for b, (channels, rates) in enumerate(VGG_CIFAR_BLOCKS, 1):
        layers: list[Node] = []
        for i, rate in enumerate(rates, 1):
            layers.append(conv_bn(f"conv{i}", channels, 3, 1, 1))
            if rate:
                layers.append(Dropout(f"drop{i}", rate))
        layers.append(MaxPool("pool", 2, 2, ceil_mode=True))
        blocks.append(seq(f"block{b}", *layers))
    head = seq("head", Flatten("flatten"), Dropout("drop1", 0.5), Linear("fc1", 512), BatchNorm("bn1"),
               ReLU("relu1"), Dropout("drop2", 0.5), Linear("fc2", 512), Linear("fc3", 10))
    return ModelDef("vgg16", CIFAR, 10, seq("net", *blocks, head),
                    "VGG-16 with batch norm and dropout for CIFAR (the articles' Paddle VGG, the Paddle book's vgg_bn_drop)")


def _vgg_imagenet(name: str, convs_per_block: tuple[int, ...]) -> ModelDef:
    blocks: list[Node] = []
    for b, (channels, n) in enumerate(zip((64, 128, 256, 512, 512), convs_per_block), 1):
        convs = [conv_relu(f"conv{i}", channels, 3, 1, 1) for i in range(1, n + 1)]
        blocks.append(seq(f"block{b}", *convs, MaxPool("pool", 2, 2)))
    head = seq("head", Flatten("flatten"), fc_relu_drop("fc6", 4096, 0.5), fc_relu_drop("fc7", 4096, 0.5),
               Linear("fc8", 1000))
    depth = sum(convs_per_block) + 3
    return ModelDef(name, IMAGENET, 1000, seq("net", *blocks, head),
                    f"VGG-{depth} (configuration {'D' if depth == 16 else 'E'}), as in the timing article")


def vgg16_imagenet() -> ModelDef:
    return _vgg_imagenet("vgg16_imagenet", (2, 2, 3, 3, 3))


def vgg19_imagenet() -> ModelDef:
    return _vgg_imagenet("vgg19_imagenet", (2, 2, 4, 4, 4))


INCEPTION = {  # name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
    "inc3a": (64, 96, 128, 16, 32, 32), "inc3b": (128, 128, 192, 32, 96, 64),
    "inc4a": (192, 96, 208, 16, 48, 64), "inc4b": (160, 112, 224, 24, 64, 64),
    "inc4c": (128, 128, 256, 24, 64, 64), "inc4d": (112, 144, 288, 32, 64, 64),
    "inc4e": (256, 160, 320, 32, 128, 128), "inc5a": (256, 160, 320, 32, 128, 128),
    "inc5b": (384, 192, 384, 48, 128, 128),
}


def inception(name: str) -> Concat:
    c1, r3, c3, r5, c5, pp = INCEPTION[name]
    return Concat(name, (
        seq("b1", conv_relu("conv", c1, 1)),
        seq("b2", conv_relu("reduce", r3, 1), conv_relu("conv", c3, 3, 1, 1)),
        seq("b3", conv_relu("reduce", r5, 1), conv_relu("conv", c5, 5, 1, 2)),
        seq("b4", MaxPool("pool", 3, 1, 1), conv_relu("proj", pp, 1)),
    ))


def aux_head(name: str, classes: int) -> Aux:
    head = seq("head", AvgPool("pool", 5, 3), conv_relu("conv", 128, 1), Flatten("flatten"),
               fc_relu_drop("fc1", 1024, 0.7), Linear("fc2", classes))
    return Aux(name, head, 0.3)


def _googlenet(name: str, shape: tuple[int, int, int], classes: int, stem: Seq, desc: str) -> ModelDef:
    def pool(n: str) -> MaxPool:
        return MaxPool(n, 3, 2, ceil_mode=True)
    body = seq("net", stem, inception("inc3a"), inception("inc3b"), pool("pool3"),
               inception("inc4a"), aux_head("aux1", classes), inception("inc4b"), inception("inc4c"),
               inception("inc4d"), aux_head("aux2", classes), inception("inc4e"), pool("pool4"),
               inception("inc5a"), inception("inc5b"),
               GlobalAvgPool("gap"), Dropout("drop", 0.4), Linear("fc", classes))
    return ModelDef(name, shape, classes, body, desc)


def googlenet() -> ModelDef:
    stem = seq("stem", conv_relu("conv1", 64, 3, 1, 1), conv_relu("conv2", 64, 1),
               conv_relu("conv3", 192, 3, 1, 1), MaxPool("pool", 3, 2, ceil_mode=True))
    return _googlenet("googlenet", CIFAR, 10, stem,
                      "GoogLeNet v1 with two auxiliary heads; CIFAR stem: conv3x3x64, conv1x1x64, conv3x3x192, "
                      "maxpool 3/2 (32 -> 16, so inception 3/4/5 run at 16/8/4 and the aux heads pool 8 -> 2)")


def googlenet_imagenet() -> ModelDef:
    stem = seq("stem", conv_relu("conv1", 64, 7, 2, 3), MaxPool("pool1", 3, 2, ceil_mode=True),
               conv_relu("conv2", 64, 1), conv_relu("conv3", 192, 3, 1, 1), MaxPool("pool2", 3, 2, ceil_mode=True))
    return _googlenet("googlenet_imagenet", IMAGENET, 1000, stem,
                      "GoogLeNet v1 (the articles' Inception v1) with two auxiliary heads, no LRN")


def resnet_cifar(depth: int) -> ModelDef:
    if (depth - 2) % 6:
        raise ValueError("CIFAR ResNet depth must be 6n + 2")
    n = (depth - 2) // 6
    stages: list[Node] = [conv_bn("stem", 16, 3, 1, 1)]
    in_ch = 16
    for s, ch in enumerate((16, 32, 64), 1):
        blocks: list[Node] = []
        for b in range(n):
            stride = 2 if (s > 1 and b == 0) else 1
            body = seq("body", conv_bn("conv1", ch, 3, stride, 1), conv_bn("conv2", ch, 3, 1, 1, relu=False))
            keep = stride == 1 and in_ch == ch
            short = seq("shortcut") if keep else seq("shortcut", conv_bn("proj", ch, 1, stride, 0, relu=False))
            blocks += [Residual(f"block{b}", body, short), ReLU(f"relu{b}")]
            in_ch = ch
        stages.append(seq(f"stage{s}", *blocks))
    body = seq("net", *stages, GlobalAvgPool("gap"), Linear("fc", 10))
    return ModelDef(f"resnet{depth}", CIFAR, 10, body,
                    f"ResNet-{depth} for CIFAR (He et al. 4.2, n={n}); 1x1 conv + BN projection shortcut where "
                    "the shape changes, as the PaddlePaddle book's resnet_cifar10")


BUILTIN = (simple_cnn, lenet5, lambda: alexnet(False), lambda: alexnet(True), vgg16, googlenet,
           lambda: resnet_cifar(32), alexnet_imagenet, vgg16_imagenet, vgg19_imagenet, googlenet_imagenet)


@hookimpl
def convbench_add_models(registry) -> None:  # type: ignore[no-untyped-def]
    for make in BUILTIN:
        model = make()
        registry.add(model.name, model)
