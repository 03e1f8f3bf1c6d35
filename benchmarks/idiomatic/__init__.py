"""Idiomatic references: vgg16, resnet32 and googlenet written the way each framework's own docs and model zoo
write them, independently of convbench's plugins, as a yardstick for convbench's speed (issue 19).

One module per framework (``torch_nets``, ``tensorflow_nets``, ``paddle_nets``, ``jax_nets``), each with
``make(model_name, batch_size, seed=0) -> Reference``. A reference holds a fixed random batch on the device and
one or more variants (ways the framework's users run the same network), each with ``forward()`` (evaluation
mode, no gradients, main head only) and ``train_step()`` (one SGD-momentum step, returns the loss without
waiting for it). Neither waits for the device; ``Reference.synchronize()`` does.

This package imports no framework; import a framework's module only in a process meant for it (TensorFlow and
Paddle segfault in one process).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import numpy as np

MODELS = ("vgg16", "resnet32", "googlenet")
MODULES = {"torch": "torch_nets", "tensorflow": "tensorflow_nets", "paddle": "paddle_nets", "jax": "jax_nets"}

# The recipe of convbench's speed mode: SGD momentum 0.9, L2 weight decay 2e-4, lr 1e-3 so updates stay finite.
LR, MOMENTUM, WEIGHT_DECAY = 1e-3, 0.9, 2e-4
AUX_WEIGHT = 0.3          # each GoogLeNet auxiliary head's cross-entropy, training only
BN_MOMENTUM, BN_EPS = 0.1, 1e-5   # PyTorch's convention (Keras and Paddle count momentum the other way round)
NUM_CLASSES = 10

# The CIFAR VGG with batch norm and dropout (the Paddle book's vgg_bn_drop): channels, dropout after each conv
VGG_BLOCKS = ((64, (0.3, 0.0)), (128, (0.4, 0.0)), (256, (0.4, 0.4, 0.0)), (512, (0.4, 0.4, 0.0)),
              (512, (0.4, 0.4, 0.0)))
RESNET_STAGES = (16, 32, 64)
RESNET_BLOCKS = 5          # ResNet-32 = 6 n + 2 with n = 5
# GoogLeNet v1 inception modules: 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection
INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def in_channels(name: str) -> int:
    """Input channels of an inception module: the previous module's output (the stem's 192 before 3a)."""
    names = list(INCEPTION)
    i = names.index(name)
    if i == 0:
        return 192
    c1, _, c3, _, c5, pp = INCEPTION[names[i - 1]]
    return c1 + c3 + c5 + pp


@dataclass
class Variant:
    forward: Callable[[], Any]      # one evaluation-mode forward pass on the reference's batch
    train_step: Callable[[], Any]   # one training step; returns the loss (a framework scalar, not waited for)


@dataclass
class Reference:
    framework: str
    model: str
    batch_size: int
    params: int                      # trainable parameters as the framework counts them
    variants: dict[str, Variant]     # name -> variant, e.g. "keras.train_on_batch", "tf.function"
    synchronize: Callable[[], None]  # waits until every step dispatched so far has finished


def random_batch(batch_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed batch every reference trains on: NCHW float32 images in [0, 1], int64 labels."""
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, 3, 32, 32), dtype=np.float32)
    return images, rng.integers(0, NUM_CLASSES, batch_size).astype(np.int64)


def load(framework: str) -> ModuleType:
    """The framework's reference module (importing it imports the framework)."""
    return importlib.import_module(f"{__name__}.{MODULES[framework]}")


def check_model(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; the idiomatic references are {', '.join(MODELS)}")
