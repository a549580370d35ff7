"""The local learning coefficient (Lau et al. 2023) estimated by SGLD around each run's weights, batched over runs.

With n training samples, the inverse temperature β = 1 / log n and a localising pull γ towards w*, the chain
    w ← w − (ε/2) (nβ ∇L(w) + γ (w − w*)) + √ε ξ,   ξ ~ N(0, I)
samples the tempered posterior near w*, and λ̂ = nβ (mean of L(w) over the draws − L(w*)). Runs never mix: the
loss is a sum of per-run losses, so each run's gradient is its own, and each run's noise comes from its own seed. For a quadratic L = L₀ + ½ wᵀHw of full rank
in d dimensions λ = d / 2 (tests/test_progress_members.py). The settings are fixed before any run is looked at.
"""
from __future__ import annotations

import math

import torch

STEP = 1e-5          # ε
PULL = 100.0         # γ
DRAWS = 100          # chain length
BURN_IN = 20         # draws left out at the start


def sgld_llc(loss_fn, w_star: torch.Tensor, n, step: float = STEP, pull: float = PULL, draws: int = DRAWS,
             burn_in: int = BURN_IN, seeds: list[int] | None = None) -> torch.Tensor:
    """loss_fn([run, d]) -> [run] mean losses; w_star [run, d]; n the training-set size (one, or [run]) -> [run]: λ̂.
    seeds: one noise seed per run (its own chain's); None: seed 0 for every run, drawn once per step."""
    if draws <= burn_in:
        raise ValueError(f"draws={draws!r} is not allowed; it must exceed burn_in={burn_in}")
    n = torch.as_tensor(n, dtype=w_star.dtype, device=w_star.device).reshape(-1, 1)
    nbeta = n / n.log()                                                  # [1 or run, 1]
    gens = [torch.Generator(device=w_star.device).manual_seed(s) for s in (seeds if seeds is not None else [0])]
    w0 = w_star.detach()
    with torch.enable_grad():
        base = loss_fn(w0).detach()
        w = w0.clone().requires_grad_()
        total = torch.zeros_like(base)
        for t in range(draws):
            loss = loss_fn(w)
            (grad,) = torch.autograd.grad(loss.sum(), w)
            if t >= burn_in:
                total += loss.detach()
            # each run's noise comes from its own seed, never from its place in the batch
            noise = torch.stack([torch.randn(w.shape[1:], generator=g, device=w.device, dtype=w.dtype) for g in gens])
            with torch.no_grad():
                w -= step / 2 * (nbeta * grad + pull * (w - w0))
                w += math.sqrt(step) * noise
    return nbeta[:, 0] * (total / (draws - burn_in) - base)
