"""The typed cell: defaults in one place, a JSON round trip that keeps types, bad files refused in one line."""
from __future__ import annotations

import dataclasses
import json

import pytest

from harness.errors import ConvbenchError
from harness.settings import DEFAULT_EPOCHS, RECIPE_BATCH, Cell, RunSettings, default_batch


def cell(**run: object) -> Cell:
    return Cell(run_id="r", name="torch-lenet5-cpu", framework="torch", model="lenet5", seed=3, device="cpu",
                batch_size=64, run=RunSettings(**run))


def test_round_trip_keeps_every_field_and_type(tmp_path):
    c = cell(milestones=(5, 8), devices=("cuda:0", "cuda:1"), world_size=2, lr=0.05, target=0.9).replace(
        world_size=2, dp_mode="processes", devices=("cuda:0", "cuda:1"), rank=1)
    c.to_json(tmp_path / "cell.json")
    back = Cell.from_json(tmp_path / "cell.json")
    assert back == c and isinstance(back.run.milestones, tuple) and isinstance(back.devices, tuple)
    assert json.loads((tmp_path / "cell.json").read_text())["run"]["milestones"] == [5, 8]


def test_ints_are_accepted_for_floats_but_not_bools_for_ints():
    data = cell().to_dict()
    data["run"]["lr"] = 1
    assert Cell.from_dict(data).run.lr == 1.0 and isinstance(Cell.from_dict(data).run.lr, float)
    data["run"]["epochs"] = True
    with pytest.raises(ConvbenchError, match="RunSettings.epochs: expected int"):
        Cell.from_dict(data)


def test_unknown_keys_and_unreadable_files_are_one_line_errors(tmp_path):
    data = cell().to_dict()
    data["colour"] = "red"
    with pytest.raises(ConvbenchError, match="unknown setting"):
        Cell.from_dict(data)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConvbenchError, match="cannot read cell file"):
        Cell.from_json(tmp_path / "bad.json")


def test_plugin_settings_and_data_parallel_views():
    c = cell(compile="default", precision="bf16", threads=4)
    assert c.plugin_settings() == {"momentum": 0.9, "weight_decay": 2e-4, "seed": 3, "threads": 4, "compile": "default",
                                   "precision": "bf16", "layout": "native", "tf32": True, "autotune": True}
    assert c.shard == (0, 1) and c.per_device_batch is None
    dp = c.replace(world_size=2, dp_mode="processes", rank=1, devices=("cpu", "cpu"))
    assert dp.shard == (1, 2) and dp.per_device_batch == 32
    assert dp.plugin_settings()["devices"] == ["cpu", "cpu"] and dp.plugin_settings()["rank"] == 1


def test_defaults_live_in_one_place():
    assert default_batch((3, 32, 32), "speed") == RECIPE_BATCH == default_batch((3, 224, 224), "train")
    assert default_batch((3, 224, 224), "speed") == 32
    assert RunSettings().epochs == DEFAULT_EPOCHS["digits"]
    assert all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
               for f in dataclasses.fields(RunSettings))
