"""Whether two curves of a run move together: where each peaks and comes half way down, and their correlation
in windows of the step.

A correlation over a whole run says little about timing: long flat stretches dominate it, and two curves can
correlate while one rises a thousand steps before the other. So:

* `lead_lag`: the peak and the half-way fall of each curve (`analysis.peak_and_fall`) and the differences,
  a's step minus b's: a positive lag means a comes later.
* `windowed_spearman`: the Spearman correlation of the two curves inside each window of steps, so a stretch
  where they rise and fall together is told apart from one where they move in opposite directions. A thinned
  history records densely at first and sparsely later; within each window the entries are thinned to the
  window's coarsest recording interval, so that no part of a window weighs more than another.
* `log_windows`: windows of equal width in log10(step), overlapping by half, the last one ending at the run's end.
"""
from __future__ import annotations

import math

import numpy as np

from .analysis import peak_and_fall


def lead_lag(steps, a, b, window: int, tail: float = 0.1) -> dict:
    """Peak and half-way steps of curves a and b (smoothed over `window` steps; see `analysis.peak_and_fall`) and
    a's minus b's: {"peak_a", "peak_b", "half_a", "half_b", "peak_lag", "half_lag"} (a half or its lag is None
    where the curve never comes half way down)."""
    steps = np.asarray(steps)
    pa, ha = peak_and_fall(np.asarray(a, dtype=np.float64), steps, window, tail)
    pb, hb = peak_and_fall(np.asarray(b, dtype=np.float64), steps, window, tail)
    return {"peak_a": pa, "peak_b": pb, "half_a": ha, "half_b": hb, "peak_lag": pa - pb,
            "half_lag": None if ha is None or hb is None else ha - hb}


def log_windows(first: int, last: int, width: float = 0.5, per_decade: int = 4) -> list[tuple[int, int]]:
    """Windows [lo, hi] of `width` decades of step, one every 1/per_decade decade, the last ending at `last` and
    none starting below `first` (> 0); in increasing order, in whole steps (lo rounded up, hi down)."""
    if not (0 < first < last) or width <= 0 or per_decade < 1:
        raise ValueError(f"need 0 < first < last, width > 0 and per_decade >= 1; got {first}, {last}, {width}, "
                         f"{per_decade}")
    out, top, k = [], math.log10(last), 0
    while top - k / per_decade - width >= math.log10(first) - 1e-9:
        hi = top - k / per_decade
        out.append((math.ceil(10 ** (hi - width) - 1e-6), math.floor(10 ** hi + 1e-6)))
        k += 1
    return out[::-1]


def _uniform(steps: np.ndarray) -> np.ndarray:
    """A mask keeping the entries whose step is a multiple of the largest gap between consecutive steps."""
    if len(steps) < 2:
        return np.ones(len(steps), dtype=bool)
    gap = int(np.max(np.diff(steps)))
    return steps % max(gap, 1) == 0


def windowed_spearman(steps, x, y, windows, min_points: int = 10) -> list[float]:
    """The Spearman correlation of x and y over the entries with lo <= step <= hi of each window (thinned to the
    window's coarsest recording interval); NaN where fewer than min_points remain or either is constant."""
    from scipy import stats

    steps = np.asarray(steps)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if not (steps.shape == x.shape == y.shape):
        raise ValueError(f"steps, x and y must have the same shape; got {steps.shape}, {x.shape}, {y.shape}")
    out = []
    for lo, hi in windows:
        inside = np.nonzero((steps >= lo) & (steps <= hi))[0]
        inside = inside[_uniform(steps[inside])]
        xs, ys = x[inside], y[inside]
        ok = ~(np.isnan(xs) | np.isnan(ys))
        xs, ys = xs[ok], ys[ok]
        if len(xs) < min_points or np.ptp(xs) == 0 or np.ptp(ys) == 0:
            out.append(math.nan)
        else:
            out.append(float(stats.spearmanr(xs, ys)[0]))
    return out
