"""Fig. 3: the training-set distributions (random, square, strip) and what each leaves to train and test.

Nothing is trained: a split depends only on (p, split, k or t, frac_train, split seed), so the chapter
builds the splits and counts them; the counts are exact facts of the split algorithm.
"""
from __future__ import annotations

from ..config import RunConfig
from .runs import quiet_split
from .settings import as_int_list

PAPER = dict(p=97, frac_train=0.3, split_seed=0, draw_k=40, draw_t=40,
             square_k=[30, 35, 40, 45, 50, 55, 60, 67, 70, 85], strip_t=[35, 40, 50, 60, 67])
PROFILES = {"paper": PAPER, "quick": PAPER}     # counting splits is quick at the paper's settings


def check(S: dict):
    S["square_k"] = as_int_list("square_k", S["square_k"])
    S["strip_t"] = as_int_list("strip_t", S["strip_t"])


def split_config(S: dict, split: str, param: int = 0) -> RunConfig:
    """The run config whose split this is (init seed 0); RunConfig checks every value."""
    return RunConfig(p=S["p"], frac_train=S["frac_train"], split=split, split_param=param, split_seed=S["split_seed"])


def split_configs(S: dict) -> dict:
    """The drawn splits by name ("random", "square", "strip") and the counted ones by (split, k or t)."""
    configs = {"random": split_config(S, "random"), "square": split_config(S, "square", S["draw_k"]),
               "strip": split_config(S, "strip", S["draw_t"])}
    configs |= {("square", k): split_config(S, "square", k) for k in S["square_k"]}
    configs |= {("strip", t): split_config(S, "strip", t) for t in S["strip_t"]}
    return configs


def splits(configs: dict) -> dict:
    return {name: quiet_split(cfg) for name, cfg in configs.items()}


def counted(configs: dict) -> list:
    """The names of the counted splits: random first, then every (split, k or t)."""
    return ["random"] + [k for k in configs if isinstance(k, tuple)]


def setting_label(name) -> str:
    return name if name == "random" else f"{name[0]} {'k' if name[0] == 'square' else 't'}={name[1]}"


COUNT_HEADERS = ["split", "block", "remainder", "train", "test", "% of test outside block", "train shrunk"]


def count_rows(S: dict, configs: dict, split_of: dict) -> list[list]:
    """Per counted split: block, remainder, train and test sizes, the test share outside the block, shrunk?"""
    n = S["p"] * S["p"]
    rows = []
    for name in counted(configs):
        sp = split_of[name]
        block, n_test = int(sp.block_mask.sum()), len(sp.test_idx)
        rows.append([setting_label(name), block, n - block, len(sp.train_idx), n_test,
                     f"{100 * (n_test - block) / n_test:.1f}", "**yes**" if sp.shrunk else "no"])
    return rows


def requested_train(S: dict) -> int:
    """The train size asked for: int(frac_train · p²)."""
    return int(S["frac_train"] * S["p"] * S["p"])


def shrunk(configs: dict, split_of: dict) -> list[tuple]:
    """The counted settings whose block leaves fewer pairs than the requested train size."""
    return [k for k in configs if isinstance(k, tuple) and split_of[k].shrunk]


def shrink_lines(S: dict, split_of: dict, names: list) -> list[str]:
    """Per shrunk setting: its train size against the requested one, and its test pairs outside the block."""
    n_req = requested_train(S)
    return [f"{name[0]} {name[1]}: train {len(split_of[name].train_idx)} of the requested {n_req} "
            f"({n_req - len(split_of[name].train_idx)} short); test pairs outside the block: "
            f"{len(split_of[name].test_idx) - int(split_of[name].block_mask.sum())}" for name in names]
