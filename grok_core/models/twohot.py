"""The bias-free MLP of Prieto et al. (2025) on the "2-hot" input one-hot(i) ⊕ one-hot(j): 2p → d_mlp → d_mlp
→ p, ReLU, PyTorch's default Linear init, no biases, so the logits are homogeneous of degree 3 in the weights.

Training forms the first layer per operand value (rows i and p + j of W_1, taken to each pair's rows), which
equals the 2-hot product exactly; `reference_logits` writes the product out. Parameters per run (m = d_mlp):
W_1 [2p, m], W_2 [m, m], W_3 [m, p].
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from ..kernels import linear, rows_or_all_pairs, take
from .mlp import EmbedMLP
from .parts import FlatLayout, activation, no_token_options


class TwoHotMLP:
    measures = ()                     # measures only this model records (grok_core.measures.MEASURES)
    embeds = False                    # no token embedding: MED and the embedding measures do not apply

    def __init__(self, cfg: RunConfig):
        no_token_options(cfg, "its input is one-hot(i) and one-hot(j) side by side")
        self.cfg = cfg
        self.layout = FlatLayout(self.shapes(cfg))
        self.act = activation(cfg.act)

    @staticmethod
    def shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
        M, p = cfg.d_mlp, cfg.p
        return {"W_1": (2 * p, M), "W_2": (M, M), "W_3": (M, p)}

    def init_params(self, cfg: RunConfig) -> torch.Tensor:
        """Each W [fan_in, fan_out] ~ U(+-1/sqrt(fan_in)): torch's default Linear weight init."""
        g = torch.Generator().manual_seed(cfg.init_seed)
        return self.layout.pack({name: (torch.rand(shape, generator=g) * 2 - 1) / math.sqrt(shape[0])
                                 for name, shape in self.layout.shapes.items()})

    def buffers(self, R: int) -> dict[str, torch.Tensor]:
        return {}

    def trunk(self, w: dict, i: torch.Tensor | None = None, j: torch.Tensor | None = None) -> torch.Tensor:
        """First-layer pre-activations for the rows (i, j) ([run, n] tensors or RowIndex; None: all p*p pairs)."""
        p, W_1 = self.cfg.p, w["W_1"]
        i, j = rows_or_all_pairs(i, j, p, W_1.shape[0], W_1.device)
        return take(W_1[:, :p], i) + take(W_1[:, p:], j)

    def head(self, w: dict, feats: torch.Tensor) -> torch.Tensor:
        return linear(self.act(linear(self.act(feats), w["W_2"])), w["W_3"])

    def reference_logits(self, w: dict, r: int = 0) -> torch.Tensor:
        """Run r's logits [p*p, p] on every pair (row i*p + j): the 2-hot input times W_1, then two layers."""
        p = self.cfg.p
        pairs = torch.arange(p * p, device=w["W_1"].device)
        x = torch.cat([torch.nn.functional.one_hot(pairs // p, p), torch.nn.functional.one_hot(pairs % p, p)], 1)
        h = self.act(x.to(w["W_1"].dtype) @ w["W_1"][r])
        return self.act(h @ w["W_2"][r]) @ w["W_3"][r]

    @staticmethod
    def n_params(cfg: RunConfig) -> int:
        return sum(math.prod(s) for s in TwoHotMLP.shapes(cfg).values())

    words_per_pair = staticmethod(EmbedMLP.words_per_pair)     # the same two hidden layers and logits per pair

    @staticmethod
    def pair_flops(cfg: RunConfig) -> int:
        """Forward FLOPs per pair: the second and third layers (the first is two rows taken and added)."""
        M = cfg.d_mlp
        return 2 * M * M + 2 * M * cfg.p + M


MODEL = TwoHotMLP
