"""The paddle plugin computes the same networks as the torch plugin (the reference).

Paddle must not share a process with TensorFlow (protobuf clash) and is not relied on to share one
with torch, so this test process imports neither: each framework runs once in its own subprocess
(this file run as a script), realises every model of the registry plus two extra ones that cover
every node type with dropout off, and writes what it computed to an .npz that the tests compare.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import graph as g
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.shapes import summarize

ROOT = Path(__file__).resolve().parents[1]
SEED, LR, THREADS = 7, 0.1, 2
SETTINGS = {"momentum": 0.9, "weight_decay": 2e-4, "seed": SEED, "threads": THREADS}
REGISTRY = build_registries(get_plugin_manager()).models
TRAIN_PARITY = ("lenet5", "simple_cnn", "resnet32", "zoo", "googlenet_nodrop")


def zoo() -> g.ModelDef:
    """A small net with every node type, odd hyper-parameters and a ceil-mode pool whose last
    window would start in the right padding (torch drops it, paddle keeps it)."""
    s = lambda name, *nodes: g.Seq(name, tuple(nodes))  # noqa: E731
    body = s("net",
             g.Conv("conv1", 8, 3, 1, 1), g.MaxPool("pool1", 2, 2, 1, ceil_mode=True),  # 13 -> 7
             g.LRN("lrn", 3, 0.05, 0.6, 2.0), g.BatchNorm("bn1", 1e-3, 0.3), g.ReLU("relu1"),
             g.Concat("mix", (s("a", g.Conv("conv", 4, 1)),
                              s("b", g.MaxPool("pool", 3, 1, 1), g.Conv("conv", 4, 1, bias=False)))),
             g.Aux("aux1", s("head", g.AvgPool("pool", 3, 2), g.Flatten("flat"), g.Linear("fc", 5)), 0.4),
             g.Residual("res", s("body", g.Conv("conv", 8, 3, 1, 1, bias=False), g.BatchNorm("bn")), s("shortcut")),
             g.Residual("down", s("body", g.Conv("conv", 16, 3, 2, 1)), s("shortcut", g.Conv("proj", 16, 1, 2))),
             g.Aux("aux2", s("head", g.GlobalAvgPool("gap"), g.Linear("fc", 5)), 0.2),
             g.MaxPool("pool2", 3, 2, ceil_mode=True), g.Flatten("flat"), g.Linear("fc1", 12),
             g.BatchNorm("bn2", 1e-5, 0.1), g.ReLU("relu2"), g.Dropout("drop", 0.0), g.Linear("fc2", 5, bias=False))
    return g.ModelDef("zoo", (3, 13, 13), 5, body)


def _no_dropout(node: g.Node) -> g.Node:
    if isinstance(node, g.Dropout):
        return replace(node, rate=0.0)
    if isinstance(node, g.Seq):
        return replace(node, children=tuple(_no_dropout(c) for c in node.children))
    if isinstance(node, g.Concat):
        return replace(node, branches=tuple(_no_dropout(b) for b in node.branches))
    if isinstance(node, g.Residual):
        return replace(node, body=_no_dropout(node.body), shortcut=_no_dropout(node.shortcut))
    if isinstance(node, g.Aux):
        return replace(node, head=_no_dropout(node.head))
    return node


def get_model(name: str) -> g.ModelDef:
    if name == "zoo":
        return zoo()
    if name.endswith("_nodrop"):
        base = REGISTRY.get(name[: -len("_nodrop")])
        return replace(base, name=name, body=_no_dropout(base.body))
    return REGISTRY.get(name)


ALL = (*REGISTRY.names(), "zoo", "googlenet_nodrop")


def batch(model: g.ModelDef) -> tuple[np.ndarray, np.ndarray]:
    n = 2 if model.input_shape[1] > 64 else 4
    rng = np.random.default_rng(SEED)
    images = rng.random((n, *model.input_shape), dtype=np.float32)
    return images, rng.integers(0, model.num_classes, n).astype(np.int64)


# -- the subprocess side: one framework, every model --------------------------------------------
def compute(framework: str, out: str) -> None:
    from harness.weights import init_weights
    pm = get_plugin_manager()
    arrays: dict[str, Any] = {}
    for name in ALL:
        model = get_model(name)
        native = pm.hook.convbench_build_model(framework=framework, model=model, device="cpu", settings=SETTINGS)
        weights = init_weights(model, SEED)
        native.set_weights(weights)
        back = native.get_weights()
        arrays[f"{name}/roundtrip"] = set(back) == set(weights) and all(
            back[k].dtype == np.float32 and np.array_equal(back[k], weights[k]) for k in weights)
        del weights, back
        images, labels = batch(model)
        arrays[f"{name}/params"] = native.param_count()
        arrays[f"{name}/logits"] = native.forward(images)
        arrays[f"{name}/eval"] = np.array(native.evaluate(images, labels), np.float64)
        if name in TRAIN_PARITY:
            arrays[f"{name}/loss"] = native.train_step(images, labels, LR)
            arrays.update({f"{name}/w/{k}": v for k, v in native.get_weights().items()})
        del native
    np.savez(out, **arrays)


def _run(framework: str, out: Path) -> dict[str, np.ndarray]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(THREADS)
    proc = subprocess.run([sys.executable, __file__, framework, str(out)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    _need("paddle")
    _need("torch")
    tmp = tmp_path_factory.mktemp("paddle_parity")
    return {fw: _run(fw, tmp / f"{fw}.npz") for fw in ("paddle", "torch")}


if __name__ == "__main__":
    compute(sys.argv[1], sys.argv[2])
