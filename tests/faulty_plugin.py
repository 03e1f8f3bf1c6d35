"""A test-only framework, "faulty", in plain numpy: softmax regression whose cells misbehave on purpose.

Loaded through $CONVBENCH_PLUGINS=faulty_plugin (with tests/ on PYTHONPATH). Each fault is a model:
fault_ok trains normally; fault_crash aborts the process (SIGABRT); fault_segv segfaults; fault_hang
sleeps forever; fault_oom raises MemoryError until the batch is at most 32; fault_nan returns a NaN
loss; fault_error raises a plain exception; fault_collapse learns for 30 steps, then its weights are zeroed and
stay so (a finite loss of ln 10, test accuracy back at chance: a collapsed training). Faults that depend on a
marker file wait for it (slow_ok: sleeps until $FAULTY_RELEASE exists), to let tests kill the orchestrator mid-run.
$FAULTY_STALL_AT=MODEL:N makes that model's N-th training step in a worker sleep forever: a cell that stalls
mid-training, after its first checkpoints. $FAULTY_SURVIVOR_RANK=R makes rank R of a data-parallel cell hang in its
first evaluation, silently, after rank 0 has finished: a rank left waiting in a collective nobody else joins.
"""
from __future__ import annotations

import ctypes
import os
import time

import numpy as np

from harness import hookimpl
from harness.frameworks import DeviceInfo, FrameworkSpec
from harness.model.graph import Flatten, Linear, ModelDef, Seq

FAULTS = ("ok", "crash", "segv", "hang", "oom", "nan", "error", "slow_ok", "collapse")


class SoftmaxRegression:
    def __init__(self, model: ModelDef, settings: dict) -> None:
        self.model, self.fault = model, model.name.removeprefix("fault_")
        self.w = self.b = None
        self.momentum = settings.get("momentum", 0.9)
        self.steps = 0

    def param_count(self) -> int:
        return self.w.size + self.b.size

    def get_weights(self):
        return {"fc.weight": self.w.copy(), "fc.bias": self.b.copy()}

    def set_weights(self, weights) -> None:
        self.w, self.b = weights["fc.weight"].copy(), weights["fc.bias"].copy()
        self.v = [np.zeros_like(self.w), np.zeros_like(self.b)]

    def forward(self, images):
        return images.reshape(len(images), -1) @ self.w.T + self.b

    def train_step(self, images, labels, lr: float) -> float:
        self.steps += 1
        if os.environ.get("FAULTY_STALL_AT") == f"{self.model.name}:{self.steps}":
            time.sleep(3600)
        if self.fault == "crash":
            os.abort()
        if self.fault == "segv":
            ctypes.string_at(0)
        if self.fault == "hang":
            time.sleep(3600)
        if self.fault == "oom" and len(images) > 32:
            raise MemoryError("fake allocator: out of memory")
        if self.fault == "nan":
            return float("nan")
        if self.fault == "error":
            raise RuntimeError("boom")
        if self.fault == "collapse" and self.steps > 30:
            self.w[:], self.b[:] = 0.0, 0.0
            return float(np.log(10))
        if self.fault == "slow_ok":
            while not os.path.exists(os.environ["FAULTY_RELEASE"]):
                time.sleep(0.05)
        x = images.reshape(len(images), -1)
        logits = self.forward(images)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(labels)), labels] + 1e-12).mean()
        p[np.arange(len(labels)), labels] -= 1
        grads = [p.T @ x / len(x), p.mean(0)]
        for param, v, g in zip((self.w, self.b), self.v, grads):
            v *= self.momentum
            v += g
            param -= lr * v
        return float(loss)

    def evaluate(self, images, labels):
        if os.environ.get("FAULTY_SURVIVOR_RANK") == os.environ.get("RANK", "0") != "0":
            time.sleep(3600)
        logits = self.forward(images)
        return float(len(labels)), int((logits.argmax(1) == labels).sum())


@hookimpl
def convbench_add_frameworks(registry) -> None:
    registry.add("faulty", FrameworkSpec("faulty", "numpy", ("numpy",), ("cpu",)))


@hookimpl
def convbench_add_models(registry) -> None:
    for fault in FAULTS:
        registry.add(f"fault_{fault}", ModelDef(f"fault_{fault}", (3, 32, 32), 10,
                                                Seq("net", (Flatten("flatten"), Linear("fc", 10)))))


@hookimpl
def convbench_build_model(framework, model, device, settings):
    return SoftmaxRegression(model, settings) if framework == "faulty" else None


@hookimpl
def convbench_discover_devices(framework):
    return [DeviceInfo("cpu", "numpy")] if framework == "faulty" else None
