"""When a run memorises, groks and drops its test loss, and when a measure makes its own transition: the ground
truth and the transition times of the progress-measure comparison, each fixed before any run was looked at.

A time is a recorded step, or None when the run never gets there within its history (censored).
"""
from __future__ import annotations

import numpy as np

MEMORISED = 0.99      # train accuracy
GROKKED = 0.95        # test accuracy ...
HOLD = 1000           # ... held at every recorded step for this many steps
HALF = 0.5            # a measure's transition: this share of its change from t_mem to the end


def first_at_or_above(steps, values, level: float) -> int | None:
    hit = np.flatnonzero(np.asarray(values) >= level)
    return int(steps[hit[0]]) if len(hit) else None


def t_mem(steps, train_acc) -> int | None:
    """First recorded step with train accuracy >= MEMORISED."""
    return first_at_or_above(np.asarray(steps), train_acc, MEMORISED)


def t_grok(steps, test_acc, hold: int = HOLD, level: float = GROKKED) -> int | None:
    """First recorded step s with test accuracy >= level at every recorded step in [s, s + hold], the history
    reaching s + hold (a rise too late to be confirmed is censored)."""
    steps, ok = np.asarray(steps), np.asarray(test_acc) >= level
    # last[i]: the end of the streak of ok entries that holds entry i
    last = np.full(len(steps), -1)
    end = -1
    for i in range(len(steps) - 1, -1, -1):
        end = (i if end < 0 else end) if ok[i] else -1
        last[i] = end
    for i in np.flatnonzero(ok):
        if steps[last[i]] >= steps[i] + hold:
            return int(steps[i])
    return None


def t_drop(steps, test_loss, memorised: int | None) -> int | None:
    """First step after t_mem at which the test loss falls to the log-midpoint between its plateau (the median over
    [t_mem, 2 t_mem]) and its final value (the median of the last 10 recorded steps); None without t_mem or when the
    final value is not below the plateau."""
    if memorised is None:
        return None
    steps, loss = np.asarray(steps), np.asarray(test_loss, dtype=np.float64)
    after = steps >= memorised
    plateau = float(np.median(loss[after & (steps <= 2 * max(memorised, 1))]))
    final = float(np.median(loss[-10:]))
    if not final < plateau:
        return None
    mid = np.sqrt(plateau * final)
    hit = np.flatnonzero(after & (loss <= mid))
    return int(steps[hit[0]]) if len(hit) else None


def half_change_time(steps, values, memorised: int | None, share: float = HALF) -> int | None:
    """First step >= t_mem at which the measure has covered `share` of its change from its value at t_mem (the first
    finite entry at or after it) to its last finite value; None without t_mem, a change, or finite values."""
    steps, v = np.asarray(steps), np.asarray(values, dtype=np.float64)
    if memorised is None:
        return None
    keep = np.isfinite(v) & (steps >= memorised)
    steps, v = steps[keep], v[keep]
    if len(v) < 2 or v[-1] == v[0]:
        return None
    covered = (v - v[0]) / (v[-1] - v[0])
    return first_at_or_above(steps, covered, share)


def changepoint_time(steps, values, memorised: int | None) -> int | None:
    """The break of the best two-segment least-squares line fit of the measure against log step over [t_mem, end]
    (each segment its own line, at least 3 points each): the first step of the second segment."""
    steps, v = np.asarray(steps), np.asarray(values, dtype=np.float64)
    if memorised is None:
        return None
    keep = np.isfinite(v) & (steps >= memorised)
    s, v = steps[keep], v[keep]
    if len(v) < 6:
        return None
    x = np.log(np.maximum(s, 1).astype(np.float64))

    def sse(a, b):
        xa, va = x[a:b], v[a:b]
        A = np.stack([xa, np.ones_like(xa)], 1)
        return float(np.sum((va - A @ np.linalg.lstsq(A, va, rcond=None)[0]) ** 2))
    costs = [sse(0, k) + sse(k, len(v)) for k in range(3, len(v) - 2)]
    return int(s[3 + int(np.argmin(costs))])
