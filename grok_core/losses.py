"""Per-sample training losses by name (RunConfig.loss): each maps logits [run, n, p] and labels
[run, n] to a loss per sample [run, n] in the logits' dtype, computed for every run alone.
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


LOSSES = {"ce": cross_entropy, "ce64": cross_entropy_float64, "mse": mse}
