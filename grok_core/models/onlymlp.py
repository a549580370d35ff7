"""Minegishi et al.'s "OnlyMLP" (Grokking Tickets): both operand tokens embedded by one table, each projected to a
narrow hidden layer, summed, ReLU, projected back up and unembedded. No biases, no '=' token.

Sizes (the paper's: p = 67, d_model = 500, d_mlp = 48): W_E [p, d_model], W_in [d_model, d_mlp],
W_out [d_mlp, d_model], W_U [d_model, p]. Every matrix is N(0, 1/fan_in), the fan-in of the embedding being p
(a one-hot token), as in their code. Training forms W_E W_in per operand value once and takes its rows to the
pairs: the projection is linear and bias-free, so projecting each token and summing equals projecting the sum.
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from ..kernels import linear, rows_or_all_pairs, take
from .parts import FlatLayout, activation, no_token_options


class OnlyMLP:
    measures = ()                     # measures only this model records (grok_core.measures.MEASURES)
    embeds = True                     # W_E holds one row per operand token (MED reads rows 0..p-1)

    def __init__(self, cfg: RunConfig):
        no_token_options(cfg, "both tokens share one trained embedding of the p residues")
        self.cfg = cfg
        self.layout = FlatLayout(self.shapes(cfg))
        self.act = activation(cfg.act)

    @staticmethod
    def shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
        D, M, p = cfg.d_model, cfg.d_mlp, cfg.p
        return {"W_E": (p, D), "W_in": (D, M), "W_out": (M, D), "W_U": (D, p)}

    def init_params(self, cfg: RunConfig) -> torch.Tensor:
        """Each matrix [fan_in, fan_out] ~ N(0, 1/fan_in), in layout order from one generator seeded by init_seed."""
        g = torch.Generator().manual_seed(cfg.init_seed)
        return self.layout.pack({name: torch.randn(shape, generator=g) / math.sqrt(shape[0])
                                 for name, shape in self.layout.shapes.items()})

    def buffers(self, R: int) -> dict[str, torch.Tensor]:
        return {}

    def trunk(self, w: dict, i: torch.Tensor | None = None, j: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden pre-activations e_i W_in + e_j W_in for the rows (i, j) ([run, n] or RowIndex; None: all p*p pairs)."""
        W_E = w["W_E"]
        i, j = rows_or_all_pairs(i, j, self.cfg.p, W_E.shape[0], W_E.device)
        a = torch.bmm(W_E, w["W_in"])                                   # [r, p, m]
        return take(a, i) + take(a, j)

    def head(self, w: dict, feats: torch.Tensor) -> torch.Tensor:
        return linear(linear(self.act(feats), w["W_out"]), w["W_U"])

    def reference_logits(self, w: dict, r: int = 0) -> torch.Tensor:
        """Run r's logits [p*p, p] on every pair (row i*p + j), as their code writes it: embed both tokens, sum, project."""
        p = self.cfg.p
        pairs = torch.arange(p * p, device=w["W_E"].device)
        x = w["W_E"][r][pairs // p] + w["W_E"][r][pairs % p]
        return self.act(x @ w["W_in"][r]) @ w["W_out"][r] @ w["W_U"][r]

    @staticmethod
    def n_params(cfg: RunConfig) -> int:
        return sum(math.prod(s) for s in OnlyMLP.shapes(cfg).values())

    @staticmethod
    def words_per_pair(cfg: RunConfig) -> int:
        """Training memory per pair, in float32 words (grok_core.budget): the hidden layer, the up-projection, the logits."""
        return 3 * cfg.d_mlp + 2 * cfg.d_model + 2 * cfg.p

    @staticmethod
    def pair_flops(cfg: RunConfig) -> int:
        """Forward FLOPs per pair: the up-projection and the unembedding (the first layer is formed per token value)."""
        D, M = cfg.d_model, cfg.d_mlp
        return 2 * M * D + 2 * D * cfg.p + M


MODEL = OnlyMLP
