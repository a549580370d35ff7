"""Fig. 5 (Section 6.3): does MED track the test loss, at four primes?

Per run, on a uniform step grid: MED's Spearman (and Pearson) correlation with the test and train loss over the
whole run and near grokking (up to GROKKING_SPAN times the step of 50 % test accuracy); within that stretch, where
MED and the log test loss peak and come half way down (`lead_lag.lead_lag`), to tell whether they fall together;
and MED at the end of the run against its start and against its low after grokking. On the recorded history,
each window thinned to a uniform grid: the correlation inside windows of log-step (`lead_lag.windowed_spearman`),
to tell where in training the two move together and where in opposite directions.
"""
from __future__ import annotations

import numpy as np

from ..analysis import correlation, group_runs, mean_sd, on_grid, rolling_mean, steps_to_threshold
from ..lead_lag import lead_lag, log_windows, windowed_spearman
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
WINDOW_FIRST = 10   # the windows of log-step start at this step or later ...
WINDOW_WIDTH = 0.5  # ... are half a decade wide (a factor of 3.2 in step) ...
PER_DECADE = 4      # ... and start every quarter decade, so that each overlaps the next by half
TAIL = 0.1          # a run's end: the last tenth of its grid entries


def grokking_span(h: dict) -> int | None:
    """The last step of the stretch around grokking: GROKKING_SPAN times the first step of 50 % test accuracy, or
    the run's last step if that comes first (None if the run never gets to 50 %)."""
    half = steps_to_threshold(h["test_acc"], 0.5, h["step"])
    return None if half is None else min(GROKKING_SPAN * max(half, 1), int(h["step"][-1]))


def near_grokking(h: dict) -> dict | None:
    """The grid entries up to `grokking_span` (None if the run never gets to 50 % test accuracy): the rise and
    fall the figure shows, without the long flat tail that dominates a whole-run correlation."""
    end = grokking_span(h)
    return None if end is None else {k: v[h["step"] <= end] for k, v in h.items()}


