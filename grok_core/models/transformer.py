"""The paper's transformer (Nanda et al.'s shape): no LayerNorm, causal attention, read-out at '='.

The forward pass works on rows (i, j) of the p x p table, but never on more than it must:
position 0 only ever depends on i, and position 1 (in the first layer) only on j, so their
states are kept as p-row tables; a state becomes per-row only once attention mixes operands,
and the last layer needs only the '=' query. Training steps run it on the train rows alone
(forward and backward), and the test rows are added, without grad, only on recorded steps.
This is the same function as the 3-position forward, with far less arithmetic.

Shapes: r run, i first operand, j second operand, h head, e d_head, d d_model, m d_mlp.
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig
from . import FlatLayout, activation, embedding_init, onehot_embedding, rows_or_all_pairs


def _linear(x, W):
    """x [r, *grid, d_in] @ W [r, d_in, d_out] -> [r, *grid, d_out], one bmm over runs."""
    R, *grid, d_in = x.shape
    return torch.bmm(x.reshape(R, -1, d_in), W).view(R, *grid, W.shape[-1])


def _bias(b, x):
    return b.view(b.shape[0], *([1] * (x.dim() - 2)), b.shape[-1])


def _join(forms: list[str]) -> str:
    """The form of a quantity that depends on states of these forms."""
    kinds = set(forms) - {"c"}
    if not kinds:
        return "c"
    return kinds.pop() if len(kinds) == 1 else "row"


def _to_form(x, form: str, target: str, i, j):
    """Bring x [r, 1|p|n, ...] from form to target ("row" or a form x broadcasts into)."""
    if form == target or form == "c" or target != "row":
        return x
    idx = i if form == "i" else j
    return torch.gather(x, 1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


def _add(a, b, i, j):
    """Sum of two states, in the form of the sum."""
    form = _join([a[0], b[0]])
    return form, _to_form(a[1], a[0], form, i, j) + _to_form(b[1], b[0], form, i, j)


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

    def _attend(self, w, l, xs, queries, i, j):
        """Causal attention output (after W_O) for each query position, in the form of its result.

        A state is a pair (form, tensor): "c" [r, 1, d] the same for every pair, "i" [r, p, d] a
        table over the first operand, "j" [r, p, d] over the second, "row" [r, n, d] one per row.
        Scores are formed in the smallest form their two sides allow and only then brought to rows.
        """
        WQ, WK, WV, WO = (w[f"{l}.{n}"] for n in ("W_Q", "W_K", "W_V", "W_O"))
        R, H, D, e = WQ.shape
        proj = lambda x, W: torch.einsum("rnd,rhde->rnhe", x, W)
        n_keys = max(queries) + 1
        keys = [proj(xs[s][1], WK) for s in range(n_keys)]
        vals = [proj(xs[s][1], WV) for s in range(n_keys)]
        scale = math.sqrt(e)
        outs = {}
        for q in queries:
            fq, xq = xs[q]
            query = proj(xq, WQ)
            form = _join([fq] + [xs[s][0] for s in range(q + 1)])
            scores = []
            for s in range(q + 1):
                fs = _join([fq, xs[s][0]])                  # e.g. const query x i-table key -> i-table
                qk = _to_form(query, fq, fs, i, j) * _to_form(keys[s], xs[s][0], fs, i, j)
                scores.append(_to_form(qk.sum(-1) / scale, fs, form, i, j))
            attn = torch.softmax(torch.stack(torch.broadcast_tensors(*scores), -1), dim=-1)   # [r, n|p|1, h, key]
            z = sum(attn[..., s, None] * _to_form(vals[s], xs[s][0], form, i, j) for s in range(q + 1))
            outs[q] = (form, torch.bmm(z.reshape(R, -1, H * e), WO.reshape(R, H * e, D)).view(R, -1, D))
        return outs

    def trunk(self, w: dict, i: torch.Tensor | None = None, j: torch.Tensor | None = None) -> torch.Tensor:
        """Residual stream at '=' before the last MLP, for the rows (i, j): [run, n, d_model].

        i, j: [run, n] operand values of each run's rows; None means all p*p pairs, row i*p + j.
        Position 0 depends on i alone through every layer and is kept as a p-row table; the
        other positions become per-row states once attention mixes operands.
        """
        cfg, p, d = self.cfg, self.cfg.p, self.cfg.operand_offset
        W_E = w["W_E"]
        R = W_E.shape[0]
        i, j = rows_or_all_pairs(i, j, p, R, W_E.device)
        xs = [("i", W_E[:, :p]), ("j", W_E[:, d:d + p]), ("c", W_E[:, -1:])]
        if cfg.use_pos:
            xs = [(f, x + w["W_pos"][:, s, None, :]) for s, (f, x) in enumerate(xs)]
        for l in range(cfg.n_layers - 1):
            outs = self._attend(w, l, xs, (0, 1, 2), i, j)
            xs = [_add(xs[s], outs[s], i, j) for s in range(3)]
            xs = [(f, x + self._mlp(w, l, x)) for f, x in xs]
        f, resid = _add(xs[2], self._attend(w, cfg.n_layers - 1, xs, (2,), i, j)[2], i, j)
        return _to_form(resid, f, "row", i, j)

    def head(self, w: dict, feats: torch.Tensor) -> torch.Tensor:
        """Last MLP and unembedding on rows of trunk features: [run, n, d_model] -> logits [run, n, p]."""
        l = self.cfg.n_layers - 1
        h = self.act(torch.baddbmm(w[f"{l}.b_in"][:, None], feats, w[f"{l}.W_in"]))
        x = torch.baddbmm(feats + w[f"{l}.b_out"][:, None], h, w[f"{l}.W_out"])    # residual + MLP output
        return torch.bmm(x, w["W_U"])

    def extra_measures(self, w: dict) -> dict[str, torch.Tensor]:
        return {}
