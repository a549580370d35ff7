"""The paper's first insight, checked numerically: weight decay drives the operand embeddings to uniformity,
and uniformity is necessary but not sufficient for grokking.

Uniformity is read from four recorded measures of the operand embeddings (grok_core.measures): the spread
of their norms, the spread of their adjacent differences (MED is the mean of those), the effective
dimension of their Gram spectrum, and the share of their energy in one Fourier frequency.
"""
from __future__ import annotations

from .settings import FULL_RECORD, PAPER_RECORD, as_float_list, count, require, run_config, seed_pairs

UNIFORMITY = ("embed_norm_cv", "embed_step_cv", "embed_eff_dim", "embed_top_freq")

PROFILES = {
    # Section 6.1's transformer and task (f = i + j, a 30 % random train set) at five weight decays, and the
    # strip split t = 67, whose test rows no training row shares (Table 1's lowest ceiling).
    "paper": dict(p=97, wds=[0.0, 0.1, 0.3, 1.0, 3.0], frac_train=0.3, low_t=67, n_seeds=4, n_split_seeds=2,
                  split_seed=0, n_steps=20000, lr=1e-3, **PAPER_RECORD),
    # p = 23, a larger train share and learning rate: a few hundred steps.
    "quick": dict(p=23, wds=[0.0, 0.3, 1.0, 3.0], frac_train=0.6, low_t=9, n_seeds=2, n_split_seeds=1,
                  split_seed=0, n_steps=300, lr=1e-2, **FULL_RECORD),
}


def check(S: dict):
    S["wds"] = as_float_list("wds", S["wds"])
    require(all(w >= 0 for w in S["wds"]), "wds", S["wds"], "weight decays must be >= 0")
    count("low_t", S["low_t"], 0)


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
    return out
