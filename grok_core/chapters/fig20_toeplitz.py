"""Fig. 20 (Appendix E): Toeplitz and circulant embedding initialisation against the normal one.

Per train share and initialisation: the steps to 95 % test accuracy, and their mean over the normal
initialisation's (the paper reports about half the epochs with its structured initialisation).
"""
from __future__ import annotations

import math

import numpy as np

from ..analysis import group_runs
from .claims import mean_reached, reached_text, run_facts
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


def claims(S: dict, runs) -> list[dict]:
    """Per train share and initialisation: steps to 95 % test accuracy, and their mean over the normal one's."""
    groups = group_runs(runs, lambda c: (c.frac_train, c.embed_init))
    out = []
    for frac in S["fracs"]:
        normal = mean_reached(run_facts(r)["test_acc_95_at"] for r in groups.get((frac, "normal"), []))
        for e in S["embed_inits"]:
            steps = [run_facts(r)["test_acc_95_at"] for r in groups[(frac, e)]]
            ratio = mean_reached(steps) / normal if e != "normal" and normal > 0 else math.nan
            out.append({"frac": frac, "init": e, "steps_to_95": steps, "ratio_to_normal": ratio})
    return out


TABLE_HEADERS = ["frac", "init", "steps to 95 % test acc", "ratio to normal"]


def table_rows(settings: list[dict]) -> list[list]:
    """Per train share and initialisation: steps to 95 % test accuracy and the ratio to the normal one's."""
    return [[s["frac"], s["init"], reached_text(s["steps_to_95"]),
             "–" if np.isnan(s["ratio_to_normal"]) else f"{s['ratio_to_normal']:.2f}"] for s in settings]


def ratios(settings: list[dict]) -> dict[tuple[float, str], float]:
    """(train share, initialisation) -> ratio to the normal initialisation, where there is one."""
    return {(s["frac"], s["init"]): s["ratio_to_normal"] for s in settings if not np.isnan(s["ratio_to_normal"])}
