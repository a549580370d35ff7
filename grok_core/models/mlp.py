"""The embedding MLP ("2-layer DNN", spec section 4): three token embeddings concatenated, two
hidden layers, PyTorch's default Linear init.

Training splits the first layer into per-token tables (e_i W_1a + e_j W_1b + e_= W_1c + b_1) formed
once per operand value and taken to rows; `reference_logits` is the concatenation as written.
Parameters per run (d = d_model, m = d_mlp): W_E [d_vocab, d], W_1 [3d, m], b_1 [m], W_2 [m, m],
b_2 [m], W_3 [m, p], b_3 [p].
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from ..kernels import linear, rows_or_all_pairs, take
from ..tasks import tokens
from .parts import FlatLayout, activation, embedding_init, onehot_embedding


class EmbedMLP:
    measures = ("med_hidden",)        # measures only this model records (grok_core.measures.MEASURES)
    embeds = True                     # has a token embedding W_E (MED and the embedding measures read it)

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.layout = FlatLayout(self.shapes(cfg))
        self.act = activation(cfg.act)

    @staticmethod
    def shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
        D, M, p = cfg.d_model, cfg.d_mlp, cfg.p
        shapes = {} if cfg.embed_init == "onehot" else {"W_E": (cfg.d_vocab, D)}
        return shapes | {"W_1": (3 * D, M), "b_1": (M,), "W_2": (M, M), "b_2": (M,), "W_3": (M, p), "b_3": (p,)}

    def init_params(self, cfg: RunConfig) -> torch.Tensor:
        """W_E ~ N(0,1)/sqrt(d_model); Linear weights and biases U(+-1/sqrt(fan_in)), torch's default."""
        g = torch.Generator().manual_seed(cfg.init_seed)
        out = {}
        for name, shape in self.layout.shapes.items():
            if name == "W_E":
                out[name] = embedding_init(cfg, g)
            else:
                fan_in = self.layout.shapes["W" + name[1:]][0]
                out[name] = (torch.rand(shape, generator=g) * 2 - 1) / math.sqrt(fan_in)
        return self.layout.pack(out)

    def buffers(self, R: int) -> dict[str, torch.Tensor]:
        if self.cfg.embed_init == "onehot":
            return {"W_E": onehot_embedding(self.cfg).expand(R, -1, -1)}
        return {}

    def trunk(self, w: dict, i: torch.Tensor | None = None, j: torch.Tensor | None = None) -> torch.Tensor:
        """First-layer pre-activations for the rows (i, j) ([run, n] tensors or RowIndex; None: all p*p pairs): [run, n, d_mlp]."""
        p, d, D = self.cfg.p, self.cfg.operand_offset, self.cfg.d_model
        W_E, W_1 = w["W_E"], w["W_1"]
        R = W_E.shape[0]
        i, j = rows_or_all_pairs(i, j, p, R, W_E.device)
        a = torch.bmm(W_E[:, :p], W_1[:, :D])                   # [r, i, m]
        b = torch.bmm(W_E[:, d:d + p], W_1[:, D:2 * D])         # [r, j, m]
        c = torch.bmm(W_E[:, -1:], W_1[:, 2 * D:]) + w["b_1"][:, None]   # [r, 1, m]
        return take(a, i) + take(b, j) + c

    def head(self, w: dict, feats: torch.Tensor) -> torch.Tensor:
        h = self.act(linear(self.act(feats), w["W_2"], w["b_2"]))
        return linear(h, w["W_3"], w["b_3"])

    def reference_logits(self, w: dict, r: int = 0) -> torch.Tensor:
        """Run r's logits [p*p, p] on every pair (row i*p + j): the three embeddings concatenated, three layers."""
        cfg = self.cfg
        x = w["W_E"][r][tokens(cfg.p, cfg.operand_offset)].flatten(1)     # [N, 3d]
        h = self.act(x @ w["W_1"][r] + w["b_1"][r])
        h = self.act(h @ w["W_2"][r] + w["b_2"][r])
        return h @ w["W_3"][r] + w["b_3"][r]

    @staticmethod
    def n_params(cfg: RunConfig) -> int:
        return sum(math.prod(s) for s in EmbedMLP.shapes(cfg).values())

    @staticmethod
    def words_per_pair(cfg: RunConfig) -> int:
        """Training memory per pair, in float32 words (grok_core.budget): the hidden layers and the logits."""
        return 5 * cfg.d_mlp + 2 * cfg.p

    @staticmethod
    def pair_flops(cfg: RunConfig) -> int:
        """Forward FLOPs per pair: the second and third layers (the first is formed per operand value)."""
        M = cfg.d_mlp
        return 2 * M * M + 2 * M * cfg.p + 2 * M


MODEL = EmbedMLP
