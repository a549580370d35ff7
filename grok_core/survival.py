"""Steps to a threshold as censored data: the Kaplan–Meier estimate, its median and the restricted mean.

A run that reaches, say, 95 % test accuracy at step t gives an event at t; a run that never gets there within
its n_steps is censored at n_steps: all we know is that it would take longer. A mean over only the runs that got
there drops the slowest runs, and drops a different number of them in each setting. The estimates here keep them:

* `kaplan_meier`: the share of runs not yet at the threshold, as a step function of the step. At each step t at
  which d runs reach it, with n runs not yet there nor censored before t (a run censored at t counts as at risk
  at t), the share is multiplied by 1 − d / n.
* `km_median`: the first step at which that share is at most one half; None ("not reached") when it stays above,
  which is when fewer than half the runs got there and the others were censored.
* `restricted_mean`: the area under the curve from 0 to a horizon tau, the mean of min(steps, tau). When every
  censored run is censored at tau itself, it is the plain mean with each such run counted as tau.

`from_steps` turns a list of steps (None: never got there) into (times, observed) pairs censored at a cap;
`steps_restricted_mean` takes the restricted mean of such a list directly.
"""
from __future__ import annotations

import math

import numpy as np


def from_steps(steps, cap: float) -> tuple[np.ndarray, np.ndarray]:
    """(times, observed) of steps to a threshold: None (never got there) or a step beyond cap is censored at cap."""
    times = np.array([cap if x is None else min(x, cap) for x in steps], dtype=np.float64)
    observed = np.array([x is not None and x <= cap for x in steps], dtype=bool)
    return times, observed


def _checked(times, observed) -> tuple[np.ndarray, np.ndarray]:
    t, o = np.asarray(times, dtype=np.float64), np.asarray(observed, dtype=bool)
    if t.ndim != 1 or t.shape != o.shape:
        raise ValueError(f"times and observed must be 1-D and of equal length; got {t.shape} and {o.shape}")
    if np.any(np.isnan(t)) or np.any(t < 0):
        raise ValueError("times must be non-negative numbers")
    return t, o


def kaplan_meier(times, observed) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan–Meier estimate: (event times ascending, share not yet there just after each).

    Before the first event time the share is 1. Only steps at which some run gets there appear; censoring alone
    does not change the share, it only shrinks the number at risk for later events."""
    t, o = _checked(times, observed)
    event_times = np.unique(t[o])
    share, out = 1.0, []
    for u in event_times:
        at_risk = int(np.sum(t >= u))
        events = int(np.sum((t == u) & o))
        share *= 1.0 - events / at_risk
        out.append(share)
    return event_times, np.array(out, dtype=np.float64)


def survival_at(x, times, observed) -> np.ndarray:
    """The Kaplan–Meier share not yet there at each step in x (right-continuous: an event at x counts)."""
    et, share = kaplan_meier(times, observed)
    idx = np.searchsorted(et, np.asarray(x, dtype=np.float64), side="right")
    return np.concatenate([[1.0], share])[idx]


def km_median(times, observed) -> float | None:
    """The first event time at which the Kaplan–Meier share not yet there is at most 0.5; None if it never is."""
    et, share = kaplan_meier(times, observed)
    below = np.nonzero(share <= 0.5 + 1e-12)[0]
    return float(et[below[0]]) if len(below) else None


def restricted_mean(times, observed, tau: float) -> float:
    """Area under the Kaplan–Meier curve from 0 to tau (the restricted mean time); NaN for no runs.

    Equals the mean of min(times, tau) when no run is censored before tau."""
    t, _ = _checked(times, observed)
    if len(t) == 0:
        return math.nan
    et, share = kaplan_meier(times, observed)
    keep = et < tau
    edges = np.concatenate([[0.0], et[keep], [tau]])
    levels = np.concatenate([[1.0], share[keep]])
    return float(np.sum(levels * np.diff(edges)))


def steps_restricted_mean(steps, cap: float) -> float:
    """The restricted mean of steps to a threshold (None: never got there), censored at and restricted to cap."""
    return restricted_mean(*from_steps(steps, cap), cap)


def curve(times, observed, until: float) -> tuple[np.ndarray, np.ndarray]:
    """The Kaplan–Meier curve as points for a step plot (matplotlib `where="post"`) from step 0 to `until`."""
    et, share = kaplan_meier(times, observed)
    keep = et <= until
    return (np.concatenate([[0.0], et[keep], [until]]),
            np.concatenate([[1.0], share[keep], [share[keep][-1] if keep.any() else 1.0]]))
