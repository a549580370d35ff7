"""The transformer's fast forward: the same function as the plain 3-position forward
(transformer.reference_logits), with far less arithmetic.

It works on rows (i, j) of the p x p table, but never on more than it must: position 0 only ever
depends on i, and position 1 (in the first layer) only on j, so their states are kept as p-row
tables; a state becomes per-row only once attention mixes operands, and the last layer needs
only the '=' query. Training runs it on the train rows alone, and on the test rows (without grad)
only on recorded steps.

Shapes: r run, i first operand, j second operand, h head, e d_head, d d_model, m d_mlp.
"""
from __future__ import annotations

import math

import torch

from ..kernels import linear, rows_or_all_pairs, take, take_all


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
    return take(x, i if form == "i" else j)


def _grouped(fn, xs: list, group: list) -> list:
    """[fn(x, g) for x, g in zip(xs, group)], but tensors with the same group label g are stacked along
    the row axis and go through fn together: one product per group instead of one per tensor.
    fn must act on each row alone (a linear map, an MLP)."""
    out = [None] * len(xs)
    for g in dict.fromkeys(group):
        ks = [k for k in range(len(xs)) if group[k] == g]
        ys = fn(torch.cat([xs[k] for k in ks], 1) if len(ks) > 1 else xs[ks[0]], g)
        for k, y in zip(ks, ys.split([xs[k].shape[1] for k in ks], 1)):
            out[k] = y
    return out


class FactorisedForward:
    """trunk and head of the paper's transformer for one config; the parameters come in as named views."""

    def __init__(self, cfg, act):
        self.cfg = cfg
        self.act = act

    def _mlp(self, w, l, x):
        """x plus layer l's MLP output, row by row: [run, rows, d_model]."""
        h = self.act(linear(x, w[f"{l}.W_in"], w[f"{l}.b_in"]))
        return linear(h, w[f"{l}.W_out"], x + w[f"{l}.b_out"][:, None])

    def _mlp_block(self, w, l, xs: list) -> list:
        """Each state plus its MLP output; states of one form share the products."""
        forms = [f for f, _ in xs]
        return list(zip(forms, _grouped(lambda x, form: self._mlp(w, l, x), [x for _, x in xs], forms)))

    def _attend(self, w, l, xs, queries, i, j):
        """Each query position's residual stream after causal attention: {q: (form, x_q + W_O z_q)}.

        A state is a pair (form, tensor): "c" [r, 1, d] the same for every pair, "i" [r, p, d] a
        table over the first operand, "j" [r, p, d] over the second, "row" [r, n, d] one per row.
        Scores are formed in the smallest form their two sides allow. Whatever rows need from an operand's
        tables (queries, keys, values, table-form scores, the residual) is taken to rows once per layer, by
        `take_all` (one gather per operand where gradients are summed through the inverse table).
        """
        R, H, D, e = w[f"{l}.W_Q"].shape
        n_keys = max(queries) + 1
        # each position's projections in one product ([W_Q | W_K | W_V] as far as it needs them),
        # positions of one form and the same needs stacked: [r, n, heads, e] per projection
        needs = [("W_Q",) * (s in queries) + ("W_K", "W_V") * (s < n_keys) for s in range(n_keys)]
        def project(x, group):
            return linear(x, torch.cat([w[f"{l}.{n}"] for n in group[1]], 1).permute(0, 2, 1, 3).reshape(R, D, -1))
        ys = _grouped(project, [xs[s][1] for s in range(n_keys)], [(xs[s][0], needs[s]) for s in range(n_keys)])
        ys = [dict(zip(needs[s], y.view(R, -1, len(needs[s]), H, e).unbind(2))) for s, y in enumerate(ys)]
        forms = [f for f, _ in xs]
        scale = math.sqrt(e)
        out_form = {q: _join(forms[:q + 1]) for q in queries}
        score_form = {(q, s): _join([forms[q], forms[s]]) for q in queries for s in range(q + 1)}
        # scores whose query and key are both tables or constants, formed there: [r, 1|p, heads]
        table_scores = {qs: (ys[qs[0]]["W_Q"] * ys[qs[1]]["W_K"]).sum(-1) / scale
                        for qs, form in score_form.items() if form != "row"}
        wanted = {"i": {}, "j": {}}            # per operand: what rows need from its tables, by name

        def want(form, name, x):
            if form in wanted:
                wanted[form][name] = x

        for q in (q for q in queries if out_form[q] == "row"):
            want(forms[q], ("x", q), xs[q][1])
            for s in range(q + 1):
                want(forms[s], ("v", s), ys[s]["W_V"])
                if (q, s) in table_scores:
                    want(score_form[q, s], ("score", q, s), table_scores[q, s])
                else:
                    want(forms[q], ("q", q), ys[q]["W_Q"])
                    want(forms[s], ("k", s), ys[s]["W_K"])
        rows = {name: y for form, idx in (("i", i), ("j", j)) if wanted[form]
                for name, y in take_all(wanted[form], idx, self.cfg.p).items()}

        def state(name, x, form, target):
            """x (of the given form) in the target form: its taken rows if it is an operand table and the
            target is rows, else x itself (it broadcasts)."""
            return rows[name] if target == "row" and form in wanted else x

        zs = []
        for q in queries:
            scores = []
            for s in range(q + 1):
                if (q, s) in table_scores:
                    scores.append(state(("score", q, s), table_scores[q, s], score_form[q, s], out_form[q]))
                else:
                    qk = state(("q", q), ys[q]["W_Q"], forms[q], "row") * state(("k", s), ys[s]["W_K"], forms[s], "row")
                    scores.append(qk.sum(-1) / scale)
            attn = torch.softmax(torch.stack(torch.broadcast_tensors(*scores), -1), dim=-1)   # [r, n|p|1, h, key]
            z = sum(attn[..., s, None] * state(("v", s), ys[s]["W_V"], forms[s], out_form[q]) for s in range(q + 1))
            zs.append(z.reshape(R, -1, H * e))
        W_O = w[f"{l}.W_O"].reshape(R, H * e, D)
        outs = _grouped(lambda z, f: linear(z, W_O), zs, [out_form[q] for q in queries])
        return {q: (out_form[q], state(("x", q), xs[q][1], forms[q], out_form[q]) + o) for q, o in zip(queries, outs)}

    def trunk(self, w: dict, i: torch.Tensor | None = None, j: torch.Tensor | None = None) -> torch.Tensor:
        """Residual stream at '=' before the last MLP, for the rows (i, j): [run, n, d_model].

        i, j: [run, n] operand values of each run's rows (tensors, or RowIndex for a deterministic
        gradient); None means all p*p pairs, row i*p + j.
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
            xs = self._mlp_block(w, l, [outs[s] for s in range(3)])
        f, resid = self._attend(w, cfg.n_layers - 1, xs, (2,), i, j)[2]
        return _to_form(resid, f, "row", i, j)

    def head(self, w: dict, feats: torch.Tensor) -> torch.Tensor:
        """Last MLP and unembedding on rows of trunk features: [run, n, d_model] -> logits [run, n, p]."""
        return linear(self._mlp(w, self.cfg.n_layers - 1, feats), w["W_U"])
