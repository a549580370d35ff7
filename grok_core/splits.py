"""Train/test splits of the p x p table: random, square dug out, strip dug out, symmetric.

Reproduces the released code's split for a given seed: the i-major pair list (block removed,
order kept) is shuffled by Python's Mersenne Twister, and the first int(frac * p^2) pairs train.
The train size is a fraction of the whole table, so a large block can leave fewer pairs than
asked for; then train is the whole remainder and a warning says so.
The symmetric split is Minegishi et al.'s ("symmetric input"): only the p(p+1)/2 unordered pairs i <= j
exist, shuffled the same way, and the first int(frac * p(p+1)/2) train; the rest are the test set. A pair
i > j is in neither, so no test pair is the mirror image of a training pair.
"""
from __future__ import annotations

import random
import warnings
from dataclasses import dataclass

import torch

from .config import RunConfig


@dataclass(frozen=True)
class Split:
    """Index tensors in the released code's order, plus [p*p] boolean masks."""
    train_idx: torch.Tensor      # [n_train] pair indices, in shuffled order
    test_idx: torch.Tensor       # [n_test]: the block (i-major) followed by the leftover remainder
    block_mask: torch.Tensor     # [p*p] pairs forced into test by the square/strip block
    train_mask: torch.Tensor
    test_mask: torch.Tensor      # the test pairs (all but train, except in the symmetric split: i > j is in neither)
    shrunk: bool                 # train holds fewer pairs than int(frac * p^2)

    @property
    def leftover_mask(self) -> torch.Tensor:
        """Test pairs outside the dug-out block (all of test for a random split)."""
        return self.test_mask & ~self.block_mask


def block_mask(p: int, split: str, split_param: int) -> torch.Tensor:
    """[p*p] mask of the dug-out block: i, j <= k (square), i <= t (strip), empty (random, symmetric)."""
    i = torch.arange(p).repeat_interleave(p)
    j = torch.arange(p).repeat(p)
    if split in ("random", "symmetric"):
        return torch.zeros(p * p, dtype=torch.bool)
    if split == "square":
        return (i <= split_param) & (j <= split_param)
    if split == "strip":
        return i <= split_param
    raise ValueError(f"split={split!r} is not allowed; choose one of 'random', 'square', 'strip', 'symmetric'")


def _block_size(cfg: RunConfig) -> int:
    """How many pairs block_mask holds, counted without building it."""
    return {"random": 0, "symmetric": 0, "square": (cfg.split_param + 1) ** 2,
            "strip": (cfg.split_param + 1) * cfg.p}[cfg.split]


def pool_size(cfg: RunConfig) -> int:
    """How many pairs the split draws from: p(p+1)/2 unordered pairs for the symmetric split, else all p^2."""
    return cfg.p * (cfg.p + 1) // 2 if cfg.split == "symmetric" else cfg.p * cfg.p


def split_sizes(cfg: RunConfig) -> tuple[int, int]:
    """(train, test) pair counts of cfg's split, without building it (for planning batches)."""
    n = pool_size(cfg)
    n_train = min(int(cfg.frac_train * n), n - _block_size(cfg))
    return n_train, n - n_train


def draws_nothing(cfg: RunConfig) -> bool:
    """True when the block leaves no more pairs than frac_train asks for: the train set is then the whole
    remainder, and the split seed changes only the order of its pairs, not which pairs they are."""
    return cfg.split in ("square", "strip") and split_sizes(cfg)[0] == cfg.p * cfg.p - _block_size(cfg)


def warn_if_shrunk(cfg: RunConfig) -> bool:
    """Warn, from the counts alone, when the block leaves fewer pairs than frac_train asks for; True if so."""
    n_train, n_test = split_sizes(cfg)
    asked = int(cfg.frac_train * pool_size(cfg))
    if n_train < asked:
        warnings.warn(f"{cfg.split} split with parameter {cfg.split_param} leaves only {n_train} pairs outside "
                      f"the block, fewer than int(frac_train * p^2) = {asked}: train is the whole remainder",
                      stacklevel=3)
    return n_train < asked


def make_split(cfg: RunConfig) -> Split:
    p, n = cfg.p, cfg.p * cfg.p
    n_train = int(cfg.frac_train * pool_size(cfg))
    block = block_mask(p, cfg.split, cfg.split_param)
    pool = ~block
    if cfg.split == "symmetric":                               # the unordered pairs i <= j, i-major
        pool &= torch.arange(p).repeat_interleave(p) <= torch.arange(p).repeat(p)
    remainder = torch.nonzero(pool).flatten().tolist()        # i-major order, block removed
    random.Random(cfg.split_seed).shuffle(remainder)           # same stream as random.seed(s); shuffle
    shrunk = warn_if_shrunk(cfg)
    train = remainder[:n_train]
    rest = remainder[n_train:]
    test = torch.nonzero(block).flatten().tolist() + rest
    train_idx = torch.tensor(train, dtype=torch.long)
    test_idx = torch.tensor(test, dtype=torch.long)
    train_mask = torch.zeros(n, dtype=torch.bool)
    train_mask[train_idx] = True
    test_mask = torch.zeros(n, dtype=torch.bool)
    test_mask[test_idx] = True
    return Split(train_idx, test_idx, block, train_mask, test_mask, shrunk)
