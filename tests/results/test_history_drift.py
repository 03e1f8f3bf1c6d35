"""convbench history over whole series: a slow drift that no step between neighbouring runs shows is a change point,
pure noise in many cells is not (Benjamini-Hochberg), and --baseline sets every run against one pinned run."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from helpers import make_run, run_cli

from harness.errors import ConvbenchError
from harness.results.changepoint import adjust, best_split
from harness.results.history import write_history
from harness.results.history_model import change_points, collect, find_runs
from harness.results.significance import SAME, SLOWER

RUNS = tuple(f"r{i}" for i in range(1, 7))


def drifting_runs(root: Path) -> Path:
    """Six runs a day apart; tensorflow's step times 4% slower in each run than in the one before (+21.7% in all),
    torch's unchanged; every run's raw samples drawn afresh with a 2% spread."""
    results = root / "results"
    for i, run_id in enumerate(RUNS):
        make_run(results, run_id=run_id, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                 rng_seed=100 + i, noise=0.02, started=f"2026-03-0{i + 1}T12:00:00+00:00",
                 step_scale={"tensorflow": 1.04 ** i})
    return results


def test_a_slow_drift_is_a_change_point_though_no_step_between_neighbours_is(tmp_path):
    text, (csv, page) = write_history(drifting_runs(tmp_path))
    frame = pd.read_csv(csv)
    steps = frame[frame["framework"] == "tensorflow"].dropna(subset=["change_pct"])
    assert len(steps) == 5 * 3 and steps["change_pct"].between(2, 5).all()   # every step below the 5% threshold
    assert (steps["p_value"] < 0.05).all() and (frame["verdict"].dropna() == SAME).all()
    assert "changes against the previous run of the same cell (p < 0.05 and |change| > 5%): none" in text
    points = frame.dropna(subset=["change_point_verdict"])
    flagged = points[points["change_point_verdict"] != SAME]
    assert set(flagged["framework"]) == {"tensorflow"} and len(flagged) == 3 and (flagged["change_point_verdict"] == SLOWER).all()
    assert set(flagged["run"]) == {"r4"} and set(flagged["change_point_after"]) == {"r3"}   # the middle of a steady drift
    assert flagged["change_point_pct"].between(9, 16).all() and (flagged["change_point_q"] < 1e-10).all()
    assert (points[points["framework"] == "torch"]["change_point_verdict"] == SAME).all()
    assert "Benjamini-Hochberg across 6 cell(s) of 3+ runs: q < 0.05 and |change| > 5%): 3" in text
    line = next(t for t in text.splitlines() if "tensorflow lenet5 cpu forward," in t and "between run" in t)
    assert line.lstrip().startswith("slower +") and "between run r3 (2026-03-03 12:00) and run r4 (2026-03-04 12:00)" in line
    assert "over runs 1-3 ->" in line and "over runs 4-6 (Mann-Whitney U, p=" in line and "over 5 splits, q=" in line
    assert "latest run r6 vs first run r1 (2026-03-01 12:00): +" in line
    html = page.read_text(encoding="utf-8")
    assert 'class="steps changepoints"' in html and "r3 (2026-03-03 12:00)" in html and '"change point"' in html


def test_forty_cells_of_pure_noise_flag_no_change_point(tmp_path):
    """42 cells, six runs each, every sample from the same distribution; the threshold 0, so significance alone
    decides. Uncorrected, some cells' p is below alpha; after Benjamini-Hochberg, none."""
    results = tmp_path / "results"
    for i in range(6):
        make_run(results, run_id=f"n{i}", mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                 batch_sizes=(16, 32, 64, 128, 256, 512, 1024), n_samples=50, rng_seed=2000 + i,
                 started=f"2026-04-0{i + 1}T08:00:00+00:00")
    runs, _ = find_runs(results)
    found = change_points(collect(runs, threshold=0.0), threshold=0.0, alpha=0.05)
    assert len(found) == 2 * 7 * 3
    assert any(cp.split.p_value < 0.05 for cp in found)            # what a test per cell would flag
    assert all(cp.verdict == SAME and cp.q_value >= 0.05 for cp in found)
    text, _ = write_history(results, tmp_path / "out", threshold=0)
    assert "Benjamini-Hochberg across 42 cell(s) of 3+ runs: q < 0.05 and |change| > 0%): none" in text


