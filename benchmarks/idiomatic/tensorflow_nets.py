"""vgg16, resnet32 and googlenet the Keras 3 way: keras.layers (Conv2D padding="same", BatchNormalization,
MaxPooling2D), channels_last, the Sequential API for VGG and the functional API for the others.

Two variants, each on its own model and optimizer, keras.optimizers.SGD(momentum=0.9, weight_decay=2e-4):
- ``keras.train_on_batch``: ``model.compile(optimizer, SparseCategoricalCrossentropy(from_logits=True))`` and
  ``train_on_batch``; forward = ``predict_on_batch``. compile's jit_compile="auto" means no XLA on a CPU-only
  machine (Keras 3 turns it off there) and XLA on a GPU.
- ``tf.function``: a plain ``@tf.function`` step with ``tf.GradientTape`` and ``optimizer.apply_gradients``
  (Keras' guide "writing a training loop from scratch"); forward = ``@tf.function`` around ``model(x, training=False)``.

Where Keras' idiom differs from convbench's definition (none changes shapes, parameters or FLOPs):
- BatchNormalization(momentum=0.9, epsilon=1e-5) is PyTorch's momentum 0.1 / eps 1e-5 in Keras' convention;
  Keras keeps the biased batch variance in its moving variance (PyTorch: unbiased) and computes batch norm
  from moments (not TensorFlow's fused kernel): that is what a Keras user gets.
- SGD's weight_decay is decoupled (w -= lr * wd * w after the momentum update) where PyTorch adds wd * w to
  the gradient before the momentum; Keras' momentum (v = m v - lr g; w += v) equals PyTorch's at a fixed lr.
- Stride-2 3x3 convs (ResNet) use ZeroPadding2D(1) + padding="valid" as keras.applications' ResNet does,
  which gives PyTorch's symmetric padding ("same" would pad 0 on top/left, 1 on bottom/right).
- GoogLeNet's 3/2 max pools use padding="same": at the even sizes here (32, 16, 8) that is exactly ceil mode
  (same windows, output 16, 8, 4). VGG's 2/2 pools use "valid" (floor = ceil at even sizes).
- Flatten is NHWC order (the weights' layout differs, the computation does not). Initialisers are Keras'.
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import layers

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

INPUT_SHAPE = (32, 32, 3)


def batch_norm() -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=1.0 - BN_MOMENTUM, epsilon=BN_EPS)


def vgg16() -> tuple[keras.Model, keras.Model]:
    model = keras.Sequential([keras.Input(INPUT_SHAPE)], name="vgg16")
    for channels, rates in VGG_BLOCKS:
        for rate in rates:
            model.add(layers.Conv2D(channels, 3, padding="same", use_bias=False))
            model.add(batch_norm())
            model.add(layers.ReLU())
            if rate:
                model.add(layers.Dropout(rate))
        model.add(layers.MaxPooling2D(2))
    for layer in (layers.Flatten(), layers.Dropout(0.5), layers.Dense(512), batch_norm(), layers.ReLU(),
                  layers.Dropout(0.5), layers.Dense(512), layers.Dense(NUM_CLASSES)):
        model.add(layer)
    return model, model


def conv_bn(x, filters: int, kernel: int, strides: int = 1, relu: bool = True):  # type: ignore[no-untyped-def]
    if strides > 1 and kernel > 1:  # PyTorch-style symmetric padding, as keras.applications' ResNet
        x = layers.ZeroPadding2D(kernel // 2)(x)
        x = layers.Conv2D(filters, kernel, strides, padding="valid", use_bias=False)(x)
    else:
        x = layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False)(x)
    x = batch_norm()(x)
    return layers.ReLU()(x) if relu else x


def resnet32() -> tuple[keras.Model, keras.Model]:
    inputs = keras.Input(INPUT_SHAPE)
    x = conv_bn(inputs, 16, 3)
    channels_in = 16
    for s, channels in enumerate(RESNET_STAGES):
        for b in range(RESNET_BLOCKS):
            strides = 2 if s > 0 and b == 0 else 1
            y = conv_bn(x, channels, 3, strides)
            y = conv_bn(y, channels, 3, relu=False)
            if strides != 1 or channels_in != channels:  # 1x1 conv + BN projection where the shape changes
                x = conv_bn(x, channels, 1, strides, relu=False)
            x = layers.ReLU()(layers.Add()([y, x]))
            channels_in = channels
    x = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, layers.Dense(NUM_CLASSES)(x), name="resnet32")
    return model, model


def conv_relu(x, filters: int, kernel: int):  # type: ignore[no-untyped-def]
    return layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)


def inception(x, name: str):  # type: ignore[no-untyped-def]
    c1, r3, c3, r5, c5, pp = INCEPTION[name]
    b1 = conv_relu(x, c1, 1)
    b2 = conv_relu(conv_relu(x, r3, 1), c3, 3)
    b3 = conv_relu(conv_relu(x, r5, 1), c5, 5)
    b4 = conv_relu(layers.MaxPooling2D(3, 1, padding="same")(x), pp, 1)
    return layers.Concatenate()([b1, b2, b3, b4])


def aux_head(x):  # type: ignore[no-untyped-def]
    x = layers.AveragePooling2D(5, 3)(x)  # 8x8 -> 2x2
    x = layers.Flatten()(conv_relu(x, 128, 1))
    x = layers.Dropout(0.7)(layers.Dense(1024, activation="relu")(x))
    return layers.Dense(NUM_CLASSES)(x)


def googlenet() -> tuple[keras.Model, keras.Model]:
    """(training model with outputs [main, aux1, aux2], inference model sharing its layers, main head only)."""
    inputs = keras.Input(INPUT_SHAPE)
    x = conv_relu(conv_relu(conv_relu(inputs, 64, 3), 64, 1), 192, 3)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)   # = ceil mode here: 32 -> 16
    x = inception(inception(x, "3a"), "3b")
    x = inception(layers.MaxPooling2D(3, 2, padding="same")(x), "4a")
    aux1 = aux_head(x)
    x = inception(inception(inception(x, "4b"), "4c"), "4d")
    aux2 = aux_head(x)
    x = layers.MaxPooling2D(3, 2, padding="same")(inception(x, "4e"))
    x = inception(inception(x, "5a"), "5b")
    x = layers.Dropout(0.4)(layers.GlobalAveragePooling2D()(x))
    logits = layers.Dense(NUM_CLASSES)(x)
    return keras.Model(inputs, [logits, aux1, aux2], name="googlenet"), keras.Model(inputs, logits)


NETS = {"vgg16": vgg16, "resnet32": resnet32, "googlenet": googlenet}


def optimizer() -> keras.optimizers.Optimizer:
    return keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def keras_variant(model_name: str, x: tf.Tensor, y: tf.Tensor) -> tuple[Variant, keras.Model]:
    model, infer = NETS[model_name]()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if len(model.outputs) > 1:
        model.compile(optimizer=optimizer(), loss=[loss] * 3, loss_weights=[1.0, AUX_WEIGHT, AUX_WEIGHT])
        targets = (y, y, y)
    else:
        model.compile(optimizer=optimizer(), loss=loss)
        targets = y

    def train_step() -> float:  # the total loss (train_on_batch adds each output's loss after it for GoogLeNet)
        losses = model.train_on_batch(x, targets)
        return losses[0] if isinstance(losses, list) else losses

    return Variant(lambda: infer.predict_on_batch(x), train_step), model


def tf_function_variant(model_name: str, x: tf.Tensor, y: tf.Tensor) -> Variant:
    model, infer = NETS[model_name]()
    opt = optimizer()
    opt.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            if isinstance(out, (list, tuple)):  # GoogLeNet: main head plus two auxiliary heads
                loss = loss_fn(y, out[0]) + AUX_WEIGHT * (loss_fn(y, out[1]) + loss_fn(y, out[2]))
            else:
                loss = loss_fn(y, out)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def forward(x: tf.Tensor) -> tf.Tensor:
        return infer(x, training=False)

    return Variant(lambda: forward(x), lambda: train_step(x, y))


def make(model_name: str, batch_size: int, seed: int = 0, device: str = "cpu") -> Reference:
    check_model(model_name)
    keras.utils.set_random_seed(seed)
    tf_device = "/CPU:0" if device == "cpu" else "/GPU:" + (device.partition(":")[2] or "0")
    images, labels = random_batch(batch_size, seed)
    with tf.device(tf_device):
        x = tf.constant(images.transpose(0, 2, 3, 1))  # NCHW -> NHWC, once
        y = tf.constant(labels)
        keras_v, model = keras_variant(model_name, x, y)
        variants = {"keras.train_on_batch": keras_v, "tf.function": tf_function_variant(model_name, x, y)}

    def placed(fn):  # type: ignore[no-untyped-def]
        def run():  # type: ignore[no-untyped-def]
            with tf.device(tf_device):
                return fn()
        return run

    def synchronize() -> None:  # ops on the CPU finish before they return; GPU work is queued
        if device != "cpu":
            tf.test.experimental.sync_devices()

    variants = {name: Variant(placed(v.forward), placed(v.train_step)) for name, v in variants.items()}
    params = sum(math.prod(v.shape) for v in model.trainable_variables)
    return Reference("tensorflow", model_name, batch_size, params, variants, synchronize)
