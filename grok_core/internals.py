"""The transformer's forward written out over a leading run axis, from the embedded inputs on: the measures that
look inside the model (key frequencies, local complexity in embedding space) read its MLP pre-activations at '='.

It is the plain 3-position forward of models/transformer.py (reference_logits) for all runs at once; the
tests hold its logits equal to the training forward's in float64.
"""
from __future__ import annotations

import math

import torch

from .tasks import tokens


def embedded(cfg, w: dict, rows: torch.Tensor | None = None) -> torch.Tensor:
    """[run, n, 3, d]: token plus position embeddings of the flat table rows (x * p + y), [n] shared by the runs or
    [run, n] each its own; all p² by default."""
    W_E = w["W_E"]
    toks = tokens(cfg.p, cfg.operand_offset).to(W_E.device)
    if rows is None or rows.dim() == 1:
        x = W_E[:, toks if rows is None else toks[rows]]               # [run, n, 3, d]
    else:
        x = W_E[torch.arange(W_E.shape[0], device=W_E.device)[:, None, None], toks[rows]]
    return x + w["W_pos"][:, None] if cfg.use_pos else x


def forward(cfg, act, w: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x [run, n, 3, d] embedded inputs -> (the last layer's MLP pre-activations at '=' [run, n, m], logits
    [run, n, p])."""
    future = torch.triu(torch.ones(3, 3, dtype=torch.bool, device=x.device), 1)
    pre = None
    for l in range(cfg.n_layers):
        W = {k: w[f"{l}.{k}"] for k in ("W_Q", "W_K", "W_V", "W_O", "W_in", "b_in", "W_out", "b_out")}
        q, k, v = (torch.einsum("rnpd,rhde->rnhpe", x, W[name]) for name in ("W_Q", "W_K", "W_V"))
        scores = torch.einsum("rnhqe,rnhke->rnhqk", q, k) / math.sqrt(q.shape[-1])
        z = torch.einsum("rnhqk,rnhke->rnhqe", scores.masked_fill(future, -math.inf).softmax(-1), v)
        x = x + torch.einsum("rnhqe,rhed->rnqd", z, W["W_O"])
        pre = torch.einsum("rnqd,rdm->rnqm", x, W["W_in"]) + W["b_in"][:, None, None]
        x = x + torch.einsum("rnqm,rmd->rnqd", act(pre), W["W_out"]) + W["b_out"][:, None, None]
    return pre[:, :, 2], torch.einsum("rnd,rdp->rnp", x[:, :, 2], w["W_U"])


def table(cfg, act, w: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(MLP post-activations [run, p, p, m], logits [run, p, p, p]) on the whole table."""
    pre, logits = forward(cfg, act, w, embedded(cfg, w))
    R, p = pre.shape[0], cfg.p
    return act(pre).reshape(R, p, p, -1), logits.reshape(R, p, p, -1)


def effective_rank(M: torch.Tensor) -> torch.Tensor:
    """[..., a, b] -> [...]: exp of the entropy of the normalised singular values (Roy and Vetterli): the number
    of equally strong directions, 1 for rank one. The SVD runs on the CPU: float64 SVDs of many small matrices
    took seconds per run's snapshots on an H200, a tenth of that on its host."""
    s = torch.linalg.svdvals(M.double().cpu()).to(M.device)
    q = s / s.sum(-1, keepdim=True)
    return torch.exp(-(q * torch.log(q.clamp_min(1e-300))).sum(-1))


def qk_effective_rank(w: dict, layer: int = 0) -> torch.Tensor:
    """[run]: the effective rank of each head's W_Q W_Kᵀ [d, d], averaged over heads. With W_Q = Q_q R_q and
    W_K = Q_k R_k (QR, d x e factors), W_Q W_Kᵀ has the singular values of the e x e R_q R_kᵀ (and d - e zeros,
    which add nothing to the entropy): the SVDs shrink from d x d to e x e."""
    q, k = (torch.linalg.qr(w[f"{layer}.{n}"].double().cpu())[1] for n in ("W_Q", "W_K"))
    return effective_rank(q @ k.transpose(-1, -2)).to(w[f"{layer}.W_Q"].device).mean(-1)
