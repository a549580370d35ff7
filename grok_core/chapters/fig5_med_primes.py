"""Fig. 5 (Section 6.3): does MED track the test loss, at four primes?

Per run: MED's correlation with the test and train loss on a uniform step grid, and where MED and the log
test loss peak and come half way down (`analysis.peak_and_fall`), to tell whether they fall together.
"""
from __future__ import annotations

import numpy as np

from ..analysis import correlation, group_runs, mean_sd, on_grid, peak_and_fall, steps_to_threshold
from ..plotting import fmt_pm
from ..verdicts import ResultBox
from .claims import reached_text, run_facts
from .settings import FULL_RECORD, PAPER_RECORD, as_int_list, runs_per_seed_pairs

PROFILES = {
    # Fig. 5 (Section 6.3): the Section 6.1 transformer, f = x + y, a 30 % random train set.
    "paper": dict(primes=[47, 97, 211, 379], frac_train=0.3, n_seeds=4, n_split_seeds=2, split_seed=0,
                  n_steps=30000, lr=1e-3, **PAPER_RECORD),
    # Three small primes with a larger train share and learning rate, so that they grok within a few hundred steps.
    "quick": dict(primes=[17, 23, 31], frac_train=0.6, n_seeds=2, n_split_seeds=1, split_seed=0, n_steps=300,
                  lr=1e-2, **FULL_RECORD),
}


def check(S: dict):
    S["primes"] = as_int_list("primes", S["primes"])


def run_configs(S: dict):
    return runs_per_seed_pairs(S, [dict(p=q, fn="add", split="random") for q in S["primes"]])


GROKKING_SPAN = 3   # the stretch around grokking: up to this many times the step of 50 % test accuracy


def near_grokking(h: dict) -> dict | None:
    """The grid entries up to GROKKING_SPAN times the first step of 50 % test accuracy (None if never):
    the rise and fall the figure shows, without the long flat tail that dominates a whole-run correlation."""
    half = steps_to_threshold(h["test_acc"], 0.5, h["step"])
    return None if half is None else {k: v[h["step"] <= GROKKING_SPAN * max(half, 1)] for k, v in h.items()}


