"""Readings of "the step at which grokking occurs" (Table 1's GO-Epoch), set side by side.

The paper defines GO-Epoch only as "the epoch at which grokking occurs" and says neither how it read it off
a curve nor which curve (raw or smoothed). So a run's GO step is read here in several ways, each written
down as a `Reading`, and a Table 1 row can be compared with the paper under every one of them:

* what is read: the first step after memorisation at which the smoothed test accuracy has covered a share
  `level` of the way from its value at memorisation (the baseline) to its ceiling (kind "rise": `level` 0.5
  is the chapter's half-way rule, `Table1Rules`; 0.1 an onset), or has risen `level` above the baseline
  (kind "jump": a fixed threshold, which does not depend on a ceiling reached perhaps 20,000 steps later);
* the smoother: the chapter's centred moving average (`analysis.rolling_mean`, window by `Table1Rules`) or
  the released code's own (`released_smooth`, the one its figures draw).

Memorisation, baseline, ceiling and "no grokking" (a ceiling less than `Table1Rules.min_jump` above the
baseline) are those of `analysis.table1_metrics`, on the reading's smoothed curve.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import Table1Rules, mean_sd, rolling_mean, steps_to_threshold

SMOOTHERS = ("moving", "released")
KINDS = ("rise", "jump")


# -- the released code's smoother ------------------------------------------------------------------------
def released_smooth(x, start: int = 1000, window: int = 500, sigma: float = 10.0) -> np.ndarray:
    """The released code's `remove_outliers`, entry by entry (one entry per epoch), in O(n).

    Entries before `start` stay raw. From `start` on, in increasing order, entry i becomes the NaN-mean of the
    entries i - window .. i + window other than i itself, where those left of i are already replaced and those
    right of it are still raw (a recursive moving average). The whole series is then filtered with a Gaussian
    of sd `sigma` entries (scipy's reflect mode) and the raw entries before `start` are put back. A series of
    at most `start` entries is returned unchanged."""
    from scipy.ndimage import gaussian_filter1d

    raw = np.asarray(x, dtype=np.float64)
    n = len(raw)
    if n <= start:
        return raw.copy()
    out = raw.copy()
    ok = ~np.isnan(raw)
    val = np.where(ok, raw, 0.0)
    # the window of entry `start`: out[start - window: start] (all raw still) and raw[start + 1: start + window + 1]
    lo = max(0, start - window)
    left_sum, left_n = float(val[lo:start].sum()), int(ok[lo:start].sum())
    hi = min(n, start + window + 1)
    right_sum, right_n = float(val[start + 1:hi].sum()), int(ok[start + 1:hi].sum())
    for i in range(start, n):
        cnt = left_n + right_n
        new = (left_sum + right_sum) / cnt if cnt else np.nan
        out[i] = new
        # move the window to i + 1: the left part gains out[i] and loses out[i - window]; the right part
        # loses raw[i + 1] and gains raw[i + window + 1]
        if not np.isnan(new):
            left_sum, left_n = left_sum + new, left_n + 1
        j = i - window
        if j >= 0 and not np.isnan(out[j]):
            left_sum, left_n = left_sum - out[j], left_n - 1
        if i + 1 < n and ok[i + 1]:
            right_sum, right_n = right_sum - val[i + 1], right_n - 1
        if i + window + 1 < n and ok[i + window + 1]:
            right_sum, right_n = right_sum + val[i + window + 1], right_n + 1
    return np.concatenate([raw[:start], gaussian_filter1d(out, sigma=sigma)[start:]])


def released_smooth_by_step(x, steps) -> np.ndarray:
    """`released_smooth` of a history recorded at the given steps: linearly interpolated onto every step from
    0 to the last, smoothed there (the released code records every epoch), and read back at the recorded
    steps. A history recorded at every step is smoothed exactly as the released code does."""
    x, steps = np.asarray(x, dtype=np.float64), np.asarray(steps)
    grid = np.arange(int(steps[-1]) + 1)
    if len(steps) == len(grid) and np.array_equal(steps, grid):
        return released_smooth(x)
    ok = ~np.isnan(x)
    return released_smooth(np.interp(grid, steps[ok], x[ok]))[steps]


# -- readings -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    """One way of reading the GO step off a run (see the module's docstring)."""
    name: str               # a short key, e.g. "half"
    label: str              # what a table column says
    kind: str = "rise"      # "rise": a share of the way to the ceiling; "jump": a rise above the baseline
    level: float = 0.5      # that share, or that rise (accuracy, 0-1)
    smoother: str = "moving"

    def __post_init__(self):
        if self.kind not in KINDS or self.smoother not in SMOOTHERS or not 0 < self.level <= 1:
            raise ValueError(f"{self!r} is not allowed: kind one of {KINDS}, smoother one of {SMOOTHERS}, "
                             "level in (0, 1]")

    def describe(self) -> str:
        what = (f"{100 * self.level:g} % of the rise from memorisation to the ceiling" if self.kind == "rise" else
                f"{100 * self.level:g} points above the test accuracy at memorisation")
        how = "the moving average" if self.smoother == "moving" else "the released code's smoother"
        return f"{what}, on {how}"


READINGS = (
    Reading("half", "half-way", "rise", 0.5, "moving"),                 # the chapter's own rule (Table1Rules)
    Reading("onset", "10 % onset", "rise", 0.1, "moving"),
    Reading("jump", "+10 points", "jump", 0.1, "moving"),
    Reading("half_released", "half-way (released smoother)", "rise", 0.5, "released"),
    Reading("onset_released", "10 % onset (released smoother)", "rise", 0.1, "released"),
)
CHAPTER_READING = "half"    # the reading Table 1's main table and result box use (Table1Rules)


def reading(name: str) -> Reading:
    for r in READINGS:
        if r.name == name:
            return r
    raise ValueError(f"reading={name!r} is not allowed; choose one of {', '.join(r.name for r in READINGS)}")


def smooth_curve(test_acc, steps, smoother: str, rules: Table1Rules = Table1Rules()) -> np.ndarray:
    steps = np.asarray(steps)
    if smoother == "moving":
        return rolling_mean(test_acc, rules.window_for(int(steps[-1]) + 1), steps)
    return released_smooth_by_step(test_acc, steps)


def go_step(how: Reading, test_acc, train_acc, steps=None, rules: Table1Rules = Table1Rules(),
            smooth: np.ndarray | None = None) -> int | None:
    """The run's GO step by the reading `how`; None where it does not grok (or never memorises).

    smooth: the smoothed test accuracy, when already computed for this reading's smoother."""
    test_acc = np.asarray(test_acc, dtype=np.float64)
    steps = np.arange(len(test_acc)) if steps is None else np.asarray(steps)
    mem = steps_to_threshold(train_acc, rules.train_level)
    if mem is None:
        return None
    s = smooth_curve(test_acc, steps, how.smoother, rules) if smooth is None else smooth
    after = s[mem:]
    base, top = float(s[mem]), float(np.nanmax(after))
    if top - base < rules.min_jump:
        return None
    level = base + how.level * (top - base) if how.kind == "rise" else base + how.level
    hit = steps_to_threshold(after, level)
    return None if hit is None else int(steps[mem + hit])


def go_steps(history: dict, readings=READINGS, rules: Table1Rules = Table1Rules()) -> dict[str, int | None]:
    """{reading name: GO step} of one run's history (test_acc, train_acc, step), each smoother applied once."""
    smooth = {sm: smooth_curve(history["test_acc"], history["step"], sm, rules) for sm in {r.smoother for r in readings}}
    return {r.name: go_step(r, history["test_acc"], history["train_acc"], history["step"], rules, smooth[r.smoother])
            for r in readings}


# -- a row against the paper's band -----------------------------------------------------------------------
def in_band(go: int | None, band: tuple[int, int]) -> bool:
    """A GO step lies in the paper's centre ± spread."""
    return go is not None and abs(go - band[0]) <= band[1]


def row_go(go: list, band: tuple[int, int] | None) -> dict:
    """One Table 1 row's GO steps (one per run, None where a run does not grok) against the paper's band
    (None: the paper's grokking disappears).

    Returns the mean and sd over the runs that grok, their count, the number of runs in the band, and the
    verdict: with a band, "agrees" (the mean lies in it), "later" or "earlier" (it lies above or below it),
    or "no run groks"; where grokking disappears, "agrees" if at most half of the runs grok, else "differs"."""
    got = [g for g in go if g is not None]
    mean, sd = mean_sd(got)
    out = {"mean": None if not got else mean, "sd": None if not got else sd, "grok": len(got), "runs": len(go),
           "in_band": None if band is None else sum(in_band(g, band) for g in go)}
    if band is None:
        out["verdict"] = "agrees" if len(got) <= len(go) / 2 else "differs"
    elif not got:
        out["verdict"] = "no run groks"
    else:
        out["verdict"] = ("agrees" if abs(mean - band[0]) <= band[1] else "later" if mean > band[0] else "earlier")
    return out


def sensitivity(rows: dict[str, dict]) -> float | None:
    """How far a row's mean GO step moves with the reading: the largest minus the smallest mean over the
    readings (rows: {reading name: row_go}); None if fewer than two readings give a mean."""
    means = [r["mean"] for r in rows.values() if r["mean"] is not None]
    return float(max(means) - min(means)) if len(means) > 1 else None
