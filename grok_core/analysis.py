"""Numbers read off training histories: the Table 1 quantities, steps to a threshold, correlations.

Table 1 of the paper (Section 6.1) reports, per training-set distribution, U-Acc (the accuracy
ceiling grokking reaches), L-Acc (the lowest accuracy after that ceiling) and GO-Epoch (when
grokking happens). The paper does not spell out how it read them off its curves, so the rules
used here are written down in `Table1Rules` and applied identically to every run. The paper's
own numbers are kept as data (`PAPER_TABLE1`) so notebooks can print them beside ours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Table 1 of Gu et al. 2025, "Beyond Progress Measures: Theoretical Insights into the Mechanism
# of Grokking" (arXiv:2504.03162v2, Section 6.1, "Upper Limit of Accuracy Under Specific Training
# Set Distributions"): p = 97, f = i + j, 1-layer transformer, train fraction 0.3. Accuracies in
# percent; GO-Epoch as (centre, spread) or None where the paper writes "disappears".
PAPER_TABLE1 = [
    {"split": "square", "param": 30, "u_acc": 99.04, "l_acc": 91.27, "go_epoch": (1500, 100)},
    {"split": "square", "param": 35, "u_acc": 91.07, "l_acc": 80.73, "go_epoch": (1500, 100)},
    {"split": "square", "param": 40, "u_acc": 84.50, "l_acc": 81.68, "go_epoch": (1700, 100)},
    {"split": "square", "param": 45, "u_acc": 79.03, "l_acc": 76.07, "go_epoch": (1900, 100)},
    {"split": "square", "param": 50, "u_acc": 77.39, "l_acc": 66.02, "go_epoch": (3400, 200)},
    {"split": "square", "param": 55, "u_acc": 62.09, "l_acc": 57.69, "go_epoch": (2600, 100)},
    {"split": "square", "param": 60, "u_acc": 57.31, "l_acc": 55.18, "go_epoch": (2200, 100)},
    {"split": "strip", "param": 67, "u_acc": 7.56, "l_acc": 3.58, "go_epoch": None},
    {"split": "strip", "param": 60, "u_acc": 33.25, "l_acc": 17.05, "go_epoch": (900, 100)},
    {"split": "strip", "param": 50, "u_acc": 80.10, "l_acc": 73.61, "go_epoch": (1600, 100)},
    {"split": "strip", "param": 40, "u_acc": 89.89, "l_acc": 84.80, "go_epoch": (1300, 100)},
]


def paper_table1_row(split: str, param: int) -> dict | None:
    """The paper's Table 1 row for (split, k or t), or None if the paper has no such row."""
    for row in PAPER_TABLE1:
        if row["split"] == split and row["param"] == param:
            return row
    return None


