"""Local complexity (Humayun et al. 2024) in the transformer's embedding space, batched over runs.

Around an input x (its three embedded positions, concatenated) a cross-polytope with vertices x ± r qᵢ for
orthonormal qᵢ (one seeded frame for every run and step) is pushed through the model; a neuron counts when its
pre-activation does not have one sign at all vertices: its hyperplane cuts the neighbourhood. The radius is a
share of the mean input norm, since weight decay shrinks the embeddings as training goes on.
"""
from __future__ import annotations

import torch

N_DIRECTIONS = 10       # 20 vertices
RADIUS = 0.05           # r as a share of the mean norm of the concatenated embedded inputs
N_POINTS = 512          # inputs per part (train, held-out)


def frame(dim: int, n: int = N_DIRECTIONS, seed: int = 0, dtype=torch.float64, device=None) -> torch.Tensor:
    """[n, dim] orthonormal rows, the same for a given seed."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, n, generator=g, dtype=torch.float64))
    return q.T.to(device=device, dtype=dtype)


def sign_changes(pre_fn, x: torch.Tensor, directions: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """x [run, n, D] points, directions [k, D], r [run] radii -> [run, n]: how many units of pre_fn ([run, rows, D]
    -> [run, rows, m]) change sign over the 2k vertices x ± r qᵢ."""
    R, n, D = x.shape
    step = r[:, None, None, None] * torch.cat([directions, -directions])[None, None]   # [run, 1, 2k, D]
    vertices = (x[:, :, None] + step).reshape(R, -1, D)
    pos = (pre_fn(vertices) > 0).reshape(R, n, step.shape[2], -1)
    return (pos.any(2) & ~pos.all(2)).sum(-1)


def point_rows(train_rows: torch.Tensor, p: int, n: int = N_POINTS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(up to n train rows, up to n held-out rows) of the p² table, each a seeded random choice; train_rows [t]."""
    g = torch.Generator().manual_seed(seed)
    is_train = torch.zeros(p * p, dtype=torch.bool)
    is_train[train_rows.cpu()] = True
    pick = [rows[torch.randperm(len(rows), generator=g)[:n]] for rows in (is_train.nonzero()[:, 0], (~is_train).nonzero()[:, 0])]
    return pick[0].to(train_rows.device), pick[1].to(train_rows.device)
