"""convbench report: report.md and PNG plots from run directories (synthetic ones in the exact layout, one real)."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from helpers import make_run, needs, run_cli

from harness.errors import ConvbenchError
from harness.results.csvio import write_csv
from harness.results.records import COLUMNS
from harness.results.report import write_report
from harness.results.runs import load_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    width, height = struct.unpack(">II", data[16:24])   # IHDR
    assert width >= 300 and height >= 200 and len(data) > 5000, (path, width, height, len(data))


def test_synthetic_rows_follow_the_schema(tmp_path):
    run = load_run(make_run(tmp_path, seeds=(0, 1)))
    assert list(run.rows[0])[:len(COLUMNS)] == list(COLUMNS)
    assert set(run.histories) == {"torch-lenet5-cpu-s0", "torch-lenet5-cpu-s1"}


def test_train_report_with_seeds_and_a_failed_cell(tmp_path):
    run_dir = make_run(tmp_path, frameworks=("torch", "tensorflow", "paddle"), models=("lenet5", "simple_cnn"),
                       seeds=(0, 1, 2), failed={("paddle", "simple_cnn"): "crashed"})
    report = write_report(run_dir)
    assert report == run_dir / "report.md"
    text = report.read_text()
    assert "| network | torch | tensorflow | paddle |" in text
    lenet = next(line for line in text.splitlines() if line.startswith("| lenet5 |"))
    assert lenet.count("±") == 6 and "(n=3)" in lenet
    assert "| simple_cnn |" in text and "crashed" in text and "boom \\| details" in text
    assert "## Failed cells" in text and "published" not in text
    for name in ("accuracy_vs_time.png", "train_time.png"):
        assert f"]({name})" in text
        assert_png(run_dir / name)
    assert not (run_dir / "step_time.png").exists()
    assert "## Settings" in text and "| framework paddle | 1.0; devices: cpu (x86_64) |" in text


def test_cifar10_report_shows_the_articles_figures(tmp_path):
    run_dir = make_run(tmp_path, dataset="cifar10", frameworks=("tensorflow", "paddle"), models=("lenet5", "vgg16"))
    text = write_report(run_dir, tmp_path / "out").read_text()
    assert "## The articles' published figures" in text and "8 Tesla K80s" in text
    assert "89.11% / 16 h 21 min" in text and "89.18% / 18 h 12 min" in text and "91.46%" in text
    assert "60.00%" in text and "ranking only" in text
    vgg_tf = next(line for line in text.splitlines() if "| VGG-16 | vgg16 | tensorflow |" in line)
    assert "%" in vgg_tf.split("|")[6]   # our figure beside theirs
    assert "| AlexNet with LRN | alexnet_lrn | paddle |" in text and "not run" in text
    assert (tmp_path / "out" / "accuracy_vs_time.png").exists() and not (run_dir / "report.md").exists()


def test_speed_report(tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                       models=("lenet5", "vgg16_imagenet"), seeds=(0, 1))
    text = write_report(run_dir).read_text()
    assert "## Step time" in text and "95% CI of the median" in text
    row = next(line for line in text.splitlines() if line.startswith("| lenet5 | forward |"))
    assert row.count("ms [") == 2 and "img/s" in row
    assert_png(run_dir / "step_time.png")
    assert "## Accuracy and training time" not in text


def test_time_to_target(tmp_path):
    run_dir = make_run(tmp_path, frameworks=("torch", "paddle"), seeds=(0, 1), target=0.65)
    text = write_report(run_dir).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| lenet5 |"))
    assert row.count("65% in ") == 2 and "(2/2 reached)" in row


@pytest.mark.parametrize("kind", ["missing", "file", "empty_dir", "garbage"])
def test_not_a_run_directory(tmp_path, kind):
    target = tmp_path / "x"
    if kind == "file":
        target.write_text("hello")
    elif kind == "empty_dir":
        target.mkdir()
    elif kind == "garbage":
        target.mkdir()
        (target / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConvbenchError) as err:
        write_report(target)
    message = str(err.value)
    assert "\n" not in message and str(target) in message
    assert ("does not exist" if kind == "missing" else "not a convbench") in message


def test_run_without_finished_cells(tmp_path):
    run_dir = make_run(tmp_path)
    write_csv([], run_dir / "results.csv")
    text = write_report(run_dir).read_text()
    assert "No cell has finished" in text and "## Settings" in text


@pytest.mark.e2e
@needs("torch")
def test_report_on_a_real_run(tmp_path):
    proc = run_cli("run", "--frameworks", "torch", "--models", "lenet5", "--epochs", "1", "--batch-size", "64",
                   "--output", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = tmp_path.iterdir()
    text = write_report(run_dir).read_text()
    assert "| network | torch |" in text
    assert next(line for line in text.splitlines() if line.startswith("| lenet5 |")).count("%") == 1
    assert "2." in text and "## Versions and machine" in text
    assert_png(run_dir / "accuracy_vs_time.png")
    assert_png(run_dir / "train_time.png")
