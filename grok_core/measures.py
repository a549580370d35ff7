"""Progress measures, each batched over a leading run axis: MED variants and the weight norm.

MED (Definition 4.2) is the mean Euclidean distance between the embeddings of consecutive
operand tokens, cyclic (p differences). The paper's figures plot the sum (no 1/p); the released
code instead averages p-2 differences (tokens 0..p-2, no wrap-around), kept as `med_reference`.
"""
from __future__ import annotations

import torch

NORMALIZE = ("mean", "sum")


def _check_normalize(normalize):
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize={normalize!r} is not allowed; choose 'mean' or 'sum'")


def cyclic_med(vectors: torch.Tensor, normalize: str = "mean") -> torch.Tensor:
    """[run, p, d] points phi(0..p-1) -> [run]: (1/p) sum_i ||phi(i+1) - phi(i)||, phi(p) := phi(0)."""
    _check_normalize(normalize)
    dists = (torch.roll(vectors, -1, dims=-2) - vectors).norm(dim=-1)
    return dists.mean(-1) if normalize == "mean" else dists.sum(-1)


def med(W_E: torch.Tensor, p: int, start: int = 0, normalize: str = "mean") -> torch.Tensor:
    """Paper MED of the operand tokens start..start+p-1 of W_E [run, d_vocab, d_model] -> [run]."""
    return cyclic_med(W_E[:, start:start + p], normalize)


def _reference_mean(W_E, a, b):
    """The released code's m(a, b): mean of ||W[c+1] - W[c]|| over c = a..b-2."""
    cols = W_E[:, a:b]
    return (cols[:, 1:] - cols[:, :-1]).norm(dim=-1).mean(-1)


def med_reference(W_E: torch.Tensor, p: int, operand_offset: int = 0, normalize: str = "mean") -> torch.Tensor:
    """The released code's MED: p-2 differences per operand range, no wrap-around.

    mean: (m1 + m2) / 2, as in transformer/base.py and MLP/*.py;
    sum: (p - 1) (m1 + m2), the "un-averaged" value of transformer/rec.py.
    """
    _check_normalize(normalize)
    m1 = _reference_mean(W_E, 0, p - 1)
    m2 = _reference_mean(W_E, operand_offset, operand_offset + p - 1)
    return (m1 + m2) / 2 if normalize == "mean" else (p - 1) * (m1 + m2)


def weight_norm(flat_params: torch.Tensor) -> torch.Tensor:
    """L2 norm of all trainable parameters of each run, [run, n_params] -> [run]."""
    return flat_params.norm(dim=-1)
