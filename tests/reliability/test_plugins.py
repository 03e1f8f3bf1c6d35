"""Plugins that misbehave are reported, never crash convbench: a misspelt hook, a duplicate name, a plugin that
fails to import or whose hook raises, and a model whose values break the contract at the plugin boundary.

Each fault is a real plugin written by the test into tmp_path and loaded through $CONVBENCH_PLUGINS (or shadowing
a built-in plugin's module), in this process or in the real CLI's subprocesses."""
from __future__ import annotations

import json
import math
import os
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import TESTS, run_cli

from harness import __version__, plugin_manager
from harness.errors import ConvbenchError
from harness.plugin_manager import build_registries, get_plugin_manager
from harness.registry import Registry
from harness.worker import checks
from harness.worker.checks import PluginFault

FRAMEWORK_PLUGINS = "torch,tensorflow,paddle,jax"
TINY_MODEL = 'ModelDef(NAME, (3, 32, 32), 10, Seq("net", (Flatten("flatten"), Linear("fc", 10))))'
IMPORTS = "from harness import hookimpl\nfrom harness.frameworks import FrameworkSpec\n" \
          "from harness.model.graph import Flatten, Linear, ModelDef, Seq\n"


def write_module(folder: Path, name: str, source: str) -> str:
    (folder / f"{name}.py").write_text(IMPORTS + textwrap.dedent(source))
    return name


def cli_env(folder: Path, plugins: str, disable: str = "") -> dict[str, str]:
    """The real CLI with the test's plugin modules importable (in the orchestrator and its workers), and tests/
    (whose faulty_plugin's model the bad-values plugin reuses)."""
    return {"CONVBENCH_PLUGINS": plugins, "CONVBENCH_DISABLE_PLUGINS": disable,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), str(TESTS), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def plugins_from(tmp_path, monkeypatch):
    """Loads the given modules (written into tmp_path) as $CONVBENCH_PLUGINS in this process."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def use(*names: str) -> None:
        monkeypatch.setenv("CONVBENCH_PLUGINS", ",".join(names))
    return use


MISSPELT = """
@hookimpl
def convbench_add_model(registry):          # the hook is convbench_add_models
    registry.add("never", None)
