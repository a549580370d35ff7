"""The paper's first insight, checked numerically: weight decay drives the operand embeddings to uniformity,
and uniformity is necessary but not sufficient for grokking.

Uniformity is read from four recorded measures of the operand embeddings (grok_core.measures): the spread
of their norms, the spread of their adjacent differences (MED is the mean of those), the effective
dimension of their Gram spectrum, and the share of their energy in one Fourier frequency.
"""
from __future__ import annotations

import numpy as np

from ..analysis import group_runs
from ..plotting import fmt_pm
from ..verdicts import ResultBox
from .claims import reached_text, run_facts
from .settings import FULL_RECORD, PAPER_RECORD, as_float_list, count, require, run_config, seed_pairs

UNIFORMITY = ("embed_norm_cv", "embed_step_cv", "embed_eff_dim", "embed_top_freq")

PROFILES = {
    # Section 6.1's transformer and task (f = i + j, a 30 % random train set) at five weight decays, and the
    # strip split t = 67, whose test rows no training row shares (Table 1's lowest ceiling).
    "paper": dict(p=97, wds=[0.0, 0.1, 0.3, 1.0, 3.0], frac_train=0.3, low_t=67, n_seeds=4, n_split_seeds=2,
                  split_seed=0, n_steps=20000, lr=1e-3, snapshot_wd=1.0, snapshot_frames=32, **PAPER_RECORD),
    # p = 23, a larger train share and learning rate: a few hundred steps.
    "quick": dict(p=23, wds=[0.0, 0.3, 1.0, 3.0], frac_train=0.6, low_t=9, n_seeds=2, n_split_seeds=1,
                  split_seed=0, n_steps=300, lr=1e-2, snapshot_wd=1.0, snapshot_frames=16, **FULL_RECORD),
}


def check(S: dict):
    S["wds"] = as_float_list("wds", S["wds"])
    require(all(w >= 0 for w in S["wds"]), "wds", S["wds"], "weight decays must be >= 0")
    count("low_t", S["low_t"], 0)
    S["snapshot_wd"] = float(S["snapshot_wd"])
    require(S["snapshot_wd"] >= 0, "snapshot_wd", S["snapshot_wd"], "a weight decay must be >= 0")
    count("snapshot_frames", S["snapshot_frames"], 2)


def run_configs(S: dict):
    """Per weight decay: the random split's seed pairs, then the strip split's runs. The strip's train set is
    the whole remainder whenever the remainder is smaller than frac_train * p^2, so the split seed draws
    nothing there: its runs differ by init seed only (as many as the random split has seed pairs)."""
    pairs = seed_pairs(S)
    out = []
    for wd in S["wds"]:
        common = dict(fn="add", wd=wd, measures=",".join(UNIFORMITY))
        out += [run_config(S, **common, split="random", init_seed=i, split_seed=s) for i, s in pairs]
        out += [run_config(S, **common, split="strip", split_param=S["low_t"], init_seed=i, split_seed=S["split_seed"])
                for i in range(len(pairs))]
    return out + [snapshot_config(S)]


def snapshot_config(S: dict):
    """One more random-split run at `snapshot_wd`, seeds 0/0, that keeps `snapshot_frames` log-spaced weight
    snapshots (float16) for the embedding figure; the claims leave it out (`measured_runs`)."""
    return run_config(S, fn="add", wd=S["snapshot_wd"], measures=",".join(UNIFORMITY), split="random", init_seed=0,
                      split_seed=S["split_seed"], snapshots=S["snapshot_frames"], snapshot_dtype="float16")


def measured_runs(runs) -> list:
    """The runs the claims and curves read: all but the snapshot run."""
    return [r for r in runs if not r.config.snapshots]


# -- per setting: grokking and how concentrated the embedding is ---------------------------------------------------
def _at(h: dict, name: str, step: int | None):
    """The measure's value at the first recorded step >= step (None for None)."""
    return None if step is None else float(h[name][min(int(np.searchsorted(h["step"], step)), len(h["step"]) - 1)])


