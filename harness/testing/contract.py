"""Contract checks: what every framework plugin must do. A plugin that fails one is not registered right, builds
a network other than the definition, loses or misplaces weights, computes other logits than the reference
framework, cannot run the timing phases, or lets a bad device through."""
from __future__ import annotations

import numpy as np
import pytest

from harness.devices import CPU, parse_device
from harness.errors import ConvbenchError
from harness.model.shapes import model_summary
from harness.model.verification import BATCH, TOLERANCE, verification_weights
from harness.model.weights import init_weights
from harness.native import PHASES, NativeModel
from harness.testing.numerics import relative_error
from harness.testing.wiring import Kit


class TestContract:
    """The checks of the plugin contract (docs/plugins.md), per model where a model is named."""

    def test_framework_registered(self, convbench_kit: Kit) -> None:
        found = convbench_kit.pm.hook.convbench_discover_devices(framework=convbench_kit.framework)
        devices = [parse_device(d.name) for d in found or ()]
        assert devices and devices[0].is_cpu, f"devices must be a list with cpu first, got {found}"
        assert all(d.is_cpu or d.kind in convbench_kit.spec.device_kinds for d in devices)

    def test_parameter_count(self, convbench_kit: Kit, convbench_model: str, convbench_native: NativeModel) -> None:
        assert convbench_native.param_count() == model_summary(convbench_kit.model(convbench_model)).params

    def test_weights_round_trip(self, convbench_kit: Kit, convbench_model: str, convbench_native: NativeModel) -> None:
        model = convbench_kit.model(convbench_model)
        weights = verification_weights(model, 1)
        convbench_native.set_weights(weights)
        back = convbench_native.get_weights()
        assert sorted(back) == sorted(weights), "get_weights must return exactly the portable keys"
        for key, value in weights.items():
            assert back[key].shape == value.shape and back[key].dtype == np.float32, key
            np.testing.assert_array_equal(back[key], value, err_msg=key)
        key = next(iter(weights))
        for broken in ({k: v for k, v in weights.items() if k != key}, {**weights, key: weights[key][..., :1]}):
            pytest.raises(Exception, convbench_native.set_weights, broken)

    def test_logits_match_reference(self, convbench_kit: Kit, convbench_model: str, convbench_native: NativeModel,
                                    tmp_path_factory: pytest.TempPathFactory) -> None:
        expected = convbench_kit.reference_logits(convbench_model, tmp_path_factory)
        folder = convbench_kit.inputs(tmp_path_factory)
        with np.load(folder / f"{convbench_model}.weights.npz") as data:
            convbench_native.set_weights({k: data[k] for k in data.files})
        logits = convbench_native.forward(np.load(folder / f"{convbench_model}.input.npy"))
        assert logits.shape == expected.shape and logits.dtype == np.float32
        error = relative_error(logits, expected)
        assert error <= TOLERANCE, f"logits differ from {convbench_kit.reference} by {error:.1e} > {TOLERANCE:g}"

    def test_timing_phases(self, convbench_kit: Kit, convbench_model: str, convbench_native: NativeModel) -> None:
        model, rng = convbench_kit.model(convbench_model), np.random.default_rng(3)
        convbench_native.set_weights(init_weights(model, 0))
        images = rng.random((BATCH, *model.input_shape), dtype=np.float32)
        batch = convbench_native.prepare_batch(images, rng.integers(0, model.num_classes, BATCH))
        for phase in PHASES:
            convbench_native.run_phase(phase, batch, 1e-3)
        hook, fw = convbench_kit.pm.hook, convbench_kit.framework
        assert hook.convbench_synchronize(framework=fw, device=CPU.name) is True
        assert isinstance(hook.convbench_peak_memory_mb(framework=fw, device=CPU.name, reset=False), float)

    @pytest.mark.parametrize("device", ["cuda:99", "tpu"])
    def test_bad_device_is_a_user_error(self, convbench_kit: Kit, device: str) -> None:
        with pytest.raises(ConvbenchError) as info:
            convbench_kit.build(convbench_kit.model("lenet5"), device=device)
        assert "\n" not in str(info.value), "user errors are one line"

