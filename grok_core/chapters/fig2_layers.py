"""Fig. 2: more transformer layers; the test accuracy fluctuates more after memorisation as depth grows.

Fluctuation is the mean absolute change of the test accuracy between consecutive points of a uniform grid
of record_every steps, from the step the train accuracy reaches 0.99 on, in accuracy points.
"""
from __future__ import annotations

import numpy as np

from ..analysis import group_runs, mean_sd, on_grid, steps_to_threshold
from ..plotting import fmt_pm
from ..verdicts import ResultBox
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


FLUCT_GROWTH = 1.25   # each added layer must raise the mean fluctuation by a quarter: a depth's mean over 8 runs has a standard error of up to ~13 % of it
MED_FALL = 1.0        # MED has decreased over a run when its final value is below its initial one


def result(S: dict, C: dict) -> ResultBox:
    fl = {s["layers"]: mean_sd(s["fluctuation"])[0] for s in C["settings"]}
    med = {s["layers"]: float(np.mean(s["med_final_over_initial"])) for s in C["settings"]}
    ds = sorted(fl)
    grows = len(ds) > 1 and all(fl[a] * FLUCT_GROWTH <= fl[b] for a, b in zip(ds, ds[1:]))
    reversed_ = len(ds) > 1 and fl[ds[-1]] < fl[ds[0]]
    falling = [d for d in ds if med[d] < MED_FALL]
    halves = grows + (len(falling) == len(ds))
    verdict = ("contradicted" if reversed_ else "reproduced" if halves == 2 else
               "partly reproduced" if halves == 1 else "not reproduced")
    n_runs = len(C["settings"][0]["fluctuation"]) if C["settings"] else 0
    return ResultBox(
        claim=("Fig. 2: with more transformer layers the test accuracy fluctuates more strongly after memorisation, "
               "while MED keeps decreasing."),
        measured=(f"p = {S['p']}, f = x + y, random split, frac {S['frac_train']}, {n_runs} runs per depth "
                  f"({S['n_seeds']} init seeds × {S['n_split_seeds']} split seeds), {S['n_steps']} steps. Mean "
                  f"fluctuation after memorisation for {' / '.join(map(str, ds))} layers: "
                  f"{' / '.join(f'{fl[d]:.3f}' for d in ds)} points per {S['record_every']} step{'s' if S['record_every'] > 1 else ''}; final over initial MED: "
                  f"{' / '.join(f'{med[d]:.2f}' for d in ds)}, so MED ends below its start at "
                  f"{len(falling)} of {len(ds)} depths."),
        verdict=verdict,
        rule=(f"Two halves: the fluctuation half holds if each added layer raises the mean fluctuation at least "
              f"{FLUCT_GROWTH:g}-fold, the MED half if the mean final over initial MED is below {MED_FALL:g} "
              "at every depth; reproduced if both hold, partly reproduced if one does, not reproduced if neither, "
              "contradicted if the deepest model fluctuates less than the shallowest."))