"""


def test_a_misspelt_hook_is_reported_and_the_other_plugins_work(tmp_path, plugins_from):
    name = write_module(tmp_path, "misspelt_hook_a", MISSPELT)
    wrong_argument = write_module(tmp_path, "wrong_argument_a", """
        @hookimpl
        def convbench_add_models(registri):
            pass
    """)
    plugins_from(name, wrong_argument)
    pm = get_plugin_manager()   # pluggy's check_pending raised here for every command
    errors = {n: o.error for n, o in pm.convbench_origins.items()}
    assert errors[name] == "unknown hook 'convbench_add_model' (did you mean 'convbench_add_models'?)"
    assert "registri" in errors[wrong_argument] and "\n" not in errors[wrong_argument]
    assert not pm.has_plugin(name) and not pm.has_plugin(wrong_argument)
    regs = build_registries(pm)
    assert "lenet5" in regs.models and "torch" in regs.frameworks and "never" not in regs.models


@pytest.mark.parametrize("kind, source, message", [
    ("framework", 'registry.add("torch", FrameworkSpec("torch", "numpy", ("numpy",)))',
     "duplicate framework 'torch': registered by plugin 'torch' (built-in) and again by plugin 'dup_{}' "
     "($CONVBENCH_PLUGINS)"),
    ("model", 'NAME = "lenet5"; registry.add(NAME, ' + TINY_MODEL + ')',
     "duplicate model 'lenet5': registered by plugin 'models' (built-in) and again by plugin 'dup_{}' "
     "($CONVBENCH_PLUGINS)"),
])
def test_a_duplicate_name_is_one_line_naming_both_plugins(tmp_path, plugins_from, kind, source, message):
    name = write_module(tmp_path, f"dup_{kind}", f"""
        @hookimpl
        def convbench_add_{kind}s(registry):
            {source}
    """)
    plugins_from(name)
    with pytest.raises(ConvbenchError) as info:
        build_registries(get_plugin_manager())
    assert str(info.value) == message.format(kind)


def test_a_plugin_that_failed_to_load_is_named_when_its_framework_is_asked_for(tmp_path, plugins_from, monkeypatch):
    write_module(tmp_path, "broken_paddle_a", 'raise ImportError("libpaddle.so: cannot open shared object file")\n')
    builtin = tuple((n, "broken_paddle_a:plugin" if n == "paddle" else t) for n, t in plugin_manager.BUILTIN)
    monkeypatch.setattr(plugin_manager, "BUILTIN", builtin)
    monkeypatch.setenv(plugin_manager.DISABLE_ENV, "tensorflow")
    frameworks = build_registries(get_plugin_manager()).frameworks
    with pytest.raises(ConvbenchError, match="^framework paddle is unavailable: its plugin failed to load: "
                                             "ImportError: libpaddle.so: cannot open shared object file$"):
        frameworks.get("paddle")
    with pytest.raises(ConvbenchError, match="^framework tensorflow is unavailable: its plugin is disabled by "
                                             "CONVBENCH_DISABLE_PLUGINS$"):
        frameworks.get("tensorflow")
    with pytest.raises(ConvbenchError, match=r"^unknown framework 'padle'; known: .*torch.* \(plugins that failed to "
                                             r"load: paddle; see `convbench plugins`\)$"):
        frameworks.get("padle")
    assert frameworks.get("torch").name == "torch"


def test_a_plugin_whose_registry_hook_raises_is_reported_and_withdrawn(tmp_path, plugins_from):
    name = write_module(tmp_path, "raising_hook_a", f"""
        @hookimpl
        def convbench_add_frameworks(registry):
            registry.add("halfway", FrameworkSpec("halfway", "numpy", ("numpy",)))

        @hookimpl
        def convbench_add_models(registry):
            NAME = "halfway_model"
            registry.add(NAME, {TINY_MODEL})
            raise KeyError("no such layer")
    """)
    plugins_from(name)
    pm = get_plugin_manager()
    regs = build_registries(pm)
    assert pm.convbench_origins[name].error == "convbench_add_models raised KeyError: 'no such layer'"
    assert "halfway" not in regs.frameworks and "halfway_model" not in regs.models and not pm.has_plugin(name)
    assert "lenet5" in regs.models


def test_a_registry_without_plugins_still_refuses_duplicates():
    reg: Registry[int] = Registry("model")
    reg.add("a", 1)
    with pytest.raises(ConvbenchError, match="^duplicate model 'a' \\(registered twice\\)$"):
        reg.add("a", 2)


# ---- values at the plugin boundary (harness/worker/checks.py) --------------------------------------------------

class TorchModel:
    """Named like a real plugin's model: the messages name the class and the method."""


@pytest.mark.parametrize("call, message", [
    (lambda m: checks.loss(m, "0.5"), "plugin error: TorchModel.train_step returned str '0.5', not a float loss"),
    (lambda m: checks.loss(m, None), "plugin error: TorchModel.train_step returned NoneType None, not a float loss"),
    (lambda m: checks.loss(m, np.zeros(2)), "TorchModel.train_step returned ndarray"),
    (lambda m: checks.losses(m, [1.0, 2.0, 3.0], 4), "plugin error: TorchModel.read_losses returned 3 losses for 4 steps"),
    (lambda m: checks.losses(m, 1.0, 1), "plugin error: TorchModel.read_losses returned float 1.0, not a list"),
    (lambda m: checks.losses(m, [1.0, "x"], 2), "TorchModel.read_losses returned str 'x', not a float loss"),
    (lambda m: checks.evaluation(m, (10.0, 300), 256),
     "plugin error: TorchModel.evaluate counted 300 correct predictions in a batch of 256 images"),
    (lambda m: checks.evaluation(m, (10.0, -1), 256), "TorchModel.evaluate counted -1 correct predictions"),
    (lambda m: checks.evaluation(m, (10.0, 2.5), 256), "TorchModel.evaluate counted 2.5 correct predictions"),
    (lambda m: checks.evaluation(m, 0.5, 256), "TorchModel.evaluate returned float 0.5, not (summed loss, correct"),
    (lambda m: checks.execution_info(m, {"precision": object()}), "TorchModel.execution_info returned precision=object"),
    (lambda m: checks.execution_info(m, {"status": "ok"}), "TorchModel.execution_info returned the key 'status'; known:"),
    (lambda m: checks.execution_info(m, ["fp32"]), "TorchModel.execution_info returned list ['fp32'], not a dict"),
])
def test_a_value_that_breaks_the_contract_is_a_plugin_fault_naming_the_method(call, message):
    with pytest.raises(PluginFault) as info:
        call(TorchModel())
    assert message in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ConvbenchError)   # the worker reports it as the cell's error, no traceback


