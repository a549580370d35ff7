"""Modular-arithmetic tasks: the functions by explicit name and the full p x p token table.

The released code used one key, "xy", for three different polynomials; here each has its own name.
A sample is the token triple (i, j + operand_offset, '='), labelled fn(i, j) mod p with the raw j.
"""
from __future__ import annotations

from fractions import Fraction

import torch


def _pow(x, n, p):
    out = torch.ones_like(x)
    for _ in range(n):
        out = out * x % p   # reduce every factor so int64 never overflows
    return out


FUNCTIONS = {
    "add": lambda x, y, p: (x + y) % p,
    "subtract": lambda x, y, p: (x - y) % p,
    "mul": lambda x, y, p: x * y % p,
    "x2_y2": lambda x, y, p: (_pow(x, 2, p) + _pow(y, 2, p)) % p,
    "x2_xy_y2": lambda x, y, p: (_pow(x, 2, p) + x * y % p + _pow(y, 2, p)) % p,
    "x_plus_y_sq": lambda x, y, p: _pow((x + y) % p, 2, p),
    "x3_y3": lambda x, y, p: (_pow(x, 3, p) + _pow(y, 3, p)) % p,
    "x3_xy_y3": lambda x, y, p: (_pow(x, 3, p) + x * y % p + _pow(y, 3, p)) % p,
}

FUNCTION_LABELS = {
    "add": "x+y", "subtract": "x−y", "mul": "x·y", "x2_y2": "x²+y²", "x2_xy_y2": "x²+xy+y²",
    "x_plus_y_sq": "(x+y)²", "x3_y3": "x³+y³", "x3_xy_y3": "x³+xy+y³",
}


def operands(p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """i and j of every pair in i-major order (pair index = i * p + j), each [p*p] int64."""
    i = torch.arange(p).repeat_interleave(p)
    j = torch.arange(p).repeat(p)
    return i, j


def labels(fn: str, p: int) -> torch.Tensor:
    """fn(i, j) mod p for every pair in i-major order, [p*p] int64."""
    if fn not in FUNCTIONS:
        raise ValueError(f"fn={fn!r} is not allowed; choose one of {', '.join(map(repr, FUNCTIONS))}")
    i, j = operands(p)
    return FUNCTIONS[fn](i, j, p)


def tokens(p: int, operand_offset: int = 0) -> torch.Tensor:
    """The (i, j + offset, '=') triples in i-major order, [p*p, 3]; '=' is the last vocabulary token."""
    i, j = operands(p)
    eq = torch.full_like(i, p + operand_offset)
    return torch.stack([i, j + operand_offset, eq], dim=1)


def corrupted_count(share: float, n: int) -> int:
    """floor(share * n) with share read as the decimal it prints as (0.29 * 100 is 29, not float's 28.999...)."""
    return int(Fraction(repr(float(share))) * n)


def corrupt_labels(labels: torch.Tensor, cfg) -> torch.Tensor:
    """Doshi et al.'s label corruption: the first corrupted_count(cfg.corrupt_share, n) train pairs (in split order,
    itself a shuffle) get labels drawn uniformly from all p classes (their code's int variant drew from p - 1 of
    them) by a generator seeded with cfg.corrupt_seed; about 1/p of the drawn labels equal the truth."""
    k = corrupted_count(cfg.corrupt_share, len(labels))
    g = torch.Generator().manual_seed(cfg.corrupt_seed)
    out = labels.clone()
    out[:k] = torch.randint(0, cfg.p, (k,), generator=g).to(labels.device)
    return out


# Label transforms at the data layer (RunConfig.label_transform): name -> fn(labels [n_train] of a run's
# train rows in split order, cfg) -> the labels it trains on; test labels stay the task's. "none" is the task.
LABEL_TRANSFORMS = {"none": None, "corrupt": corrupt_labels}
