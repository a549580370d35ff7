"""Fig. 3: the training-set distributions (random, square, strip) and what each leaves to train and test.

Nothing is trained: a split depends only on (p, split, k or t, frac_train, split seed), so the chapter
builds the splits and counts them; the counts are exact facts of the split algorithm.
"""
from __future__ import annotations

import random

from ..config import RunConfig
from ..verdicts import ResultBox
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


# -- the claim numbers and the result box ----------------------------------------------------------------
def paper_counts(S: dict, split: str, param: int) -> dict:
    """Block, train and test sizes as the paper describes the split: the block is always test, and train is
    int(frac · p²) of the pairs outside it, or all of them where they are fewer."""
    p = S["p"]
    block = 0 if split == "random" else (param + 1) ** 2 if split == "square" else (param + 1) * p
    train = min(requested_train(S), p * p - block)
    return {"block": block, "train": train, "test": p * p - train}


def released_train(S: dict, split: str, param: int) -> set[tuple[int, int]]:
    """The train pairs as the released code builds them: the pairs in i-major order, the block filtered out,
    Python's random seeded with the split seed and the list shuffled, the first int(frac · p²) kept."""
    p = S["p"]
    in_block = {"random": lambda i, j: False, "square": lambda i, j: i <= param and j <= param,
                "strip": lambda i, j: i <= param}[split]
    pairs = [(i, j) for i in range(p) for j in range(p) if not in_block(i, j)]
    random.Random(S["split_seed"]).shuffle(pairs)
    return set(pairs[:requested_train(S)])


def claims(S: dict, runs) -> list[dict]:
    """Per counted split (nothing is trained, so `runs` is empty): its block, train and test sizes, whether the
    train set shrank, and whether its train pairs are the released code's."""
    configs = split_configs(S)
    out = []
    for name in counted(configs):
        split, param = ("random", 0) if name == "random" else name
        sp, p = quiet_split(configs[name]), S["p"]
        ours = {(int(k) // p, int(k) % p) for k in sp.train_idx}
        out.append({"split": split, "param": param, "block": int(sp.block_mask.sum()), "train": len(sp.train_idx),
                    "test": len(sp.test_idx), "shrunk": bool(sp.shrunk),
                    "same_train_as_released": ours == released_train(S, split, param)})
    return out


def result(S: dict, C: dict) -> ResultBox:
    st = C["settings"]
    agree = sum(all(s[k] == v for k, v in paper_counts(S, s["split"], s["param"]).items()) for s in st)
    same = sum(s["same_train_as_released"] for s in st)
    short = [s for s in st if s["shrunk"]]
    n_req = requested_train(S)
    full = [s for s in st if not s["shrunk"]]
    blocks = "; ".join(f"{kind} {'k' if kind == 'square' else 't'} = "
                       + ", ".join(f"{s['param']}: {s['block']}" for s in st if s["split"] == kind)
                       for kind in ("square", "strip"))
    verdict = "reproduced" if agree == same == len(st) else "not reproduced"
    return ResultBox(
        claim=("Fig. 3 (its caption is not recovered): the training sets are drawn from the p × p table in three ways: "
               "at random, with a square (i, j ≤ k) dug out, with a strip (i ≤ t) dug out; the dug-out block is always "
               "test and int(frac · p²) pairs of the rest train, as in the released code."),
        measured=(f"p = {S['p']}, frac {S['frac_train']}, split seed {S['split_seed']}, {len(st)} splits counted. Block "
                  f"sizes: {blocks}. Train / test: {n_req} / {S['p'] ** 2 - n_req} in {len(full)} of {len(st)} splits; "
                  + "".join(f"{setting_label((s['split'], s['param']))} leaves only {s['train']} pairs to train "
                            f"(test {s['test']}); " for s in short)
                  + f"{agree} of {len(st)} splits have the paper's counts, and {same} of "
                  f"{len(st)} exactly the released code's train pairs."),
        verdict=verdict,
        rule=("Exact facts: reproduced if every split's block, train and test sizes equal the paper's description and "
              "its train pairs equal those of the released code's construction; otherwise not reproduced."))
