"""Fig. 20 (Appendix E): Toeplitz and circulant embedding initialisation against the normal one.

Per train share and initialisation: the steps to 95 % test accuracy as censored data (a run that never gets there
is censored at n_steps; `grok_core.survival`): how many runs got there, the Kaplan–Meier median (None, "not
reached", where fewer than half did) and the restricted mean up to n_steps, whose ratio to the normal
initialisation's decides the verdict; the paper reports about half the epochs.
"""
from __future__ import annotations

import math

import numpy as np

from .. import survival
from ..analysis import group_runs
from ..plotting import fmt_pm
from ..verdicts import ResultBox
from .claims import reached_text, run_facts
from .settings import FULL_RECORD, PAPER_RECORD, as_float_list, require, runs_per_seed_pairs

INITS = ("normal", "toeplitz", "circulant")

PROFILES = {
    # Fig. 20 (Appendix E): p = 97, x + y, random split ("k = 0"), d_model 128, train shares 0.3, 0.25, 0.2.
    "paper": dict(p=97, fracs=[0.3, 0.25, 0.2], embed_inits=list(INITS), n_seeds=4,
                  n_split_seeds=2, split_seed=0, n_steps=30000, lr=1e-3, **PAPER_RECORD),
    # p = 23 with a large train share, which groks within a few hundred steps.
    "quick": dict(p=23, fracs=[0.6], embed_inits=list(INITS), n_seeds=2, n_split_seeds=1,
                  split_seed=0, n_steps=400, lr=1e-2, **FULL_RECORD),
}


def check(S: dict):
    S["fracs"] = as_float_list("fracs", S["fracs"])
    if isinstance(S["embed_inits"], str):
        S["embed_inits"] = [s.strip() for s in S["embed_inits"].split(",") if s.strip()]
    require(isinstance(S["embed_inits"], list) and len(S["embed_inits"]) > 0
            and all(e in INITS for e in S["embed_inits"]),
            "embed_inits", S["embed_inits"], "give a list from 'normal', 'toeplitz', 'circulant'")


def run_configs(S: dict):
    return runs_per_seed_pairs(S, [dict(fn="add", split="random", frac_train=f, embed_init=e)
                                   for f in S["fracs"] for e in S["embed_inits"]])


def restricted_mean(steps: list, cap: int) -> float:
    """Mean steps to 95 % with a run that never got there counted as `cap` (censored at the run's end): the area
    under the Kaplan–Meier curve up to cap (`survival.restricted_mean`). A mean over only the runs that got there
    would drop the slowest ones, and differently for each initialisation."""
    return survival.steps_restricted_mean(steps, cap)


def km_median(steps: list, cap: int) -> int | None:
    """The Kaplan–Meier median of the steps to 95 % (runs that never got there censored at cap): the first step by
    which at least half the runs, as estimated, got there; None ("not reached") where fewer than half did."""
    m = survival.km_median(*survival.from_steps(steps, cap))
    return None if m is None else int(m)


