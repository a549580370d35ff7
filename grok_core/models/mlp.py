"""The embedding MLP ("2-layer DNN", spec section 4): three token embeddings concatenated, two
hidden layers, PyTorch's default Linear init. The first layer splits into per-token tables
(e_i W_1a + e_j W_1b + e_= W_1c + b_1), so it is formed on the p x p grid by broadcasting.
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from ..measures import cyclic_med
from . import FlatLayout, activation, embedding_init, linear, onehot_embedding, rows_or_all_pairs, take


class EmbedMLP:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        D, M, p = cfg.d_model, cfg.d_mlp, cfg.p
        shapes = {} if cfg.embed_init == "onehot" else {"W_E": (cfg.d_vocab, D)}
        shapes |= {"W_1": (3 * D, M), "b_1": (M,), "W_2": (M, M), "b_2": (M,), "W_3": (M, p), "b_3": (p,)}
        self.layout = FlatLayout(shapes)
        self.act = activation(cfg.act)

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

    def extra_measures(self, w: dict) -> dict[str, torch.Tensor]:
        """Hidden-layer MED (README variant): cyclic MED of act(hidden1) on the diagonal inputs (i, i)."""
        W_E = w["W_E"]
        diag = torch.arange(self.cfg.p, device=W_E.device).expand(W_E.shape[0], -1)
        return {"med_hidden": cyclic_med(self.act(self.trunk(w, diag, diag)))}