def smoothing_window(last_step: int) -> int:
    """The moving-average window for peaks and falls: 5 % of the stretch, at most 500 steps, at least 1."""
    return max(1, min(500, int(last_step) // 20))


def windows(S: dict) -> list[tuple[int, int]]:
    """The windows of log-step in which MED and the test loss are correlated (`lead_lag.log_windows`)."""
    return log_windows(WINDOW_FIRST, S["n_steps"], WINDOW_WIDTH, PER_DECADE)


def _end(x: np.ndarray) -> float:
    return float(np.mean(x[-max(1, int(len(x) * TAIL)):]))


def med_levels(g: dict, med_peak: int | None) -> dict:
    """MED at the end of the run (mean of the last TAIL of the grid) over MED at step 0, and over its lowest
    smoothed value after its peak near grokking (None without one): whether MED climbs again after it fell."""
    med = np.asarray(g["med"], dtype=np.float64)
    end = _end(med)
    low = None
    if med_peak is not None:
        smooth = rolling_mean(med, smoothing_window(int(g["step"][-1])), g["step"])
        low = float(np.nanmin(smooth[g["step"] >= med_peak]))
    return {"med_end_over_start": end / float(med[0]), "med_end_over_low": None if low is None else end / low,
            "test_loss_end": _end(np.asarray(g["test_loss"], dtype=np.float64))}


def run_claims(h: dict, S: dict) -> dict:
    """One run's numbers on the grid (every record_every-th step): whole-run and near-grokking correlations of MED
    with the losses, the peaks and half-way falls near grokking, MED's end levels; and on the recorded history (each
    window thinned to its coarsest interval) MED's Spearman correlation with the test loss in each window."""
    g = on_grid(h, S["record_every"])
    c_test, c_train = correlation(g["med"], g["test_loss"]), correlation(g["med"], g["train_loss"])
    near = near_grokking(g)
    ll = (None if near is None else
          lead_lag(near["step"], near["med"], np.log10(near["test_loss"]), smoothing_window(near["step"][-1]), TAIL))
    return {"pearson_test_loss": c_test["pearson"], "spearman_test_loss": c_test["spearman"],
            "pearson_train_loss": c_train["pearson"], "spearman_train_loss": c_train["spearman"],
            "spearman_windows": windowed_spearman(h["step"], h["med"], h["test_loss"], windows(S)),
            "test_acc_50_at": steps_to_threshold(g["test_acc"], 0.5, g["step"]), "grokking_span": grokking_span(g),
            "spearman_near_grokking": None if near is None else correlation(near["med"], near["test_loss"])["spearman"],
            "med_peak": None if ll is None else ll["peak_a"], "med_half": None if ll is None else ll["half_a"],
            "test_loss_peak": None if ll is None else ll["peak_b"],
            "test_loss_half": None if ll is None else ll["half_b"],
            **med_levels(g, None if ll is None else ll["peak_a"])}


def claims(S: dict, runs) -> list[dict]:
    """Per prime: steps to 95 % test accuracy and `run_claims` of every run, each as a list over its runs, and
    the windows of log-step."""
    out = []
    for q, rs in group_runs(runs, lambda c: c.p).items():
        per_run = [run_claims(r.history, S) for r in rs]
        out.append({"p": q, "steps_to_95": [run_facts(r)["test_acc_95_at"] for r in rs],
                    "windows": [list(w) for w in windows(S)],
                    **{k: [c[k] for c in per_run] for k in per_run[0]}})
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


def _mean(xs) -> float:
    got = [x for x in xs if x is not None and not np.isnan(x)]
    return float(np.mean(got)) if got else float("nan")


def summary(s: dict) -> dict:
    """A prime's headline numbers: mean Spearman over whole runs and near grokking (and over how many runs), the
    median step of 50 % test accuracy and of the end of the stretch around grokking (None if no run has one), and
    the mean peak and half-way gaps (MED minus test loss; NaN without runs)."""
    def median(xs):
        xs = [x for x in xs if x is not None]
        return float(np.median(xs)) if xs else None
    return {"p": s["p"], "whole": _mean(s["spearman_test_loss"]), "near": _mean(s["spearman_near_grokking"]),
            "near_runs": sum(x is not None for x in s["spearman_near_grokking"]), "runs": len(s["steps_to_95"]),
            "half_acc_at": median(s["test_acc_50_at"]), "span_end": median(s["grokking_span"]),
            "peak_gap": _mean(peak_gaps(s)), "half_gap": _mean(half_way_gaps(s)),
            "test_loss_first": sum(x > 0 for x in peak_gaps(s)), "peak_runs": len(peak_gaps(s))}


def window_means(s: dict) -> list[float]:
    """Per window of log-step: the mean over the prime's runs of MED's Spearman correlation with the test loss
    (NaN where no run has one)."""
    return [_mean(col) for col in zip(*s["spearman_windows"])]


def window_counts(s: dict) -> dict:
    """How many windows have a mean Spearman correlation of at least TRACKS (they move together), at most
    -TRACKS (they move in opposite directions), and any value at all."""
    m = [x for x in window_means(s) if not np.isnan(x)]
    return {"together": sum(x >= TRACKS for x in m), "opposite": sum(x <= -TRACKS for x in m), "windows": len(m)}


TIMING_HEADERS = ["p", "MED peaks at", "test loss peaks at", "MED half way down at", "test loss half way down at",
                  "MED minus test loss, half-way steps"]


def half_way_gaps(s: dict) -> list[int]:
    """Per run of a setting where both come half way down: MED's half-way step minus the test loss's."""
    return [m - t for m, t in zip(s["med_half"], s["test_loss_half"]) if m is not None and t is not None]


def peak_gaps(s: dict) -> list[int]:
    """Per run of a setting with a stretch around grokking: MED's peak step minus the test loss's."""
    return [m - t for m, t in zip(s["med_peak"], s["test_loss_peak"]) if m is not None and t is not None]


def _median(xs) -> str:
    xs = [x for x in xs if x is not None]
    return f"{np.median(xs):.0f}" if len(xs) else "–"


def timing_rows(settings: list[dict]) -> list[list]:
    """Per prime: median peak and half-way steps of MED and test loss, and the half-way gap's median and range."""
    rows = []
    for s in settings:
        both = half_way_gaps(s)
        rows.append([s["p"], _median(s["med_peak"]), _median(s["test_loss_peak"]), _median(s["med_half"]),
                     _median(s["test_loss_half"]),
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


LEAD_LAG_HEADERS = ["p", "runs reaching 50 % test acc", "MED peaks at", "test loss peaks at",
                    "MED peak minus test loss peak", "MED half-way minus test loss half-way", "half-way steps close"]


def lead_lag_rows(settings: list[dict], close_steps: int) -> list[list]:
    """Per prime, over the runs with a stretch around grokking: peak steps of MED and log test loss, the per-run
    differences of the peaks and of the half-way steps (mean ± sd, steps), and how many half-way steps are
    within close_steps of each other."""
    rows = []
    for s in settings:
        spans = sum(x is not None for x in s["grokking_span"])
        halves = half_way_gaps(s)
        rows.append([s["p"], f"{spans}/{len(s['grokking_span'])}", fmt_pm(s["med_peak"], 0),
                     fmt_pm(s["test_loss_peak"], 0), fmt_pm(peak_gaps(s), 0), fmt_pm(halves, 0),
                     f"{sum(abs(x) <= close_steps for x in halves)}/{len(halves)}" if halves else "–"])
    return rows


LEVEL_HEADERS = ["p", "MED at the end / at step 0", "MED at the end / its low after the peak",
                 "test loss at the end (median)"]


def level_rows(settings: list[dict]) -> list[list]:
    """Per prime: MED's end over its start and over its low after its peak near grokking (mean ± sd over runs),
    and the median test loss at the end."""
    return [[s["p"], fmt_pm(s["med_end_over_start"], 2), fmt_pm(s["med_end_over_low"], 2),
             f"{np.median(s['test_loss_end']):.2g}"] for s in settings]


TRACKS = 0.5       # a mean Spearman correlation of at least this is a clear joint rise and fall, not a wiggle
GROKS = 0.5        # a prime groks when at least this share of its runs reaches 95 % test accuracy
CLOSE = 30         # two half-way falls are close when within this fraction of the run: n_steps // CLOSE steps


def close_steps(S: dict) -> int:
    return S["n_steps"] // CLOSE


def groks(s: dict) -> bool:
    return sum(x is not None for x in s["steps_to_95"]) >= GROKS * len(s["steps_to_95"])


def shares_the_drop(s: dict, close: int) -> bool:
    """One shared peak-and-drop around grokking: the prime groks, MED's mean Spearman correlation with the test
    loss near grokking is at least TRACKS, and in at least half of the runs where both come half way down, they
    do so within `close` steps of each other."""
    halves = half_way_gaps(s)
    return (groks(s) and _mean(s["spearman_near_grokking"]) >= TRACKS and bool(halves)
            and sum(abs(x) <= close for x in halves) >= len(halves) / 2)


def tracks_over_training(s: dict) -> bool:
    """MED follows the test loss over the whole run: whole-run mean Spearman at least TRACKS and no window of
    log-step in which they move in opposite directions (mean Spearman at most -TRACKS)."""
    return _mean(s["spearman_test_loss"]) >= TRACKS and window_counts(s)["opposite"] == 0


def verdict(settings: list[dict], close: int) -> str:
    """Reproduced if at every prime MED tracks the test loss over training and they share the drop; partly if
    they share one peak-and-drop at half the primes or more; contradicted if near grokking they anti-track (mean
    Spearman below 0) at most primes; not reproduced otherwise."""
    if not settings:
        return "not reproduced"
    if all(tracks_over_training(s) and shares_the_drop(s, close) for s in settings):
        return "reproduced"
    if sum(_mean(s["spearman_near_grokking"]) < 0 for s in settings) > len(settings) / 2:
        return "contradicted"
    return "partly reproduced" if sum(shares_the_drop(s, close) for s in settings) >= len(settings) / 2 \
        else "not reproduced"


def at_primes(ps: list[int]) -> str:
    """"at p = 97, 211", or "at no prime"."""
    return f"at p = {', '.join(map(str, ps))}" if ps else "at no prime"


def result(S: dict, C: dict) -> ResultBox:
    """Fig. 5's claim against one shared peak-and-drop near grokking and against tracking over the whole run."""
    st, close = C["settings"], close_steps(S)
    per_p = []
    for s in st:
        halves, w = half_way_gaps(s), window_counts(s)
        per_p.append(
            f"p = {s['p']}: {sum(x is not None for x in s['steps_to_95'])}/{len(s['steps_to_95'])} runs reach 95 %; "
            f"Spearman {_mean(s['spearman_test_loss']):+.2f} over the whole run, "
            f"{_mean(s['spearman_near_grokking']):+.2f} near grokking; "
            f"mean at least {TRACKS} in {w['together']} and at most −{TRACKS} in {w['opposite']} of {w['windows']} "
            "windows of log-step; "
            + (f"half-way falls within {close:,} steps in {sum(abs(x) <= close for x in halves)}/{len(halves)} runs "
               f"(MED minus test loss {fmt_pm(halves, 0)} steps)" if halves else "no run with both half-way falls"))
    shared = [s["p"] for s in st if shares_the_drop(s, close)]
    tracking = [s["p"] for s in st if tracks_over_training(s)]
    return ResultBox(
        claim="MED and the test loss move together at p = 47, 97, 211 and 379 (Section 6.3, Fig. 5).",
        measured=(f"{len(C['runs'])} runs, {len(st[0]['steps_to_95']) if st else 0} seed pairs per prime, frac_train "
                  f"{S['frac_train']}, {S['n_steps']:,} steps. " + "; ".join(per_p)
                  + f". One shared peak-and-drop {at_primes(shared)}; tracking over the whole run "
                  f"{at_primes(tracking)}. Near grokking means up to {GROKKING_SPAN}× the first step of 50 % test "
                  "accuracy."),
        verdict=verdict(st, close),
        rule=(f"Per prime, one shared peak-and-drop: at least {GROKS:.0%} of the runs reach 95 %, the near-grokking "
              f"mean Spearman is at least {TRACKS}, and the half-way falls of MED and test loss are within "
              f"{close:,} steps (1/{CLOSE} of the run) in at least half the runs; tracking over training: whole-run "
              f"mean Spearman at least {TRACKS} and no window of log-step with a mean at most −{TRACKS}. Reproduced "
              "if every prime shows both; partly if half the primes or more share the peak-and-drop; contradicted if "
              "the near-grokking mean is negative at most primes; else not reproduced."))
