"""The paper's transformer (Nanda et al.'s shape): no LayerNorm, causal attention, read-out at '='.

The forward pass works on the p x p grid instead of p^2 separate sequences. Position 0 only
ever depends on i and position 1 (in the first layer) only on j, so their states are kept as
[run, p, 1, d_model] and [run, 1, p, d_model] tables and broadcast; they become full
[run, p, p, d_model] grids only once attention mixes them. The last layer needs only the '='
query. This is the same function as the 3-position forward, with far less arithmetic.

Shapes: r run, i first operand, j second operand, h head, e d_head, d d_model, m d_mlp.
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from . import FlatLayout, activation, embedding_init, onehot_embedding


def _linear(x, W):
    """x [r, *grid, d_in] @ W [r, d_in, d_out] -> [r, *grid, d_out], one bmm over runs."""
    R, *grid, d_in = x.shape
    return torch.bmm(x.reshape(R, -1, d_in), W).view(R, *grid, W.shape[-1])


def _bias(b, x):
    return b.view(b.shape[0], *([1] * (x.dim() - 2)), b.shape[-1])


def _mix_heads(attn, vo):
    """sum_h attn[r, i, j, h] * vo[r, i|1, j|1, h, d] -> [r, i, j, d].

    On CUDA one einsum (batched matmuls with 4 = n_heads terms). On the CPU a plain loop over
    heads: the CPU's batched matmul is very slow on the strided operands this einsum and its
    backward produce (seconds instead of milliseconds at p=97).
    """
    if attn.device.type == "cuda":
        return torch.einsum("rijh,rijhd->rijd", attn, vo)
    out = attn[..., 0, None] * vo[..., 0, :]
    for h in range(1, attn.shape[-1]):
        out = out + attn[..., h, None] * vo[..., h, :]
    return out


class Transformer:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
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
        self.layout = FlatLayout(shapes)
        self.act = activation(cfg.act)
        self.feature_dim = D

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

    def _mlp(self, w, l, x):
        h = self.act(_linear(x, w[f"{l}.W_in"]) + _bias(w[f"{l}.b_in"], x))
        return _linear(h, w[f"{l}.W_out"]) + _bias(w[f"{l}.b_out"], x)

    def _attend(self, w, l, xs, queries):
        """Causal attention outputs for the query positions, each broadcastable to [r, i, j, d].

        A key position whose state is still a table (it depends on i alone, on j alone, or on
        neither) contributes attn * (v W_O), with the value-output product v W_O formed on the
        table (p rows per head) and mixed in by an einsum over heads that broadcasts the table.
        Only positions whose state is already a full grid take the z -> z W_O route.
        """
        WQ, WK, WV, WO = (w[f"{l}.{n}"] for n in ("W_Q", "W_K", "W_V", "W_O"))
        n_keys = max(queries) + 1
        keys = [torch.einsum("r...d,rhde->r...he", xs[s], WK) for s in range(n_keys)]
        vals = [torch.einsum("r...d,rhde->r...he", xs[s], WV) for s in range(n_keys)]
        # the v W_O tables pay off on CUDA; on the CPU the z -> z W_O route is faster (its batched
        # matmuls over heads are slow there), so the CPU takes it for every key
        table = [xs[s].device.type == "cuda" and (xs[s].shape[1] == 1 or xs[s].shape[2] == 1) for s in range(n_keys)]
        vo = [torch.einsum("r...he,rhed->r...hd", vals[s], WO) if table[s] else None for s in range(n_keys)]
        scale = math.sqrt(WQ.shape[-1])
        outs = {}
        for q in queries:
            query = torch.einsum("r...d,rhde->r...he", xs[q], WQ)
            # keys after q are masked out in the released code (-1e10 before softmax), i.e. weight 0
            scores = torch.broadcast_tensors(*[(query * keys[s]).sum(-1) / scale for s in range(q + 1)])
            attn = torch.softmax(torch.stack(scores, -1), dim=-1)            # [r, i, j, h, key]
            out, z = None, None
            for s in range(q + 1):
                if table[s]:
                    term = _mix_heads(attn[..., s], vo[s])
                    out = term if out is None else out + term
                else:
                    term = attn[..., s, None] * vals[s]                        # [r, i, j, h, e]
                    z = term if z is None else z + term
            if z is not None:
                term = torch.einsum("r...he,rhed->r...d", z, WO)
                out = term if out is None else out + term
            outs[q] = out
        return outs

    def trunk(self, w: dict) -> torch.Tensor:
        """Residual stream at '=' before the last MLP, for every pair: [run, p*p, d_model]."""
        cfg, p, d = self.cfg, self.cfg.p, self.cfg.operand_offset
        W_E = w["W_E"]
        R = W_E.shape[0]
        xs = [W_E[:, :p, None, :], W_E[:, None, d:d + p, :], W_E[:, None, None, -1, :]]
        if cfg.use_pos:
            xs = [x + w["W_pos"][:, s, None, None, :] for s, x in enumerate(xs)]
        for l in range(cfg.n_layers - 1):
            outs = self._attend(w, l, xs, queries=(0, 1, 2))
            xs = [xs[s] + outs[s] for s in range(3)]
            xs = [x + self._mlp(w, l, x) for x in xs]
        last = cfg.n_layers - 1
        resid = xs[2] + self._attend(w, last, xs, queries=(2,))[2]
        return resid.expand(R, p, p, -1).reshape(R, p * p, -1)

    def head(self, w: dict, feats: torch.Tensor) -> torch.Tensor:
        """Last MLP and unembedding on rows of trunk features: [run, n, d_model] -> logits [run, n, p]."""
        l = self.cfg.n_layers - 1
        h = self.act(torch.baddbmm(w[f"{l}.b_in"][:, None], feats, w[f"{l}.W_in"]))
        x = torch.baddbmm(feats + w[f"{l}.b_out"][:, None], h, w[f"{l}.W_out"])    # residual + MLP output
        return torch.bmm(x, w["W_U"])

    def extra_measures(self, w: dict, feats: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}
