"""The typed settings: defaults in one place, a JSON round trip that keeps types, bad files refused in one line,
and the build settings a plugin receives generated from the cell."""
from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest

from harness import hookspecs
from harness.devices import CPU, Device
from harness.errors import ConvbenchError
from harness.settings import (
    DEFAULT_EPOCHS,
    RECIPE_BATCH,
    BuildSettings,
    Cell,
    DataParallel,
    RunSettings,
    default_batch,
    parse_schedule,
)
from harness.worker.protocol import read_job, write_job

GPU0, GPU1 = Device("cuda", 0), Device("cuda", 1)


def cell(**run: object) -> Cell:
    return Cell(run_id="r", name="torch-lenet5-cpu", framework="torch", model="lenet5",
                run=RunSettings(**{"seed": 3, "batch_size": 64, **run}))


def test_round_trip_keeps_every_field_and_type(tmp_path):
    c = cell(milestones=(5, 8), devices=(GPU0, GPU1), world_size=2, lr=0.05, target=0.9, device=GPU0).replace(
        dp_mode="processes", rank=1, visible=(GPU0, GPU1))
    write_job(tmp_path / "cell.json", c)
    back = read_job(tmp_path / "cell.json")
    assert back == c and isinstance(back.run.milestones, tuple) and isinstance(back.devices, tuple)
    data = json.loads((tmp_path / "cell.json").read_text())
    assert data["kind"] == "cell" and data["run"]["milestones"] == [5, 8] and data["run"]["devices"] == ["cuda:0", "cuda:1"]
    assert data["run"]["device"] == "cuda:0" and back.device == GPU0


def test_ints_are_accepted_for_floats_but_not_bools_for_ints():
    data = cell().to_dict()
    data["run"]["lr"] = 1
    assert Cell.from_dict(data).run.lr == 1.0 and isinstance(Cell.from_dict(data).run.lr, float)
    data["run"]["epochs"] = True
    with pytest.raises(ConvbenchError, match="RunSettings.epochs: expected int"):
        Cell.from_dict(data)
    data["run"]["epochs"], data["run"]["device"] = 3, "tpu"
    with pytest.raises(ConvbenchError, match="unknown device 'tpu'"):
        Cell.from_dict(data)


def test_unknown_keys_and_unreadable_files_are_one_line_errors(tmp_path):
    data = cell().to_dict()
    data["colour"] = "red"
    with pytest.raises(ConvbenchError, match="unknown setting"):
        Cell.from_dict(data)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConvbenchError, match="cannot read job file"):
        read_job(tmp_path / "bad.json")
    (tmp_path / "odd.json").write_text('{"kind": "dance"}')
    with pytest.raises(ConvbenchError, match="unknown kind 'dance'"):
        read_job(tmp_path / "odd.json")


def test_each_value_of_a_cell_has_one_place():
    """The cell's seed, batch, device and world size are its run settings'; an out-of-memory retry is a new cell."""
    c = cell(device=GPU1)
    assert (c.seed, c.batch_size, c.device, c.world_size) == (3, 64, GPU1, 1)
    names = {f.name for f in dataclasses.fields(Cell)}
    assert not names & {"seed", "batch_size", "device", "devices", "world_size", "python"}
    halved = c.with_run(batch_size=32)
    assert halved.batch_size == halved.run.batch_size == 32 and c.batch_size == 64
    assert cell(pythons=("torch=/envs/t/bin/python", "jax=/j")).python == "/envs/t/bin/python"


def test_build_settings_and_data_parallel_views():
    c = cell(compile="default", precision="bf16", threads=4)
    assert c.build_settings().to_dict() == {
        "momentum": 0.9, "weight_decay": 2e-4, "seed": 3, "threads": 4, "compile": "default", "precision": "bf16",
        "layout": "native", "tf32": True, "autotune": True, "compile_cache": None, "world_size": 1, "rank": 0,
        "dp_mode": None, "devices": None}
    cached = cell(compile_cache="/caches")
    assert cached.build_settings().compile_cache == cached.compile_cache == f"/caches{os.sep}{cached.framework}"
    assert c.shard == (0, 1) and c.per_device_batch is None
    dp = cell(world_size=2, devices=(CPU, CPU)).replace(dp_mode="processes", rank=1)
    assert dp.shard == (1, 2) and dp.per_device_batch == 32
    assert dp.build_settings().parallel == DataParallel("processes", 2, 1, (CPU, CPU))
    assert dp.build_settings().to_dict()["devices"] == ["cpu", "cpu"] and dp.build_settings().to_dict()["rank"] == 1
    gpus = cell(world_size=2, devices=(Device("cuda", 2), Device("cuda", 5)), device=Device("cuda", 2)).replace(
        dp_mode="devices", visible=(Device("cuda", 2), Device("cuda", 5)))
    assert gpus.build_settings().to_dict()["devices"] == ["cuda:0", "cuda:1"]   # as the worker names them


def test_the_hook_dict_round_trips_and_refuses_unknown_keys():
    dp = BuildSettings(threads=2, parallel=DataParallel("devices", 2, 0, (GPU0, GPU1)))
    assert BuildSettings.from_dict(dp.to_dict()) == dp
    assert BuildSettings.from_dict({}) == BuildSettings()
    assert BuildSettings.from_dict({"precision": None, "seed": 4}) == BuildSettings(seed=4)
    with pytest.raises(ConvbenchError, match="unknown setting.*momentun"):
        BuildSettings.from_dict({"momentun": 0.5})


def test_the_hook_documents_every_key_it_is_sent():
    """convbench_build_model's docstring names each key of the settings dict, and no other."""
    doc = hookspecs.convbench_build_model.__doc__ or ""
    param = doc[doc.index(":param settings:"):doc.index(":return:")]
    documented = set(re.findall(r"``(\w+)`` \(", param))
    assert documented == set(BuildSettings().to_dict())


def test_defaults_live_in_one_place():
    assert default_batch((3, 32, 32), "speed") == RECIPE_BATCH == default_batch((3, 224, 224), "train")
    assert default_batch((3, 224, 224), "speed") == 32
    assert RunSettings().epochs == DEFAULT_EPOCHS["digits"]
    assert all(f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
               for f in dataclasses.fields(RunSettings))
    assert BuildSettings().momentum == RunSettings.momentum and BuildSettings().weight_decay == RunSettings.weight_decay


@pytest.mark.parametrize("text,milestones", [("step", (5,)), ("constant", ()), ("step:2,7", (2, 7))])
def test_schedules(text, milestones):
    assert parse_schedule(text, 10) == milestones
