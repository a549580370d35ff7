"""Fig. 2: more transformer layers; the test accuracy fluctuates more after memorisation as depth grows.

Fluctuation is the mean absolute change of the test accuracy between consecutive points of a uniform grid
of record_every steps, from the step the train accuracy reaches 0.99 on, in accuracy points.
"""
from __future__ import annotations

import numpy as np

from ..analysis import group_runs, mean_sd, on_grid, steps_to_threshold
from ..plotting import fmt_pm
from .claims import reached_text, run_facts
from .settings import FULL_RECORD, PAPER_RECORD, as_int_list, require, runs_per_seed_pairs

PROFILES = {
    # Fig. 2: transformer/base.py's setting (f = x + y, p = 97, random split, frac 0.5, split seed 11).
    "paper": dict(p=97, depths=[1, 2, 3, 4], frac_train=0.5, n_seeds=4, n_split_seeds=2, split_seed=11,
                  n_steps=30000, lr=1e-3, d_model=128, **PAPER_RECORD),
    # Deeper models cost much more per step on a CPU, so the quick version is tiny: p = 17, three depths.
    "quick": dict(p=17, depths=[1, 2, 3], frac_train=0.6, n_seeds=2, n_split_seeds=1, split_seed=11,
                  n_steps=400, lr=1e-2, d_model=64, **FULL_RECORD),
}


def check(S: dict):
    S["depths"] = as_int_list("depths", S["depths"])
    require(all(d >= 1 for d in S["depths"]), "depths", S["depths"], "every depth must be >= 1")


def run_configs(S: dict):
    return runs_per_seed_pairs(S, [dict(fn="add", split="random", n_layers=d) for d in S["depths"]])


def fluctuation(run, every: int) -> float | None:
    """Accuracy points per grid step after memorisation (None if the run never memorises, or just at the end)."""
    h = on_grid(run.history, every)
    mem = steps_to_threshold(h["train_acc"], 0.99)
    acc = h["test_acc"][mem:] if mem is not None else np.array([])
    return float(np.mean(np.abs(np.diff(acc)))) * 100 if len(acc) > 1 else None


def claims(S: dict, runs) -> list[dict]:
    """Per depth: fluctuation of the test accuracy after memorisation, steps to 95 % test accuracy,
    final MED over initial MED."""
    return [{"layers": d, "fluctuation": [fluctuation(r, S["record_every"]) for r in rs],
             "steps_to_95": [run_facts(r)["test_acc_95_at"] for r in rs],
             "med_final_over_initial": [float(r.history["med"][-1] / r.history["med"][0]) for r in rs]}
            for d, rs in group_runs(runs, lambda c: c.n_layers).items()]


def table_rows(settings: list[dict]) -> list[list]:
    """Per depth: runs, fluctuation, steps to 95 % test accuracy, final over initial MED (mean ± sd)."""
    return [[s["layers"], len(s["fluctuation"]), fmt_pm(s["fluctuation"], 3), reached_text(s["steps_to_95"]),
             fmt_pm(s["med_final_over_initial"], 3)] for s in settings]


def table_headers(every: int) -> list[str]:
    return ["layers", "runs", f"fluctuation (points per {every} step{'s' if every > 1 else ''})",
            "steps to 95 % test acc", "final MED / initial MED"]


def fluctuation_trend(settings: list[dict]) -> tuple[dict[int, float], bool]:
    """Mean fluctuation per depth that has one (some run memorised), and whether it grows with depth."""
    fl = {s["layers"]: mean_sd(s["fluctuation"])[0] for s in settings}
    fl = {d: v for d, v in fl.items() if not np.isnan(v)}
    ds = list(fl)
    return fl, all(fl[a] <= fl[b] for a, b in zip(ds, ds[1:]))