def test_numpy_scalars_are_accepted_and_a_nan_loss_is_left_to_divergence():
    m = TorchModel()
    assert type(checks.loss(m, np.float32(0.25))) is float and checks.loss(m, np.array(0.5)) == 0.5
    assert math.isnan(checks.loss(m, float("nan"))) and math.isinf(checks.losses(m, [np.float64("inf")], 1)[0])
    assert checks.evaluation(m, (np.float32(3.0), np.int64(7)), 8) == (3.0, 7)
    info = checks.execution_info(m, {"tf32": np.bool_(True), "world_size": np.int64(2), "autotune": None})
    assert info == {"tf32": True, "world_size": 2, "autotune": None} and type(info["tf32"]) is bool
    json.dumps(info)


# ---- the real CLI ------------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_cli_a_misspelt_hook_shows_in_plugins_and_every_other_command_works(tmp_path):
    env = cli_env(tmp_path, write_module(tmp_path, "misspelt_hook_b", MISSPELT))
    plugins = run_cli("plugins", env=env, timeout=300)
    assert plugins.returncode == 1, plugins.stderr[-2000:]
    assert ("misspelt_hook_b: $CONVBENCH_PLUGINS: failed to load: unknown hook 'convbench_add_model' "
            "(did you mean 'convbench_add_models'?)") in plugins.stdout
    assert f"models: convbench {__version__} (built-in)" in plugins.stdout and "Traceback" not in plugins.stderr
    listed = run_cli("list", "--format", "json", env=env, timeout=300)
    assert listed.returncode == 0 and "lenet5" in listed.stdout, listed.stderr[-2000:]


@pytest.mark.e2e
def test_cli_a_duplicate_framework_is_one_line(tmp_path):
    env = cli_env(tmp_path, write_module(tmp_path, "dup_torch", """
        @hookimpl
        def convbench_add_frameworks(registry):
            registry.add("torch", FrameworkSpec("torch", "numpy", ("numpy",)))
    """))
    proc = run_cli("list", env=env, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "convbench: error: duplicate framework 'torch': registered by plugin 'torch' (built-in) and again by "
        "plugin 'dup_torch' ($CONVBENCH_PLUGINS)"], proc.stderr[-2000:]


@pytest.mark.e2e
@pytest.mark.parametrize("command", [
    ("run", "--frameworks", "paddle", "--models", "lenet5", "--epochs", "1"), ("verify", "--frameworks", "paddle"),
    ("doctor", "--frameworks", "paddle"), ("eval", "--framework", "paddle", "--model", "lenet5", "--weights", "w.npz"),
])
def test_cli_a_framework_whose_plugin_failed_to_load_says_why(tmp_path, command):
    """The built-in paddle plugin's module shadowed by one that fails to import, as a broken install would."""
    (tmp_path / "convbench_paddle.py").write_text('raise ImportError("libpaddle.so: cannot open shared object")\n')
    output = ("--output", str(tmp_path / "out")) if command[0] == "run" else ()
    proc = run_cli(*command, *output, env=cli_env(tmp_path, ""), cwd=tmp_path, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "convbench: error: framework paddle is unavailable: its plugin failed to load: ImportError: libpaddle.so: "
        "cannot open shared object"], proc.stderr[-2000:]