def claims(S: dict, runs) -> list[dict]:
    """Per (split, weight decay): per run, the step of 95 % test accuracy, the late test accuracy, the
    uniformity measures at the start and the end, the effective dimension at the grokking step and the lowest
    it reached."""
    out = []
    for (split, wd), rs in group_runs(measured_runs(runs), lambda c: (c.split, c.wd)).items():
        facts = [run_facts(r) for r in rs]
        s = {"split": split, "wd": wd, "runs": len(rs), "test_acc_95_at": [f["test_acc_95_at"] for f in facts],
             "late_test_acc": [f["late_test_acc"] for f in facts],
             "eff_dim_at_grokking": [_at(r.history, "embed_eff_dim", f["test_acc_95_at"]) for r, f in zip(rs, facts)],
             "eff_dim_lowest": [float(np.min(r.history["embed_eff_dim"])) for r in rs]}
        for name in ("med",) + UNIFORMITY:
            s[f"{name}_start"] = [float(r.history[name][0]) for r in rs]
            s[f"{name}_end"] = [float(r.history[name][-1]) for r in rs]
        out.append(s)
    return out


def _mean(s: dict, key: str) -> float:
    return float(np.mean(s[key]))


def findings(settings: list[dict]) -> dict:
    """The three tests of the verdict's rule, from the exported settings:
    drive: on the random split, the mean final effective dimension falls, and the top-frequency share rises,
    strictly as the weight decay grows;
    necessary: every run that groks does so at an effective dimension below the lowest one any wd = 0 run of
    the random split reaches (those runs do not grok);
    not_sufficient: some run that never groks gets below the lowest effective dimension at which any run grokked."""
    rand = sorted((s for s in settings if s["split"] == "random"), key=lambda s: s["wd"])
    eff = [_mean(s, "embed_eff_dim_end") for s in rand]
    top = [_mean(s, "embed_top_freq_end") for s in rand]
    at_grok = [e for s in settings for e in s["eff_dim_at_grokking"] if e is not None]
    no_wd = [e for s in rand if s["wd"] == 0 for e, g in zip(s["eff_dim_lowest"], s["test_acc_95_at"]) if g is None]
    never = [e for s in settings for e, g in zip(s["eff_dim_lowest"], s["test_acc_95_at"]) if g is None]
    return {"eff_dim_end": eff, "top_freq_end": top, "wds": [s["wd"] for s in rand],
            "drive": len(rand) > 1 and all(a > b for a, b in zip(eff, eff[1:])) and all(a < b for a, b in zip(top, top[1:])),
            "grokked": len(at_grok), "runs": sum(s["runs"] for s in settings),
            "eff_dim_at_grokking": (min(at_grok), max(at_grok)) if at_grok else None,
            "no_wd_lowest": min(no_wd) if no_wd else None, "never_lowest": min(never) if never else None,
            "necessary": bool(at_grok) and bool(no_wd) and max(at_grok) < min(no_wd),
            "not_sufficient": bool(at_grok) and bool(never) and min(never) < min(at_grok)}


def verdict(F: dict) -> str:
    """Reproduced if all three tests hold; contradicted if a run groks at an effective dimension the wd = 0 runs
    reach (uniformity not needed); not reproduced if no run groks; partly reproduced otherwise."""
    if not F["grokked"]:
        return "not reproduced"
    if F["no_wd_lowest"] is not None and not F["necessary"]:
        return "contradicted"
    return "reproduced" if F["drive"] and F["necessary"] and F["not_sufficient"] else "partly reproduced"


def _list(xs, digits: int) -> str:
    return " / ".join(f"{x:.{digits}f}" for x in xs)


