"""Gromov's and Doshi et al.'s MLP on the "2-hot" input one-hot(i) ⊕ one-hot(j): 2p → d_mlp → p, no biases,
activation x², both weight matrices N(0, σ²) with σ² = 0.25 / (2 d_mlp)^(2/3) (the released code's std
0.5 / (2 d_mlp)^(1/3)).

Neuron n has input weights U[:, n] from the i block (rows 0..p-1 of W_in), V[:, n] from the j block (rows p..2p-1)
and output weights W_out[n, :]; its output is W_out[n, :] (U[i, n] + V[j, n])². Training takes rows i and p + j of
W_in to each pair's rows, which equals the 2-hot product exactly; `reference_logits` writes the product out.
Parameters per run (m = d_mlp): W_in [2p, m], W_out [m, p].
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from ..kernels import linear, rows_or_all_pairs, take
from .parts import FlatLayout, no_token_options, square


class QuadraticMLP:
    measures = ("mean_ipr",)          # measures only this model records (grok_core.measures.MEASURES)
    embeds = False                    # no token embedding: MED and the embedding measures do not apply

    def __init__(self, cfg: RunConfig):
        no_token_options(cfg, "its input is one-hot(i) and one-hot(j) side by side")
        self.cfg = cfg
        self.layout = FlatLayout(self.shapes(cfg))
        self.act = square

    @staticmethod
    def shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
        return {"W_in": (2 * cfg.p, cfg.d_mlp), "W_out": (cfg.d_mlp, cfg.p)}

    @staticmethod
    def init_std(cfg: RunConfig) -> float:
        return math.sqrt(0.25) / (2 * cfg.d_mlp) ** (1 / 3)

    def init_params(self, cfg: RunConfig) -> torch.Tensor:
        g = torch.Generator().manual_seed(cfg.init_seed)
        std = self.init_std(cfg)
        return self.layout.pack({name: torch.randn(shape, generator=g) * std for name, shape in self.layout.shapes.items()})

    def buffers(self, R: int) -> dict[str, torch.Tensor]:
        return {}

    def neuron_weights(self, w: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each neuron's three weight vectors over the residues, (U, V, W) each [run, d_mlp, p]."""
        p, W_in = self.cfg.p, w["W_in"]
        return W_in[:, :p].transpose(1, 2), W_in[:, p:].transpose(1, 2), w["W_out"]

    def trunk(self, w: dict, i: torch.Tensor | None = None, j: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden pre-activations U[i] + V[j] for the rows (i, j) ([run, n] tensors or RowIndex; None: all p*p pairs)."""
        p, W_in = self.cfg.p, w["W_in"]
        i, j = rows_or_all_pairs(i, j, p, W_in.shape[0], W_in.device)
        return take(W_in[:, :p], i) + take(W_in[:, p:], j)

    def head(self, w: dict, feats: torch.Tensor) -> torch.Tensor:
        return linear(square(feats), w["W_out"])

    def reference_logits(self, w: dict, r: int = 0) -> torch.Tensor:
        """Run r's logits [p*p, p] on every pair (row i*p + j): the 2-hot input times W_in, squared, times W_out."""
        p = self.cfg.p
        pairs = torch.arange(p * p, device=w["W_in"].device)
        x = torch.cat([torch.nn.functional.one_hot(pairs // p, p), torch.nn.functional.one_hot(pairs % p, p)], 1)
        return (x.to(w["W_in"].dtype) @ w["W_in"][r]) ** 2 @ w["W_out"][r]

    @staticmethod
    def n_params(cfg: RunConfig) -> int:
        return sum(math.prod(s) for s in QuadraticMLP.shapes(cfg).values())

    @staticmethod
    def words_per_pair(cfg: RunConfig) -> int:
        """Training memory per pair, in float32 words (grok_core.budget), on the safe side: the hidden layer before
        and after the square and its gradient, and two p-wide logit tensors."""
        return 3 * cfg.d_mlp + 2 * cfg.p

    @staticmethod
    def pair_flops(cfg: RunConfig) -> int:
        """Forward FLOPs per pair: the square and the output layer (the first layer is two rows taken and added)."""
        M = cfg.d_mlp
        return 2 * M * cfg.p + 2 * M


MODEL = QuadraticMLP