def km_curve(steps: list, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """The share of runs not yet at 95 % test accuracy against the step, from 0 to cap, for a step plot."""
    return survival.curve(*survival.from_steps(steps, cap), cap)


def claims(S: dict, runs) -> list[dict]:
    """Per train share and initialisation: steps to 95 % test accuracy, how many runs got there, their Kaplan–Meier
    median and restricted mean (censored at n_steps), and the ratios of both to the normal initialisation's (NaN
    for the median where either is not reached)."""
    groups = group_runs(runs, lambda c: (c.frac_train, c.embed_init))
    out = []
    for frac in S["fracs"]:
        normal_steps = [run_facts(r)["test_acc_95_at"] for r in groups.get((frac, "normal"), [])]
        normal, normal_median = restricted_mean(normal_steps, S["n_steps"]), km_median(normal_steps, S["n_steps"])
        for e in S["embed_inits"]:
            steps = [run_facts(r)["test_acc_95_at"] for r in groups[(frac, e)]]
            mean, median = restricted_mean(steps, S["n_steps"]), km_median(steps, S["n_steps"])
            structured = e != "normal"
            out.append({"frac": frac, "init": e, "steps_to_95": steps, "reached": sum(x is not None for x in steps),
                        "km_median": median, "restricted_mean": mean,
                        "ratio_to_normal": mean / normal if structured and normal > 0 else math.nan,
                        "median_ratio_to_normal": (median / normal_median if structured and median is not None
                                                   and normal_median else math.nan)})
    return out


TABLE_HEADERS = ["frac", "init", "steps to 95 % test acc (runs that got there)",
                 "ratio to normal (restricted means, never = n_steps)"]


def _ratio_text(r) -> str:
    return "–" if r is None or np.isnan(r) else f"{r:.2f}"


def table_rows(settings: list[dict]) -> list[list]:
    """Per train share and initialisation: steps to 95 % test accuracy and the ratio of its restricted mean
    to the normal one's."""
    return [[s["frac"], s["init"], reached_text(s["steps_to_95"]), _ratio_text(s["ratio_to_normal"])]
            for s in settings]


CENSORED_HEADERS = ["frac", "init", "runs at 95 %", "Kaplan–Meier median", "ratio to normal (medians)",
                    "restricted mean", "ratio to normal (restricted means)", "mean over the runs that got there"]


def _median_text(m) -> str:
    return "not reached" if m is None else f"{m:,}"


def censored_rows(settings: list[dict]) -> list[list]:
    """Per train share and initialisation: how many runs reached 95 %, the Kaplan–Meier median ("not reached" where
    fewer than half did) and its ratio to the normal one's, the restricted mean up to n_steps and its ratio, and
    the mean ± sd over only the runs that got there, which leaves the slowest out."""
    return [[frac, init, f"{s['reached']}/{len(s['steps_to_95'])}", _median_text(s["km_median"]),
             _ratio_text(s["median_ratio_to_normal"]), f"{s['restricted_mean']:,.0f}", ratio,
             fmt_pm(s["steps_to_95"], 0)]
            for s, (frac, init, _, ratio) in zip(settings, table_rows(settings))]


def ratios(settings: list[dict]) -> dict[tuple[float, str], float]:
    """(train share, initialisation) -> ratio to the normal initialisation, where there is one."""
    return {(s["frac"], s["init"]): s["ratio_to_normal"] for s in settings if not np.isnan(s["ratio_to_normal"])}


HALVED = 0.6   # "about half the epochs": a ratio up to 0.6 allows for the spread over seeds
FASTER = 0.8   # a ratio up to 0.8 is a clear speed-up, if less than half
SLOWER = 1.2   # a ratio of at least 1.2 is a clear slow-down


def best_ratios(settings: list[dict]) -> dict[float, float]:
    """Per train share: the smaller ratio of the structured initialisations (the claim at its most generous)."""
    out = {}
    for (f, _), r in ratios(settings).items():
        out[f] = min(r, out.get(f, r))
    return out


def verdict(settings: list[dict]) -> str:
    """Reproduced if a structured initialisation halves the restricted mean at every train share; partly if it
    is clearly faster at half of them or more; contradicted if both are clearly slower at every one."""
    best = list(best_ratios(settings).values())
    if not best:
        return "not reproduced"
    if all(r <= HALVED for r in best):
        return "reproduced"
    if sum(r <= FASTER for r in best) >= len(best) / 2:
        return "partly reproduced"
    return "contradicted" if all(r >= SLOWER for r in best) else "not reproduced"


def result(S: dict, C: dict) -> ResultBox:
    """Appendix E's halving against the restricted-mean ratios, with how many runs grokked in each setting."""
    st = C["settings"]
    parts = [f"frac {s['frac']}, {s['init']}: {s['reached']}/{len(s['steps_to_95'])} runs reach 95 %, "
             f"Kaplan–Meier median {_median_text(s['km_median'])}, restricted mean {s['restricted_mean']:,.0f} steps"
             + ("" if np.isnan(s["ratio_to_normal"]) else
                f" (ratio to normal: restricted means {s['ratio_to_normal']:.2f}"
                + ("" if np.isnan(s["median_ratio_to_normal"]) else f", medians {s['median_ratio_to_normal']:.2f}")
                + ")") for s in st]
    return ResultBox(
        claim="Initialising the embeddings from a Toeplitz (circulant) matrix makes grokking set in after about half "
              "the epochs of the normal initialisation (Appendix E, Fig. 20).",
        measured=(f"p = {S['p']}, {S['n_steps']:,} steps, {len(st[0]['steps_to_95']) if st else 0} runs per setting "
                  f"({len(C['runs'])} in all); steps to 95 % test accuracy, a run that never gets there censored at "
                  f"{S['n_steps']:,} (the restricted mean counts it as {S['n_steps']:,}; the Kaplan–Meier median is "
                  "not reached where fewer than half the runs get there): " + "; ".join(parts) + "."),
        verdict=verdict(st),
        rule=(f"Per train share, the better structured initialisation's ratio of restricted means (censored at "
              f"{S['n_steps']:,} steps) to the normal one's: "
              f"reproduced if at most {HALVED} at every share, partly if at most {FASTER} at half of them or more, "
              f"contradicted if at least {SLOWER} at every share, else not reproduced."))