def result(S: dict, C: dict) -> ResultBox:
    F = findings(C["settings"])
    strip = [s for s in C["settings"] if s["split"] == "strip"]
    strip_grok = sum(g is not None for s in strip for g in s["test_acc_95_at"])
    strip_runs = sum(s["runs"] for s in strip)
    strip_acc = max((max(s["late_test_acc"]) for s in strip), default=float("nan"))
    rand = sorted((s for s in C["settings"] if s["split"] == "random"), key=lambda s: s["wd"])
    start = float(np.mean([x for s in rand for x in s["embed_eff_dim_start"]])) if rand else float("nan")
    strip_no_wd = [x for s in strip if s["wd"] == 0 for x in s["eff_dim_lowest"]]
    no_wd_text = (f"; its wd = 0 runs, without weight decay, get to {min(strip_no_wd):.1f}" if strip_no_wd else "")
    spreads = []
    for name, what in (("embed_norm_cv", "norms"), ("embed_step_cv", "adjacent differences")):
        ends = [_mean(s, f"{name}_end") for s in rand]
        falls = len(ends) > 1 and all(a > b for a, b in zip(ends, ends[1:]))
        spreads.append(f"the spread of the {what} goes from {float(np.mean([x for s in rand for x in s[f'{name}_start']])):.3f} "
                       f"to {_list(ends, 3)} ({'falling' if falls else 'not falling'} strictly with the weight decay)")
    lo_hi = F["eff_dim_at_grokking"]
    at_grok = f"{lo_hi[0]:.1f}–{lo_hi[1]:.1f}" if lo_hi else "–"
    return ResultBox(
        claim=("Section 3 (Theorems 3.5–3.8, Claim (i)–(ii)): minimising the weight-decay term drives the token "
               "embeddings to uniformity, and uniformity is necessary but not sufficient for grokking: a training set "
               "that caps the accuracy stops a uniform embedding from generalising."),
        measured=(f"p = {S['p']}, f = i + j, {S['n_steps']} steps, weight decays {_list(F['wds'], 1)}; "
                  f"{F['runs']} runs ({len(seed_pairs(S))} per setting), {F['grokked']} reach 95 % test accuracy. "
                  f"On the random split the final effective dimension of the embeddings' Gram spectrum is "
                  f"{_list(F['eff_dim_end'], 1)} ({start:.1f} at initialisation) and the share of their energy in one Fourier "
                  f"frequency {_list(F['top_freq_end'], 2)}. Runs grok at an effective dimension of {at_grok}; the "
                  f"wd = 0 runs never get below {F['no_wd_lowest'] or float('nan'):.1f}. On the strip t = {S['low_t']} "
                  f"the embeddings get to {F['never_lowest'] or float('nan'):.1f}{no_wd_text}, and {strip_grok} of "
                  f"{strip_runs} runs grok (best late test accuracy {100 * strip_acc:.0f} %). On the random split "
                  f"{spreads[0]}, and {spreads[1]}."),
        verdict=verdict(F),
        rule=("Three tests: (drive) on the random split the mean final effective dimension falls, and the one-frequency "
              "share rises, strictly with the weight decay; (necessary) every run that groks does so below the lowest "
              "effective dimension any wd = 0 run reaches; (not sufficient) some run that never groks gets below the "
              "lowest effective dimension at which any run grokked. Reproduced if all three hold; contradicted if a "
              "run groks above that wd = 0 floor; not reproduced if no run groks; partly reproduced otherwise."))


TABLE_HEADERS = ["split", "wd", "reach 95 % (step)", "late test acc", "eff. dim. start → end", "one-frequency share",
                 "norm spread", "difference spread", "MED end / start"]


def table_rows(settings: list[dict]) -> list[list]:
    """Per setting: grokking, late test accuracy and the uniformity measures at the end (mean ± sd over runs)."""
    rows = []
    for s in sorted(settings, key=lambda s: (s["split"] != "random", s["wd"])):
        ratio = [e / b for e, b in zip(s["med_end"], s["med_start"])]
        rows.append([s["split"], f"{s['wd']:g}", reached_text(s["test_acc_95_at"]), fmt_pm(s["late_test_acc"], 3),
                     f"{np.mean(s['embed_eff_dim_start']):.1f} → " + fmt_pm(s["embed_eff_dim_end"], 1),
                     fmt_pm(s["embed_top_freq_end"], 2), fmt_pm(s["embed_norm_cv_end"], 3),
                     fmt_pm(s["embed_step_cv_end"], 3), fmt_pm(ratio, 2)])
    return rows
