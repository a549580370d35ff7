"""The paper's transformer (Nanda et al.'s shape): no LayerNorm, causal attention, read-out at '='.

A sequence is (i, j + operand_offset, '='). `reference_logits` is the forward written out as the
paper defines it, position by position; training uses the factorised forward of transformer_fast,
the same function with far less arithmetic (tests/test_models.py holds them equal in float64).

Parameters, per run (d = d_model, h = n_heads, e = d / h, m = d_mlp, per layer l):
  W_E [d_vocab, d]  token embedding (absent, and a fixed buffer, when embed_init is onehot)
  W_pos [3, d]      learned positions (use_pos)
  l.W_Q, l.W_K, l.W_V [h, d, e], l.W_O [h, e, d]   attention
  l.W_in [d, m], l.b_in [m], l.W_out [m, d], l.b_out [d]   MLP
  W_U [d, p]        unembedding, read at '='
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from ..tasks import tokens
from .parts import FlatLayout, activation, embedding_init, onehot_embedding
from .transformer_fast import FactorisedForward


class Transformer:
    measures = ()          # measures only this model records (grok_core.measures.MEASURES)
    embeds = True                     # has a token embedding W_E (MED and the embedding measures read it)

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.layout = FlatLayout(self.shapes(cfg))
        self.act = activation(cfg.act)
        fast = FactorisedForward(cfg, self.act)
        self.trunk, self.head = fast.trunk, fast.head

    @staticmethod
    def shapes(cfg: RunConfig) -> dict[str, tuple[int, ...]]:
        D, H, M = cfg.d_model, cfg.n_heads, cfg.d_mlp
        e = D // H
        shapes = {} if cfg.embed_init == "onehot" else {"W_E": (cfg.d_vocab, D)}
        if cfg.use_pos:
            shapes["W_pos"] = (3, D)
        for l in range(cfg.n_layers):
            shapes |= {f"{l}.W_Q": (H, D, e), f"{l}.W_K": (H, D, e), f"{l}.W_V": (H, D, e),
                       f"{l}.W_O": (H, e, D), f"{l}.W_in": (D, M), f"{l}.b_in": (M,),
                       f"{l}.W_out": (M, D), f"{l}.b_out": (D,)}
        shapes["W_U"] = (D, cfg.p)
        return shapes

    @staticmethod
    def hidden_matrices(cfg: RunConfig) -> dict[str, tuple[tuple[int, ...], int]]:
        """The hidden weights (for Muon; embeddings and the read-out are not hidden) as the matrices they act as,
        input by output: name -> (the order of its axes, how many of them make the rows). W_Q, W_K, W_V [h, d, e]
        act as one d x (h e) map and W_O [h, e, d] as one (h e) x d map, as a Linear layer holds them."""
        out = {}
        for l in range(cfg.n_layers):
            out |= {f"{l}.W_Q": ((1, 0, 2), 1), f"{l}.W_K": ((1, 0, 2), 1), f"{l}.W_V": ((1, 0, 2), 1),
                    f"{l}.W_O": ((0, 1, 2), 2), f"{l}.W_in": ((0, 1), 1), f"{l}.W_out": ((0, 1), 1)}
        return out

    def init_params(self, cfg: RunConfig) -> torch.Tensor:
        """One run's flat parameters: every matrix N(0, 1)/sqrt(d_model), biases zero (spec 3.2)."""
        g = torch.Generator().manual_seed(cfg.init_seed)
        D = cfg.d_model
        out = {}
        for name, shape in self.layout.shapes.items():
            if name == "W_E":
                out[name] = embedding_init(cfg, g)
            elif ".b_" in name:
                out[name] = torch.zeros(shape)
            else:
                out[name] = torch.randn(shape, generator=g) / math.sqrt(D)
        return self.layout.pack(out)

    def buffers(self, R: int) -> dict[str, torch.Tensor]:
        if self.cfg.embed_init == "onehot":
            return {"W_E": onehot_embedding(self.cfg).expand(R, -1, -1)}
        return {}

    def reference_logits(self, w: dict, r: int = 0) -> torch.Tensor:
        """Run r's logits [p*p, p] on every pair (row i*p + j), the forward as the paper writes it."""
        cfg = self.cfg
        x = w["W_E"][r][tokens(cfg.p, cfg.operand_offset)]                 # [N, 3, d] token embeddings
        if cfg.use_pos:
            x = x + w["W_pos"][r]                                            # + position embeddings
        future = torch.triu(torch.ones(3, 3, dtype=torch.bool, device=x.device), 1)
        for l in range(cfg.n_layers):
            W = {name: w[f"{l}.{name}"][r] for name in ("W_Q", "W_K", "W_V", "W_O", "W_in", "b_in", "W_out", "b_out")}
            q = torch.einsum("npd,hde->nhpe", x, W["W_Q"])                   # [N, h, 3, e]
            k = torch.einsum("npd,hde->nhpe", x, W["W_K"])
            v = torch.einsum("npd,hde->nhpe", x, W["W_V"])
            scores = torch.einsum("nhqe,nhke->nhqk", q, k) / math.sqrt(q.shape[-1])   # [N, h, query, key]
            scores = scores.masked_fill(future, -math.inf)                   # causal: no key after the query
            z = torch.einsum("nhqk,nhke->nhqe", scores.softmax(-1), v)
            x = x + torch.einsum("nhqe,hed->nqd", z, W["W_O"])               # attention into the residual
            x = x + self.act(x @ W["W_in"] + W["b_in"]) @ W["W_out"] + W["b_out"]   # MLP into the residual
        return x[:, 2] @ w["W_U"][r]                                         # read out at '='

    @staticmethod
    def n_params(cfg: RunConfig) -> int:
        return sum(math.prod(s) for s in Transformer.shapes(cfg).values())

    @staticmethod
    def words_per_pair(cfg: RunConfig) -> int:
        """Training memory per pair of the p x p table, in float32 words (grok_core.budget): the trunk's grid
        tensors kept for backward (about 8 d_model, 24 more per extra layer), a RowIndex gradient's table,
        the hidden layer and two p-wide logit tensors."""
        D, M, p = cfg.d_model, cfg.d_mlp, cfg.p
        return D * (9 + 24 * (cfg.n_layers - 1)) + M + 2 * p

    @staticmethod
    def pair_flops(cfg: RunConfig) -> int:
        """Forward FLOPs per (i, j) pair: the '=' position, and position 1 below the last layer (work on
        one token only is shared and left out)."""
        D, M, H, p, L = cfg.d_model, cfg.d_mlp, cfg.n_heads, cfg.p, cfg.n_layers
        if L == 1:
            trunk = 6 * H * D + 4 * D * M
        else:
            first, middle, last = 10 * H * D + 8 * D * M, 16 * D * D + 20 * D + 8 * D * M, 12 * D * D + 12 * D + 4 * D * M
            trunk = first + (L - 2) * middle + last
        return trunk + 2 * D * p


MODEL = Transformer
