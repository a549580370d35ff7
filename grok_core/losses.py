"""Per-sample training losses by name (RunConfig.loss): each maps logits [run, n, p] and labels
[run, n] to a loss per sample [run, n] in the logits' dtype, computed for every run alone.
RunConfig.loss_precision sets the float type the loss is computed in (`training_loss`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _flat(logits: torch.Tensor, labels: torch.Tensor):
    R, n, p = logits.shape
    return logits.reshape(R * n, p), labels.reshape(R * n)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    flat, y = _flat(logits, labels)
    return F.cross_entropy(flat, y, reduction="none").view(labels.shape)


def cross_entropy_float64(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The log-softmax in float64: no absorption of small probabilities when the logits grow large."""
    flat, y = _flat(logits, labels)
    return F.cross_entropy(flat.double(), y, reduction="none").to(flat.dtype).view(labels.shape)


def mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Squared error against one-hot targets, averaged over the p outputs (the released README's variant)."""
    flat, y = _flat(logits, labels)
    return ((flat - F.one_hot(y, flat.shape[-1]).to(flat.dtype)) ** 2).mean(-1).view(labels.shape)


def stablemax_logits(logits: torch.Tensor) -> torch.Tensor:
    """g(x) = sign(x) log(1 + |x|). exp(g(x)) is Prieto et al.'s s(x) (x + 1 for x >= 0, 1 / (1 - x) for
    x < 0), so StableMax(x) = s(x) / sum_j s(x_j) is softmax(g(x)) and torch's log-softmax does the rest, at
    any precision. Written per branch so that the slope at 0 is 1 (sign(x) log1p(|x|) has slope 0 there in
    autograd), with each branch's argument clamped so that the branch not taken stays finite."""
    return torch.where(logits >= 0, torch.log1p(logits.clamp(min=0)), -torch.log1p((-logits).clamp(min=0)))


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log StableMax(x)[y] (Prieto et al. 2025): the cross-entropy of the transformed logits g(x)."""
    return cross_entropy(stablemax_logits(logits), labels)


LOSSES = {"ce": cross_entropy, "ce64": cross_entropy_float64, "mse": mse, "stablemax": stablemax_cross_entropy}

# The softmax-based losses by the logits they hand to torch's log-softmax, so that a measure can read the
# training kernel's own log-probabilities; a loss not listed (mse) has no softmax.
SOFTMAX_LOGITS = {"ce": lambda x: x, "ce64": lambda x: x, "stablemax": stablemax_logits}

# RunConfig.loss_precision: the bits of the float type the per-sample loss is computed in. 32 means the
# training dtype itself (float32 in every stored run, float64 in a Trainer(dtype=torch.float64) test), so
# the default casts nothing; 16 and 64 cast the logits to float16 / float64 and the loss back. loss='ce64'
# computes in float64 by itself and takes only the default (config.py); it is loss='ce' at 64 bits.
LOSS_PRECISIONS = (16, 32, 64)


def loss_dtype(cfg, dtype: torch.dtype) -> torch.dtype:
    """The float type cfg's per-sample loss is computed in, when training runs in dtype."""
    if cfg.loss == "ce64":
        return torch.float64
    return {16: torch.float16, 32: dtype, 64: torch.float64}[cfg.loss_precision]


def loss_in_its_dtype(cfg, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """cfg's per-sample loss [run, n] exactly as training computes it, left in loss_dtype (not cast back)."""
    return LOSSES[cfg.loss](logits.to(loss_dtype(cfg, logits.dtype)), labels)


def training_loss(cfg, dtype: torch.dtype):
    """fn(logits, labels) -> per-sample loss in dtype for runs trained in dtype: LOSSES[cfg.loss] itself when
    the loss is computed in dtype (the default) or casts by itself (ce64); else the logits are cast to
    loss_dtype and the loss back to dtype, the gradient flowing through both casts."""
    fn, ld = LOSSES[cfg.loss], loss_dtype(cfg, dtype)
    if cfg.loss == "ce64" or ld == dtype:
        return fn
    return lambda logits, labels: fn(logits.to(ld), labels).to(logits.dtype)
