"""Fourier views of a modular-arithmetic model (Nanda et al. 2023; Gromov's IPR), batched over a leading run axis.

Frequencies k = 1..(p-1)/2 of the real basis (cos and sin of 2πkx/p, orthonormal rows; p is an odd prime here).
The logit table L[x, y, z] is taken apart with the 2-D complex DFT over (x, y): for x + y mod p the circuit lives
on the diagonal coefficients (k, k) and (-k, -k), for x - y on the anti-diagonal (k, -k). Everything is computed in
float64 (the released code's "high precision" loss was float32).
"""
from __future__ import annotations

import math

import torch

# where each task's Fourier circuit lives in the 2-D DFT of the logit table: the sign of the y frequency
CIRCUIT_SIGN = {"add": 1, "subtract": -1}
KEY_SHARE = 0.85       # a neuron belongs to its best frequency when that frequency holds this share of its energy
KEY_NEURONS = 0.02     # a frequency is key when it owns at least this share of the MLP's neurons


def frequencies(p: int) -> int:
    """How many non-constant frequency pairs (cos, sin) the real basis has for odd p."""
    return (p - 1) // 2


def real_basis(p: int, device=None) -> torch.Tensor:
    """[p, p] float64, orthonormal rows: the constant, then cos k, sin k for k = 1..(p-1)/2."""
    x = torch.arange(p, dtype=torch.float64, device=device)
    rows = [torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64, device=device)]
    for k in range(1, frequencies(p) + 1):
        rows += [math.sqrt(2 / p) * torch.cos(2 * math.pi * k * x / p), math.sqrt(2 / p) * torch.sin(2 * math.pi * k * x / p)]
    return torch.stack(rows)


def frequency_power(vectors: torch.Tensor) -> torch.Tensor:
    """[run, p, d] (d functions of the token x) -> [run, K, d]: the energy of each column at each frequency k
    (cos² + sin² coefficients), the constant left out."""
    p = vectors.shape[-2]
    c = torch.einsum("fx,rxd->rfd", real_basis(p, vectors.device), vectors.double())
    return c[:, 1::2] ** 2 + c[:, 2::2] ** 2


def gini(a: torch.Tensor) -> torch.Tensor:
    """[run, n] non-negative -> [run]: Σ_i Σ_j |a_i - a_j| / (2 n Σ a): 0 for equal entries, (n-1)/n for one."""
    n = a.shape[-1]
    return (a[..., :, None] - a[..., None, :]).abs().sum((-1, -2)) / (2 * n * a.sum(-1))


def ipr(power: torch.Tensor) -> torch.Tensor:
    """[..., K] energies -> [...]: inverse participation ratio Σ P² / (Σ P)²: 1 for one frequency, 1/K when flat."""
    return (power ** 2).sum(-1) / power.sum(-1) ** 2


def embedding_gini(W: torch.Tensor) -> torch.Tensor:
    """Gini of the per-frequency norms of the token embedding [run, p, d] (all columns together)."""
    return gini(frequency_power(W).sum(-1).sqrt())


def embedding_ipr(W: torch.Tensor) -> torch.Tensor:
    """IPR of each embedding direction (a column, a function of the token) over frequencies, averaged."""
    return ipr(frequency_power(W).transpose(-1, -2)).mean(-1)


def neuron_frequencies(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """acts [run, p, p, m] (MLP post-activations on every pair) -> (best frequency index 0..K-1, its share of the
    neuron's centred energy), each [run, m]. A frequency k's share is the energy in the 3 x 3 block {const, cos k,
    sin k} in x times the same in y, less const x const."""
    p = acts.shape[1]
    F = real_basis(p, acts.device)
    c = torch.einsum("ax,by,rxym->rabm", F, F, acts.double())           # [run, p, p, m]
    c[:, 0, 0] = 0                                                      # centred over inputs
    total = (c ** 2).sum((1, 2))                                        # [run, m]
    K = frequencies(p)
    idx = [torch.tensor([0, 2 * k + 1, 2 * k + 2], device=acts.device) for k in range(K)]
    block = torch.stack([(c[:, i][:, :, i] ** 2).sum((1, 2)) for i in idx], 1)   # [run, K, m]; (0, 0) is 0
    share = block / total.clamp_min(1e-300)[:, None]
    best, at = share.max(1)
    return at, best


def key_frequencies(acts: torch.Tensor, share: float = KEY_SHARE, neurons: float = KEY_NEURONS) -> torch.Tensor:
    """[run, K] bool: the frequencies that own at least `neurons` of the MLP's neurons with a best share >= `share`
    (read from these activations alone)."""
    at, best = neuron_frequencies(acts)
    K, m = frequencies(acts.shape[1]), acts.shape[-1]
    owned = torch.zeros(acts.shape[0], K, device=acts.device, dtype=torch.float64)
    owned.scatter_add_(1, at, (best >= share).double())
    return owned >= max(1, math.ceil(neurons * m))


def _circuit_mask(p: int, keys: torch.Tensor, sign: int) -> torch.Tensor:
    """[run, p, p] bool over the 2-D DFT: the coefficients (k, sign k) and (-k, -sign k) of each key frequency."""
    R, K = keys.shape
    mask = torch.zeros(R, p, p, dtype=torch.bool, device=keys.device)
    k = torch.arange(1, K + 1, device=keys.device)
    for a, b in ((k, (sign * k) % p), ((-k) % p, (-sign * k) % p)):
        mask[:, a, b] = keys
    return mask


def circuit_parts(logits: torch.Tensor, keys: torch.Tensor, sign: int) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [run, p, p, z] -> (restricted, excluded) logit tables: the (0, 0) term plus the key frequencies'
    circuit coefficients, and the logits less those coefficients."""
    p = logits.shape[1]
    C = torch.fft.fft2(logits.double(), dim=(1, 2))
    mask = _circuit_mask(p, keys, sign)[..., None]
    const = torch.zeros_like(mask)
    const[:, 0, 0] = True
    part = torch.fft.ifft2(torch.where(mask, C, 0), dim=(1, 2)).real
    restricted = torch.fft.ifft2(torch.where(mask | const, C, 0), dim=(1, 2)).real
    return restricted, logits.double() - part


def circuit_share(logits: torch.Tensor, sign: int) -> torch.Tensor:
    """[run, p, p, z] -> [run]: the share of the logit table's energy (the (0, 0) term left out) that lies on the
    circuit's coefficients (k, sign k), k != 0, summed over outputs z."""
    p = logits.shape[1]
    power = torch.fft.fft2(logits.double(), dim=(1, 2)).abs() ** 2
    power[:, 0, 0] = 0
    k = torch.arange(1, p, device=logits.device)
    return power[:, k, (sign * k) % p].sum((1, 2)) / power.sum((1, 2, 3))


def table_loss(logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in float64 of the table [run, p, p, z] at flat rows [run, n] (x * p + y) with labels
    [run, n], each row weighted by weights [run, n] (0 for padding)."""
    R, p = logits.shape[:2]
    flat = logits.reshape(R, p * p, -1).double()
    picked = torch.gather(flat, 1, rows[..., None].expand(-1, -1, flat.shape[-1]))
    nll = -torch.log_softmax(picked, -1).gather(-1, labels[..., None]).squeeze(-1)
    return (nll * weights).sum(-1) / weights.sum(-1)
