"""What the models share: parameters packed per run into one flat vector, and the embedding inits.

All trainable parameters of all runs live in one [run, n_params] tensor; models read named
views of it, so the optimiser works on a handful of large elementwise kernels.
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig


class FlatLayout:
    """Names and shapes of parameters packed, in order, into one flat vector per run."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.shapes = dict(shapes)
        self.offsets, n = {}, 0
        for name, shape in self.shapes.items():
            self.offsets[name] = n
            n += math.prod(shape)
        self.size = n

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """[run, size] -> {name: [run, *shape]} views sharing flat's storage (and autograd graph)."""
        R = flat.shape[0]
        return {name: flat[:, o:o + math.prod(s)].view(R, *s)
                for (name, s), o in zip(self.shapes.items(), self.offsets.values())}

    def pack(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """{name: [*shape]} for one run -> [size]."""
        return torch.cat([tensors[name].reshape(-1) for name in self.shapes])


def embedding_init(cfg: RunConfig, g: torch.Generator) -> torch.Tensor:
    """W_E [d_vocab, d_model] for the trainable inits, scaled by 1/sqrt(d_model) like every matrix.

    toeplitz follows the released code (a symmetric Toeplitz matrix of one Uniform[0,1) vector,
    T[r, c] = v[|r - c|]); circulant is the paper's wording (row t is v rotated by t).
    """
    V, D = cfg.d_vocab, cfg.d_model
    if cfg.embed_init == "normal":
        return torch.randn(V, D, generator=g) / math.sqrt(D)
    v = torch.rand(D, generator=g)
    r = torch.arange(V)[:, None]
    c = torch.arange(D)[None, :]
    idx = (r - c).abs() if cfg.embed_init == "toeplitz" else (c - r) % D
    return v[idx] / math.sqrt(D)


def onehot_embedding(cfg: RunConfig) -> torch.Tensor:
    """The README's fixed embedding: identity in the top-left block, a buffer (not trained, not decayed)."""
    W = torch.zeros(cfg.d_vocab, cfg.d_model)
    n = min(cfg.d_vocab, cfg.d_model)
    W[torch.arange(n), torch.arange(n)] = 1.0
    return W


def no_token_options(cfg: RunConfig, why: str):
    """Refuse, before training, the token options (operand offset, embedding init) of a model that has no
    transformer token table to apply them to; `why` says what its input is instead."""
    if cfg.operand_offset != 0 or cfg.embed_init != "normal":
        raise ValueError(f"model={cfg.model!r} takes neither operand_offset nor embed_init (got {cfg.operand_offset}, "
                         f"{cfg.embed_init!r}): {why}")


def square(x: torch.Tensor) -> torch.Tensor:
    """x², the activation of Gromov's and Doshi et al.'s MLP (its Fourier solution is known in closed form)."""
    return x * x


def activation(name: str):
    return {"relu": torch.relu, "gelu": torch.nn.functional.gelu, "square": square}[name]
