"""The optional speed check: a plugin that fails it trains slower than the framework's own idiomatic code of the
same network on this machine."""
from __future__ import annotations

import importlib
import statistics
import time
from typing import Any

import numpy as np
import pytest

from harness.devices import CPU
from harness.model.weights import init_weights
from harness.native import NativeModel
from harness.testing.wiring import Kit, option


def step_times(step: Any, sync: Any, n: int = 5) -> list[float]:
    """``n`` timings of ``step`` then ``sync``, in seconds, after one untimed call (tracing / compilation)."""
    step(), sync()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        sync()
        samples.append(time.perf_counter() - start)
    return samples


class TestSpeed:
    """Skipped unless --convbench-speed-reference names the framework's own implementation."""

    def test_train_step_speed_against_reference(self, convbench_kit: Kit, convbench_model: str,
                                                convbench_native: NativeModel, request: pytest.FixtureRequest) -> None:
        """Optional (--convbench-speed-reference MODULE): the plugin's speed-mode train_step against the framework's
        own idiomatic implementation of the same network on this machine, interleaved, median of the steps; the
        plugin may be at most --convbench-speed-tolerance (1.05) times slower."""
        config = request.config
        target = option(config, "speed_reference")
        if not target:
            pytest.skip("optional speed check: pass --convbench-speed-reference MODULE (e.g. idiomatic.torch_nets "
                        "from a checkout's benchmarks/ on PYTHONPATH)")
        tolerance = float(option(config, "speed_tolerance", "1.05") or 1.05)
        batch_size = int(option(config, "speed_batch", "32") or 32)
        try:
            reference = importlib.import_module(target).make(convbench_model, batch_size)
        except (KeyError, ValueError) as exc:
            pytest.skip(f"{target} has no implementation of {convbench_model}: {exc}")
        model, rng = convbench_kit.model(convbench_model), np.random.default_rng(29)
        convbench_native.set_weights(init_weights(model, 0))
        batch = convbench_native.prepare_batch(rng.random((batch_size, *model.input_shape), dtype=np.float32),
                                               rng.integers(0, model.num_classes, batch_size))
        hook, fw = convbench_kit.pm.hook, convbench_kit.framework
        ours = (lambda: convbench_native.run_phase("train_step", batch, 1e-3),
                lambda: hook.convbench_synchronize(framework=fw, device=CPU.name))
        theirs = [(v.train_step, reference.synchronize) for v in reference.variants.values()]
        mine, best = [], [[] for _ in theirs]
        for _ in range(3):   # interleaved rounds, so a busy moment hits both
            mine += step_times(*ours)
            for pooled, (step, sync) in zip(best, theirs):
                pooled += step_times(step, sync)
        ratio = statistics.median(mine) / min(statistics.median(p) for p in best)
        assert ratio <= tolerance, (f"{fw} {convbench_model} train_step is {ratio:.2f}x the idiomatic reference's "
                                    f"({target}); tolerance {tolerance:g}")
