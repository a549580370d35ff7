"""The four criteria of the progress-measure comparison, and their uncertainty: lead time, across-run ordering
(Harrell's concordance with censoring, Spearman, leave-one-p-out prediction), within-run tracking, and a strictly
causal early warning against the clock; bootstrap intervals over runs and a permutation test.

Plain numpy on per-run numbers; every function takes runs in one order and treats them alike.
"""
from __future__ import annotations

import numpy as np

N_BOOT = 1000
N_PERM = 1000
RIDGE = 1.0           # the L2 penalty of the early-warning fits, on standardised features


def ranks(x) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def spearman(a, b) -> float:
    """Spearman's rho (Pearson of the tie-averaged ranks); NaN with fewer than 3 pairs or a constant side."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 3:
        return float("nan")
    ra, rb = ranks(a) - (len(a) + 1) / 2, ranks(b) - (len(b) + 1) / 2
    den = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / den) if den > 0 else float("nan")


def concordance(pred, time, event) -> float:
    """Harrell's C of a predicted time against observed times, event False for a censored run (time: its last
    step). A pair is comparable when the earlier time is an event; concordant when its prediction is the smaller,
    half when the predictions tie. NaN without comparable pairs."""
    pred, time, event = (np.asarray(x, dtype=np.float64) for x in (pred, time, event))
    earlier = (time[:, None] < time[None, :]) & (event[:, None] > 0)
    if not earlier.any():
        return float("nan")
    score = (pred[:, None] < pred[None, :]) + 0.5 * (pred[:, None] == pred[None, :])
    return float(score[earlier].sum() / earlier.sum())


def auroc(score, label) -> float:
    """Area under the ROC curve of score for the positives (label True): the share of (positive, negative) pairs
    in which the positive scores higher, ties half. NaN without both classes."""
    score, label = np.asarray(score, dtype=np.float64), np.asarray(label, dtype=bool)
    pos, neg = score[label], score[~label]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def bootstrap(stat, n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """[n_boot] values of stat(indices) over resamples of the n runs with replacement (NaN results kept)."""
    rng = np.random.default_rng(seed)
    return np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)])


def interval(values, level: float = 0.95) -> tuple[float, float]:
    """The central percentile interval of bootstrap values, NaNs left out."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    lo, hi = np.percentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def permutation_p(pred, time, event, n_perm: int = N_PERM, seed: int = 0) -> float:
    """One-sided p of the concordance: how often predictions shuffled across runs do at least as well."""
    rng = np.random.default_rng(seed)
    pred = np.asarray(pred, dtype=np.float64)
    observed = concordance(pred, time, event)
    hits = sum(concordance(rng.permutation(pred), time, event) >= observed for _ in range(n_perm))
    return (1 + hits) / (1 + n_perm)


def lead_summary(leads) -> dict:
    """Median, quartiles, the share of positive leads and the median's bootstrap interval."""
    x = np.asarray([v for v in leads if v is not None], dtype=np.float64)
    if not len(x):
        return {"n": 0, "median": None, "q1": None, "q3": None, "positive": None, "ci": [None, None]}
    lo, hi = interval(bootstrap(lambda i: np.median(x[i]), len(x)))
    return {"n": len(x), "median": float(np.median(x)), "q1": float(np.percentile(x, 25)),
            "q3": float(np.percentile(x, 75)), "positive": float(np.mean(x > 0)), "ci": [lo, hi]}


def leave_one_group_out_error(x, y, groups) -> float:
    """Median |error| of y predicted from x by a least-squares line fitted on the other groups (each held out in
    turn); NaN when a held-out group has no other group to learn from."""
    x, y, groups = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), np.asarray(groups)
    errors = []
    for g in np.unique(groups):
        train = groups != g
        if train.sum() < 2 or np.ptp(x[train]) == 0:
            return float("nan")
        b, a = np.polyfit(x[train], y[train], 1)
        errors += list(np.abs(a + b * x[~train] - y[~train]))
    return float(np.median(errors)) if errors else float("nan")


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(0), train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    add = lambda z: np.hstack([np.ones((len(z), 1)), (z - mu) / sd])
    return add(train), add(test)


def ridge_logistic(X: np.ndarray, y: np.ndarray, ridge: float = RIDGE, iters: int = 50) -> np.ndarray:
    """Weights of an L2-penalised logistic regression (intercept first, unpenalised) by Newton's method."""
    w = np.zeros(X.shape[1])
    pen = np.full(X.shape[1], ridge)
    pen[0] = 0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(X @ w, -30, 30)))
        grad = X.T @ (p - y) + pen * w
        H = (X * (p * (1 - p))[:, None]).T @ X + np.diag(pen) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(H, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def ridge_linear(X: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    pen = np.full(X.shape[1], ridge)
    pen[0] = 0
    return np.linalg.solve(X.T @ X + np.diag(pen), X.T @ y)


def loo_scores(X, y, kind: str) -> np.ndarray:
    """Leave-one-run-out predictions: the probability (kind 'logistic') or value ('linear') for each run from a fit
    on the others, features standardised on the others."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        A, a = _standardise(X[keep], X[i:i + 1])
        if kind == "logistic":
            out[i] = float(1 / (1 + np.exp(-np.clip((a @ ridge_logistic(A, y[keep]))[0], -30, 30))))
        else:
            out[i] = float((a @ ridge_linear(A, y[keep]))[0])
    return out