BAD_VALUES = """
import numpy as np
from faulty_plugin import SoftmaxRegression
from harness.frameworks import DeviceInfo

FAULTS = ("ok", "f32", "inf", "acc", "short", "info", "str")


class Model(SoftmaxRegression):
    \"\"\"The faulty plugin's softmax regression; ``bad`` (from the model's name) breaks one value of the contract.\"\"\"

    def __init__(self, model, settings):
        super().__init__(model, settings)
        self.bad = model.name.removeprefix("bad_")

    def train_step(self, images, labels, lr):
        loss = super().train_step(images, labels, lr)
        return {"f32": np.float32(loss), "inf": float("inf"), "str": str(loss)}.get(self.bad, loss)

    def evaluate(self, images, labels):
        loss, hits = super().evaluate(images, labels)
        if self.bad == "f32":
            return np.float32(loss), np.int64(hits)
        return loss, 2 * len(labels) if self.bad == "acc" else hits

    def execution_info(self):
        if self.bad == "info":
            return {"precision": object()}
        return {"precision": "fp32", "tf32": np.bool_(False) if self.bad == "f32" else False}


class Pipelined(Model):
    def prepare_batch(self, images, labels):
        return images, labels

    def train_step_async(self, batch, lr):
        return self.train_step(*batch, lr)

    def read_losses(self, losses):
        return list(losses)[:-1]     # one short


@hookimpl
def convbench_add_frameworks(registry):
    registry.add("badvals", FrameworkSpec("badvals", "numpy", ("numpy",), ("cpu",)))


@hookimpl
def convbench_add_models(registry):
    for fault in FAULTS:
        NAME = f"bad_{fault}"
        registry.add(NAME, MODEL)


@hookimpl
def convbench_build_model(framework, model, device, settings):
    if framework == "badvals":
        return (Pipelined if model.name == "bad_short" else Model)(model, settings)


@hookimpl
def convbench_discover_devices(framework):
    return [DeviceInfo("cpu", "numpy")] if framework == "badvals" else None
""".replace("MODEL", TINY_MODEL)


@pytest.mark.e2e
def test_cli_bad_values_fail_their_cell_with_the_method_named_and_lose_no_other_row(tmp_path):
    env = cli_env(tmp_path, write_module(tmp_path, "bad_values", BAD_VALUES), disable=FRAMEWORK_PLUGINS)
    models = ["bad_ok", "bad_f32", "bad_inf", "bad_acc", "bad_short", "bad_info", "bad_str"]
    proc = run_cli("run", "--frameworks", "badvals", "--models", ",".join(models), "--epochs", "1", "--dataset",
                   "synthetic", "--output", str(tmp_path / "out"), env=env, timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    df = pd.read_csv(next((tmp_path / "out").iterdir()) / "results.csv").set_index("model")
    assert list(df.index) == models   # every cell has its row
    status, error = df["status"].to_dict(), df["error"].fillna("").to_dict()
    assert status["bad_ok"] == status["bad_f32"] == "ok"   # numpy scalars are converted, not a crash
    assert 0 <= df.loc["bad_f32", "test_accuracy"] <= 1 and df.loc["bad_f32", "tf32"] in (False, "False")
    assert status["bad_inf"] == "diverged" and "loss became inf" in error["bad_inf"]
    expected = {"bad_acc": r"plugin error: Model\.evaluate counted (\d+) correct predictions in a batch of (\d+) images$",
                "bad_short": r"plugin error: Pipelined\.read_losses returned (\d+) losses for (\d+) steps$",
                "bad_info": r"plugin error: Model\.execution_info returned precision=object <object object at 0x[0-9a-f]+>, "
                            r"not a string, bool or number$",
                "bad_str": r"plugin error: Model\.train_step returned str '[\d.]+', not a float loss$"}
    for model, pattern in expected.items():
        assert status[model] == "error" and re.match(pattern, error[model]), (model, error[model])
    acc = re.match(expected["bad_acc"], error["bad_acc"])
    short = re.match(expected["bad_short"], error["bad_short"])
    assert int(acc[1]) == 2 * int(acc[2]) and int(short[1]) == int(short[2]) - 1 and "Traceback" not in proc.stderr