def test_baseline_names_the_pinned_run_and_each_cells_change_against_it(tmp_path):
    results = drifting_runs(tmp_path)
    proc = run_cli("history", str(results), "--baseline", "r2", "--output", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "6 cell(s), baseline run r2" in out
    assert "each cell's latest run against the baseline run r2 (started 2026-03-02 12:00; p < 0.05 and |change| > 5%): " \
           "3 of 6 cell(s) changed" in out
    assert "slower +" in out and "in run r6 (vs baseline r2): tensorflow lenet5 cpu forward," in out
    assert "latest run r6 vs baseline r2 (2026-03-02 12:00): +" in out
    frame = pd.read_csv(tmp_path / "out" / "history.csv")
    assert set(frame["baseline_run"]) == {"r2"} and frame[frame["run"] == "r2"]["baseline_change_pct"].isna().all()
    tf = frame[(frame["framework"] == "tensorflow") & (frame["run"] != "r2")].set_index(["run", "phase"])
    assert (tf.loc["r1", "baseline_change_pct"] < 0).all() and tf.loc["r6", "baseline_change_pct"].between(12, 22).all()
    assert set(frame[frame["baseline_verdict"] == SLOWER]["run"]) == {"r4", "r5", "r6"}
    html = (tmp_path / "out" / "history.html").read_text(encoding="utf-8")
    assert "Against the baseline run r2" in html and 'class="steps baseline"' in html and "baseline r2" in html
    by_folder, _ = write_history(results, tmp_path / "out2", baseline=str(results / "r2"))   # its folder names it too
    assert "baseline run r2" in by_folder


@pytest.mark.parametrize("case", ["unknown", "not_a_run", "outside", "file", "unreadable"])
def test_a_bad_baseline_is_one_line_and_exit_2(tmp_path, case):
    results = tmp_path / "results"
    make_run(results, run_id="only", mode="speed", dataset="synthetic")
    (results / "broken").mkdir()
    (results / "broken" / "results.csv").write_text("a,b\n1,2\n")   # skipped by history, named relative to RESULTS_DIR
    given = {"unknown": "nope", "unreadable": "broken", "not_a_run": str(tmp_path), "file": str(results / "only" / "meta.json"),
             "outside": str(make_run(tmp_path / "elsewhere", run_id="other", mode="speed", dataset="synthetic")
                            if case == "outside" else "")}[case]
    proc = run_cli("history", str(results), "--baseline", given, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convbench: error: baseline ") and "Traceback" not in proc.stderr
    expected = {"unknown": f"'nope' is no run under {str(results)!r}; runs: only", "not_a_run": "is not a convbench run",
                "outside": f"is not a run under {str(results)!r}", "file": "is not a run folder",
                "unreadable": f"'broken' is not a readable run: {str(results / 'broken' / 'results.csv')!r} is not"}[case]
    assert expected in lines[0]


def test_an_ambiguous_run_id_asks_for_the_folder(tmp_path):
    for folder in ("a", "b"):
        make_run(tmp_path / "results" / folder, run_id="same", mode="speed", dataset="synthetic")
    with pytest.raises(ConvbenchError, match=r"baseline 'same' is the run id of 2 runs \(a/same, b/same\); give its folder"):
        write_history(tmp_path / "results", baseline="same")
    assert "baseline run a/same" in write_history(tmp_path / "results", baseline="a/same")[0]


def test_best_split_and_benjamini_hochberg():
    step = [[1.0, 1.1, 0.9, 1.05], [1.0, 0.95, 1.1, 1.0], [2.0, 2.1, 1.9, 2.05], [2.0, 1.95, 2.1, 2.0]]
    split = best_split(step, samples=False)
    assert split is not None and split.index == 2 and split.splits == 3 and split.comparison.ratio > 1.9
    assert split.p_value == pytest.approx(3 * split.comparison.p_value)
    assert best_split(step[:2], samples=True) is None and best_split([[1.0], [2.0], [3.0]], samples=False) is None
    assert adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.04, 0.04]) and adjust([]) == []
