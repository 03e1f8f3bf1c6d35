"""Statistics over raw per-step samples. Pure Python: no numpy, no pandas."""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Sequence


@dataclass(frozen=True)
class SampleStats:
    n: int
    mean: float
    std: float
    median: float
    iqr: float
    min: float
    max: float
    ci_low: float    # 95% confidence interval of the median (distribution-free, order statistics)
    ci_high: float

    def scaled(self, factor: float) -> dict[str, float]:
        """Every figure but n multiplied by ``factor`` (e.g. 1000 for seconds -> milliseconds)."""
        return {k: (v if k == "n" else v * factor) for k, v in asdict(self).items()}


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default 'linear' method)."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def median_ci(sorted_values: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """Ranks n/2 -/+ z*sqrt(n)/2 (normal approximation to the binomial), clipped to the sample."""
    n = len(sorted_values)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return sorted_values[lo], sorted_values[hi]


def sample_stats(samples: Sequence[float]) -> SampleStats:
    if not samples:
        raise ValueError("no samples")
    s = sorted(samples)
    lo, hi = median_ci(s)
    return SampleStats(n=len(s), mean=statistics.fmean(s), std=statistics.stdev(s) if len(s) > 1 else 0.0,
                   median=statistics.median(s), iqr=quantile(s, 0.75) - quantile(s, 0.25),
                   min=s[0], max=s[-1], ci_low=lo, ci_high=hi)