def rolling_mean(x: np.ndarray, window: int, steps: np.ndarray | None = None) -> np.ndarray:
    """Centred moving average over a window of `window` steps (shrunk at the ends, NaNs ignored).

    steps: the step of each entry (a thinned history); each entry averages the entries whose step
    lies within window // 2 of its own. None means one entry per step.
    """
    x = np.asarray(x, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window={window!r} is not allowed; it must be >= 1")
    steps = np.arange(len(x)) if steps is None else np.asarray(steps)
    if window == 1 or len(x) == 0:
        return x.copy()
    half = window // 2
    ok = ~np.isnan(x)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    n = np.concatenate([[0], np.cumsum(ok)])
    lo = np.searchsorted(steps, steps - half, side="left")
    hi = np.searchsorted(steps, steps + half, side="right")
    cnt = n[hi] - n[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (c[hi] - c[lo]) / np.maximum(cnt, 1), np.nan)


def steps_to_threshold(curve: np.ndarray, threshold: float, steps: np.ndarray | None = None) -> int | None:
    """First step at which curve >= threshold (steps: the step of each entry; None: the index), or None."""
    hit = np.nonzero(np.asarray(curve) >= threshold)[0]
    if not len(hit):
        return None
    return int(hit[0]) if steps is None else int(np.asarray(steps)[hit[0]])


def peak_and_fall(curve: np.ndarray, steps: np.ndarray, window: int = 500, tail: float = 0.1) -> tuple[int, int | None]:
    """When a curve peaks and when it has come half way down again: (peak step, half-fall step).

    The curve is smoothed by a centred moving average over `window` steps; the peak is its maximum,
    the final level the mean of the last `tail` share of the entries, and the half-fall step the first
    step after the peak at which the smoothed curve is at or below the midpoint of the two (None if
    never). Comparing these steps for two curves says whether they rise and fall at the same time,
    which a correlation over the whole run, dominated by the long plateau after grokking, does not."""
    steps = np.asarray(steps)
    smooth = rolling_mean(curve, window, steps)
    k = int(np.nanargmax(smooth))
    final = float(np.nanmean(smooth[-max(1, int(len(smooth) * tail)):]))
    below = np.nonzero(smooth[k:] <= (smooth[k] + final) / 2)[0]
    return int(steps[k]), (int(steps[k + below[0]]) if len(below) else None)


def on_grid(history: dict, every: int) -> dict:
    """The entries of a (possibly thinned) history at steps divisible by `every`: a uniform grid, so
    that averages and correlations weigh every part of training alike."""
    steps = np.asarray(history["step"])
    keep = steps % every == 0
    return {k: np.asarray(v)[keep] for k, v in history.items()}


@dataclass(frozen=True)
class Table1Rules:
    """How U-Acc, L-Acc and GO-Epoch are read off one run's test-accuracy curve.

    1. Smooth: the recorded test accuracy is averaged over a centred window of `window` steps
       (None: 1 % of the run, at least 1 and at most 200 steps), so a one-step spike is not a ceiling.
       A thinned history is smoothed by step, not by entry (see `rolling_mean`), and every step
       reported below is a recorded step.
    2. Memorisation step: the first step with train accuracy >= `train_level`.
       Baseline: the smoothed test accuracy at that step.
    3. U-Acc: the maximum of the smoothed test accuracy from the memorisation step on; its step is
       the ceiling step.
    4. L-Acc: the minimum of the smoothed test accuracy from the ceiling step to the end.
    5. GO-Epoch: the first step after memorisation at which the smoothed test accuracy has covered
       `rise` of the way from the baseline to U-Acc. If U-Acc exceeds the baseline by less than
       `min_jump` there is no grokking to date and GO-Epoch is None ("disappears" in the paper).
       If train accuracy never reaches `train_level`, all three are None.
    """
    window: int | None = None
    train_level: float = 0.99
    rise: float = 0.5
    min_jump: float = 0.05

    def window_for(self, n_steps: int) -> int:
        if self.window is not None:
            return self.window
        return int(min(200, max(1, n_steps // 100)))


@dataclass(frozen=True)
class Table1Result:
    u_acc: float | None        # fraction in [0, 1]
    l_acc: float | None
    go_epoch: int | None       # step index (full batch: step = epoch)
    memorised_at: int | None   # first step with train accuracy >= rules.train_level
    ceiling_at: int | None     # step of U-Acc
    baseline: float | None     # smoothed test accuracy at memorisation


def table1_metrics(test_acc: np.ndarray, train_acc: np.ndarray, rules: Table1Rules = Table1Rules(),
                   steps: np.ndarray | None = None) -> Table1Result:
    """U-Acc, L-Acc and GO-Epoch of one run by the rules in `Table1Rules`.

    steps: the step of each entry of a thinned history (None: one entry per step)."""
    test_acc = np.asarray(test_acc, dtype=np.float64)
    train_acc = np.asarray(train_acc, dtype=np.float64)
    if test_acc.shape != train_acc.shape or test_acc.ndim != 1:
        raise ValueError(f"test_acc and train_acc must be 1-D and of equal length; got {test_acc.shape} "
                         f"and {train_acc.shape}")
    steps = np.arange(len(test_acc)) if steps is None else np.asarray(steps)
    if steps.shape != test_acc.shape:
        raise ValueError(f"steps must give one step per entry; got {steps.shape} for {test_acc.shape}")
    mem = steps_to_threshold(train_acc, rules.train_level)            # entry index
    if mem is None:
        return Table1Result(None, None, None, None, None, None)
    smooth = rolling_mean(test_acc, rules.window_for(int(steps[-1]) + 1), steps)
    after = smooth[mem:]
    ceiling_at = mem + int(np.nanargmax(after))
    u = float(smooth[ceiling_at])
    low = float(np.nanmin(smooth[ceiling_at:]))
    base = float(smooth[mem])
    go = None
    if u - base >= rules.min_jump:
        go_rel = steps_to_threshold(after, base + rules.rise * (u - base))
        go = None if go_rel is None else int(steps[mem + go_rel])
    return Table1Result(u, low, go, int(steps[mem]), int(steps[ceiling_at]), base)


def correlation(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation of two equally long series (NaN pairs dropped)."""
    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape; got {x.shape} and {y.shape}")
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": math.nan, "spearman": math.nan}
    return {"pearson": float(stats.pearsonr(x, y)[0]), "spearman": float(stats.spearmanr(x, y)[0])}


def group_runs(runs, by) -> dict:
    """Runs grouped by `by(run.config)` (first-seen order): {group value: [Run, ...]}."""
    out = {}
    for r in runs:
        out.setdefault(by(r.config), []).append(r)
    return out


def stack(runs, key: str) -> np.ndarray:
    """[run, step] array of one history entry over runs of equal length."""
    arrays = [np.asarray(r.history[key], dtype=np.float64) for r in runs]
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"runs have different lengths {sorted(lengths)}; stack runs of one setting only")
    return np.stack(arrays)


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of the non-None values; NaN if none."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


# -- ResNet-18 verdicts (Figs. 6-7): per-epoch histories, train accuracy counted on the fly ---------------------
GROK_DELAY = 1000   # epochs from fitting to generalising that count as grokking (Fig. 7: about 2,700)


def grok_epoch(history: dict, threshold: float = 0.95) -> int | None:
    """First evaluated epoch with test accuracy >= threshold, or None (the paper's Fig 7 jump is 0.4 -> 1)."""
    return steps_to_threshold(history["test_acc"], threshold, history["eval_epoch"])


def fit_epoch(history: dict, threshold: float = 0.95, window: int = 20) -> int | None:
    """First epoch whose on-the-fly train accuracy, averaged over the last `window` epochs, is >= threshold."""
    acc = np.asarray(history["train_acc"], dtype=float)
    if len(acc) < window:
        return None
    hit = np.nonzero(np.convolve(acc, np.ones(window) / window, mode="valid") >= threshold)[0]
    return int(history["epoch"][hit[0] + window - 1]) if len(hit) else None


def grokking_verdict(history: dict, threshold: float = 0.95, min_delay: int = GROK_DELAY) -> dict:
    """Grokking is a delay: train accuracy reaches `threshold` early and test accuracy only much later.

    Returns the two epochs (fit_epoch, grok_epoch) and the kind: "grokking" (test follows at least
    min_delay epochs after train), "no delay" (test reaches it sooner, or before train does) or
    "not reached" (test never does)."""
    fit, gen = fit_epoch(history, threshold), grok_epoch(history, threshold)
    if gen is None:
        kind = "not reached"
    elif fit is not None and gen - fit >= min_delay:
        kind = "grokking"
    else:
        kind = "no delay"
    return {"fit": fit, "generalise": gen, "kind": kind}