def claims(S: dict, runs) -> list[dict]:
    """Per prime: MED's correlation with the test and train loss (uniform step grid), its Spearman correlation
    with the test loss near grokking, steps to 95 % test accuracy, and where MED and log10 test loss peak and
    come half way down (peak_and_fall)."""
    out = []
    window = max(1, min(500, S["n_steps"] // 20))
    for q, rs in group_runs(runs, lambda c: c.p).items():
        grids = [on_grid(r.history, S["record_every"]) for r in rs]
        c_test = [correlation(h["med"], h["test_loss"]) for h in grids]
        c_train = [correlation(h["med"], h["train_loss"]) for h in grids]
        med_pf = [peak_and_fall(h["med"], h["step"], window) for h in grids]
        loss_pf = [peak_and_fall(np.log10(h["test_loss"]), h["step"], window) for h in grids]
        near = [near_grokking(h) for h in grids]
        out.append({"p": q, "steps_to_95": [run_facts(r)["test_acc_95_at"] for r in rs],
                    "pearson_test_loss": [c["pearson"] for c in c_test], "spearman_test_loss": [c["spearman"] for c in c_test],
                    "pearson_train_loss": [c["pearson"] for c in c_train],
                    "spearman_train_loss": [c["spearman"] for c in c_train],
                    "spearman_near_grokking": [None if n is None else correlation(n["med"], n["test_loss"])["spearman"]
                                               for n in near],
                    "med_peak": [m[0] for m in med_pf], "med_half": [m[1] for m in med_pf],
                    "test_loss_peak": [t[0] for t in loss_pf], "test_loss_half": [t[1] for t in loss_pf]})
    return out


CORRELATION_HEADERS = ["p", "runs", "steps to 95 % test acc", "MED vs test loss: Pearson", "Spearman",
                       "MED vs train loss: Pearson", "Spearman"]


def correlation_rows(settings: list[dict]) -> list[list]:
    """Per prime: runs, steps to 95 % test accuracy, MED's Pearson and Spearman correlation with both losses."""
    return [[s["p"], len(s["steps_to_95"]), reached_text(s["steps_to_95"]),
             *(fmt_pm(s[k], 3) for k in ("pearson_test_loss", "spearman_test_loss", "pearson_train_loss",
                                         "spearman_train_loss"))] for s in settings]


def mean_pearson(settings: list[dict]) -> dict[int, float]:
    """Per prime: the mean Pearson correlation between MED and the test loss over its runs."""
    return {s["p"]: mean_sd(s["pearson_test_loss"])[0] for s in settings}


TIMING_HEADERS = ["p", "MED peaks at", "test loss peaks at", "MED half way down at", "test loss half way down at",
                  "MED minus test loss, half-way steps"]


def half_way_gaps(s: dict) -> list[int]:
    """Per run of a setting where both come half way down: MED's half-way step minus the test loss's."""
    return [m - t for m, t in zip(s["med_half"], s["test_loss_half"]) if m is not None and t is not None]


def _median(xs) -> str:
    return f"{np.median(xs):.0f}" if len(xs) else "–"


def timing_rows(settings: list[dict]) -> list[list]:
    """Per prime: median peak and half-way steps of MED and test loss, and the half-way gap's median and range."""
    rows = []
    for s in settings:
        both = half_way_gaps(s)
        rows.append([s["p"], _median(s["med_peak"]), _median(s["test_loss_peak"]),
                     _median([m for m in s["med_half"] if m is not None]),
                     _median([t for t in s["test_loss_half"] if t is not None]),
                     (f"{np.median(both):+.0f} (range {min(both):+.0f} to {max(both):+.0f}; {len(both)} runs)"
                      if both else "–")])
    return rows


def timing(settings: list[dict], close_steps: int) -> list[dict]:
    """Per prime with half-way gaps: how many runs come half way down within close_steps of the test loss,
    the median absolute gap, and in how many MED is the earlier."""
    out = []
    for s in settings:
        both = half_way_gaps(s)
        if both:
            out.append({"p": s["p"], "runs": len(both), "close": sum(abs(x) <= close_steps for x in both),
                        "median_gap": float(np.median([abs(x) for x in both])), "med_first": sum(x < 0 for x in both)})
    return out


TRACKS = 0.5   # a mean Spearman correlation of at least this is a clear joint rise and fall, not a wiggle
GROKS = 0.5    # a prime groks when at least this share of its runs reaches 95 % test accuracy


def _mean(xs) -> float:
    got = [x for x in xs if x is not None and not np.isnan(x)]
    return float(np.mean(got)) if got else float("nan")


def verdict(settings: list[dict]) -> str:
    """Reproduced if MED tracks the test loss over whole runs at every prime and every prime groks; partly if
    it tracks near grokking at half the primes at least; contradicted if near grokking it anti-tracks
    (mean Spearman below 0) at most primes; not reproduced otherwise."""
    whole = [_mean(s["spearman_test_loss"]) for s in settings]
    near = [_mean(s["spearman_near_grokking"]) for s in settings]
    grok = [sum(x is not None for x in s["steps_to_95"]) >= GROKS * len(s["steps_to_95"]) for s in settings]
    if settings and all(w >= TRACKS for w in whole) and all(grok):
        return "reproduced"
    if sum(n < 0 for n in near) > len(near) / 2:
        return "contradicted"
    return "partly reproduced" if near and sum(n >= TRACKS for n in near) >= len(near) / 2 else "not reproduced"


def result(S: dict, C: dict) -> ResultBox:
    """Fig. 5's claim against the Spearman correlations of MED and test loss, over whole runs and near grokking."""
    st = C["settings"]
    per_p = "; ".join(
        f"p = {s['p']}: {_mean(s['spearman_test_loss']):+.2f} over the whole run, "
        f"{_mean(s['spearman_near_grokking']):+.2f} near grokking, "
        f"{sum(x is not None for x in s['steps_to_95'])}/{len(s['steps_to_95'])} runs reach 95 % test accuracy"
        for s in st)
    return ResultBox(
        claim="MED and the test loss move together at p = 47, 97, 211 and 379 (Section 6.3, Fig. 5).",
        measured=(f"Mean per-run Spearman correlation of MED with the test loss ({len(C['runs'])} runs, "
                  f"{len(st[0]['steps_to_95']) if st else 0} seed pairs per prime, frac_train {S['frac_train']}, "
                  f"{S['n_steps']:,} steps): {per_p}. Near grokking means up to {GROKKING_SPAN}× the first step "
                  "of 50 % test accuracy."),
        verdict=verdict(st),
        rule=(f"Reproduced if the whole-run mean Spearman is at least {TRACKS} at every prime and at least "
              f"{GROKS:.0%} of each prime's runs reach 95 %; partly if the near-grokking mean is at least {TRACKS} "
              "at half the primes or more; contradicted if it is negative at most primes; else not reproduced."))
