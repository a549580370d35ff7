"""Appendix D, as far as it is known (a paraphrase): embedding width against grokking speed and the accuracy
ceiling, and the 2-layer DNN against the transformer on f = i² + ij + j².

The settings are a reading of that paraphrase; the chapter says which and why.
"""
from __future__ import annotations

from .settings import FULL_RECORD, PAPER_RECORD, as_float_list, as_int_list, count, run_config, seed_pairs

PROFILES = {
    # (a) p = 97, square split k = 85 (2,013 train pairs), widths 64..512 with the released d_mlp of 512;
    # (b) p = 43, f = i + j, a 30 % random train set, the same widths;
    # (c) the released 2-layer DNN against the 1-layer transformer on i² + ij + j² at two train shares
    # (the transformer runs are those of Figs. 16 and 4).
    "paper": dict(p=97, widths=[64, 128, 256, 512], width_mlp=512, k=85, width_steps=40000, small_p=43,
                  small_frac=0.3, small_steps=20000, dnn_fracs=[0.3, 0.5], n_seeds=4, n_split_seeds=2, split_seed=0,
                  n_steps=30000, lr=1e-3, **PAPER_RECORD),
    "quick": dict(p=23, widths=[16, 64], width_mlp=64, k=17, width_steps=300, small_p=13, small_frac=0.5,
                  small_steps=300, dnn_fracs=[0.5], n_seeds=2, n_split_seeds=1, split_seed=0, n_steps=300, lr=1e-2,
                  **FULL_RECORD),
}


def check(S: dict):
    S["widths"] = as_int_list("widths", S["widths"])
    S["dnn_fracs"] = as_float_list("dnn_fracs", S["dnn_fracs"])
    for name in ("width_mlp", "k", "width_steps", "small_p", "small_steps"):
        count(name, S[name], 1)


def width_configs(S: dict):
    """(a): the square split's train set is the whole remainder (2,013 < 0.3 p²), so only the init seed varies."""
    n = len(seed_pairs(S))
    return [run_config(S, fn="add", split="square", split_param=S["k"], d_model=w, d_mlp=S["width_mlp"],
                       n_steps=S["width_steps"], init_seed=i, split_seed=S["split_seed"])
            for w in S["widths"] for i in range(n)]


def ceiling_configs(S: dict):
    """(b): the widths at the small prime, on a random split."""
    return [run_config(S, p=S["small_p"], fn="add", split="random", frac_train=S["small_frac"], d_model=w,
                       d_mlp=S["width_mlp"], n_steps=S["small_steps"], init_seed=i, split_seed=s)
            for w in S["widths"] for i, s in seed_pairs(S)]


def dnn_configs(S: dict):
    """(c): per train share, the transformer's runs, then the DNN's."""
    return [run_config(S, fn="x2_xy_y2", split="random", frac_train=f, model=m, init_seed=i, split_seed=s)
            for f in S["dnn_fracs"] for m in ("transformer", "mlp") for i, s in seed_pairs(S)]


def run_configs(S: dict):
    return width_configs(S) + ceiling_configs(S) + dnn_configs(S)
