"""Each phase of each cell as a pedantic pytest-benchmark, the device synchronised inside every round."""
from __future__ import annotations

import numpy as np
import pytest

from harness.model.shapes import model_summary
from harness.model.weights import init_weights
from harness.native import PHASES
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.settings import BuildSettings, default_batch


@pytest.fixture(scope="module")
def harness_pm():
    return get_plugin_manager()


@pytest.mark.parametrize("phase", PHASES)
def test_phase(benchmark, request, harness_pm, model_name, phase):
    opt = request.config.getoption
    framework, device = opt("--framework"), opt("--device")
    model = build_registries(harness_pm).models.get(model_name)
    batch_size = opt("--batch-size") or default_batch(model.input_shape, "speed")
    native = harness_pm.hook.convbench_build_model(framework=framework, model=model, device=device,
                                                   settings=BuildSettings().to_dict())
    native.set_weights(init_weights(model, 0))
    rng = np.random.default_rng(0)
    batch = native.prepare_batch(rng.random((batch_size, *model.input_shape), dtype=np.float32),
                                 rng.integers(0, model.num_classes, batch_size))

    def step():
        native.run_phase(phase, batch, 1e-3)
        harness_pm.hook.convbench_synchronize(framework=framework, device=device)

    step()  # tracing / compilation, outside the measured rounds
    benchmark.extra_info.update(framework=framework, model=model_name, phase=phase, device=device,
                                batch_size=batch_size, flops_per_image=model_summary(model).flops)
    benchmark.pedantic(step, rounds=opt("--bench-steps"), iterations=1, warmup_rounds=opt("--bench-warmup"))
