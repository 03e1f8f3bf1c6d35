"""The end-of-run comparison table."""
from __future__ import annotations

from harness.results.table import comparison_table


def speed_row(framework: str, batch: int, ms: float, note: str | None = None) -> dict:
    return {"mode": "speed", "framework": framework, "model": "vgg16", "device": "cuda:0", "phase": "train",
            "status": "ok", "batch_size": batch, "ms_median": ms, "images_per_sec": 1000 * batch / ms, "note": note,
            "world_size": 1}


def test_a_cell_that_oom_retry_shrank_shows_its_batch():
    """--oom-retry halved JAX's batch: the table put 64-image steps beside 128-image ones without a word."""
    rows = [speed_row("torch", 128, 200.0), speed_row("jax", 64, 110.0, "batch halved from 128 to 64 after "
                                                                        "out-of-memory (--oom-retry)")]
    table = comparison_table(rows)
    line = next(line for line in table.splitlines() if line.startswith("vgg16"))
    assert "200.0 ms (640 img/s) [batch 128]" in line and "110.0 ms (582 img/s) [batch 64]" in line
    assert "[batch" not in comparison_table([speed_row("torch", 128, 200.0), speed_row("jax", 128, 190.0)])
