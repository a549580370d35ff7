"""Progress measures, each batched over a leading run axis, and the registry the trainer records from.

A measure is one function of a MeasureContext (a batch's weights and its per-part losses and
accuracies at one step) returning one value per run; MEASURES maps its name to it. MED (Definition
4.2) is the mean Euclidean distance between the embeddings of consecutive operand tokens, cyclic
(p differences). The paper's figures plot the sum (no 1/p); the released code instead averages p-2
differences (tokens 0..p-2, no wrap-around), kept as `med_reference`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .losses import SOFTMAX_LOGITS, loss_dtype, loss_in_its_dtype

NORMALIZE = ("mean", "sum")


def _check_normalize(normalize):
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize={normalize!r} is not allowed; choose 'mean' or 'sum'")


def cyclic_med(vectors: torch.Tensor, normalize: str = "mean") -> torch.Tensor:
    """[run, p, d] points phi(0..p-1) -> [run]: (1/p) sum_i ||phi(i+1) - phi(i)||, phi(p) := phi(0)."""
    _check_normalize(normalize)
    dists = (torch.roll(vectors, -1, dims=-2) - vectors).norm(dim=-1)
    return dists.mean(-1) if normalize == "mean" else dists.sum(-1)


def med(W_E: torch.Tensor, p: int, start: int = 0, normalize: str = "mean") -> torch.Tensor:
    """Paper MED of the operand tokens start..start+p-1 of W_E [run, d_vocab, d_model] -> [run]."""
    return cyclic_med(W_E[:, start:start + p], normalize)


def _reference_mean(W_E, a, b):
    """The released code's m(a, b): mean of ||W[c+1] - W[c]|| over c = a..b-2."""
    cols = W_E[:, a:b]
    return (cols[:, 1:] - cols[:, :-1]).norm(dim=-1).mean(-1)


def med_reference(W_E: torch.Tensor, p: int, operand_offset: int = 0, normalize: str = "mean") -> torch.Tensor:
    """The released code's MED: p-2 differences per operand range, no wrap-around.

    mean: (m1 + m2) / 2, as in transformer/base.py and MLP/*.py;
    sum: (p - 1) (m1 + m2), the "un-averaged" value of transformer/rec.py.
    """
    _check_normalize(normalize)
    m1 = _reference_mean(W_E, 0, p - 1)
    m2 = _reference_mean(W_E, operand_offset, operand_offset + p - 1)
    return (m1 + m2) / 2 if normalize == "mean" else (p - 1) * (m1 + m2)


def weight_norm(flat_params: torch.Tensor) -> torch.Tensor:
    """L2 norm of all trainable parameters of each run, [run, n_params] -> [run]."""
    return flat_params.norm(dim=-1)


# -- the registry -------------------------------------------------------------------------------------------
PARTS = ("train", "test", "block", "leftover")      # the columns of MeasureContext.losses / .accuracies


@dataclass
class MeasureContext:
    """What a measure may read at a recorded step: the runs' configs' shared settings, the model, its weights
    (named views [run, ...], detached), the flat parameters [run, n_params], and per run the mean loss and
    accuracy over each of PARTS ([run, 4]; NaN for an empty part). The trainer also gives the train rows'
    logits [run, n, p] (in the training dtype, as the loss sees them), their labels [run, n] and a 0/1 [run, n]
    marking the real rows (the rest pad), and, only when a recorded measure asks (needs_grad), the gradient
    of each run's mean train loss [run, n_params] before any gradient transform or mask, and the runs'
    initial parameters [run, n_params] when a recorded measure asks (needs_init); the task's own labels of the
    train rows [run, n] (train_truth; they differ from train_labels where a label transform changed them);
    train_idx [run, n] names the train rows' places in the p x p table (x * p + y), and cache holds what
    several measures of one step share."""
    cfg: object
    model: object
    w: dict
    flat: torch.Tensor
    losses: torch.Tensor
    accuracies: torch.Tensor
    train_logits: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    train_real: torch.Tensor | None = None
    grad: torch.Tensor | None = None
    flat0: torch.Tensor | None = None
    train_truth: torch.Tensor | None = None
    train_idx: torch.Tensor | None = None
    cache: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Measure:
    """fn(ctx) -> [run]. default: recorded for every run; else only for runs whose config names it
    (RunConfig.measures). per_model: recorded only for models that list it in their `measures`.
    needs_grad: reads ctx.grad, which the trainer then computes on recorded steps (an extra backward pass
    there; the training step itself is unchanged). embedding: reads the token embedding W_E, so it applies
    only to models that have one (their `embeds`). needs_init: reads ctx.flat0, the initial parameters, which
    the trainer then keeps (a copy of the parameters)."""
    fn: Callable[[MeasureContext], torch.Tensor]
    default: bool = True
    per_model: bool = False
    needs_grad: bool = False
    embedding: bool = False
    needs_init: bool = False


MEASURES: dict[str, Measure] = {}


def register(name: str, default: bool = True, per_model: bool = False, needs_grad: bool = False,
             embedding: bool = False, needs_init: bool = False):
    """Decorator: add fn to MEASURES under name; the history records measures in registration order."""
    def add(fn):
        if name in MEASURES:
            raise ValueError(f"measure {name!r} is registered twice")
        MEASURES[name] = Measure(fn, default, per_model, needs_grad, embedding, needs_init)
        return fn
    return add


@register("train_loss")
def _train_loss(ctx):
    return ctx.losses[:, 0]


@register("test_loss")
def _test_loss(ctx):
    return ctx.losses[:, 1]


@register("train_acc")
def _train_acc(ctx):
    return ctx.accuracies[:, 0]


@register("test_acc")
def _test_acc(ctx):
    return ctx.accuracies[:, 1]


@register("block_acc")
def _block_acc(ctx):
    """Accuracy on the held-out block of a square or strip split (NaN for a random split)."""
    return ctx.accuracies[:, 2]


@register("leftover_acc")
def _leftover_acc(ctx):
    """Accuracy on the test pairs outside the block."""
    return ctx.accuracies[:, 3]


@register("med", embedding=True)
def _med(ctx):
    return med(ctx.w["W_E"], ctx.cfg.p)


@register("med_ref", embedding=True)
def _med_ref(ctx):
    return med_reference(ctx.w["W_E"], ctx.cfg.p, ctx.cfg.operand_offset)


@register("weight_norm")
def _weight_norm(ctx):
    return weight_norm(ctx.flat)


@register("med_hidden", per_model=True)
def _med_hidden(ctx):
    """Hidden-layer MED (the released README's variant for the MLP): cyclic MED of act(hidden1) on (i, i)."""
    W_E = ctx.w["W_E"]
    diag = torch.arange(ctx.cfg.p, device=W_E.device).expand(W_E.shape[0], -1)
    return cyclic_med(ctx.model.act(ctx.model.trunk(ctx.w, diag, diag)))


# -- embedding uniformity (the paper's first insight), recorded only for runs that ask for them ------------
def _operand_embeddings(ctx) -> torch.Tensor:
    """[run, p, d]: the embeddings of the operand tokens 0..p-1."""
    return ctx.w["W_E"][:, :ctx.cfg.p]


def spread(x: torch.Tensor) -> torch.Tensor:
    """Coefficient of variation over the last axis, std / mean (population std): 0 when all are equal."""
    return x.std(-1, correction=0) / x.mean(-1)


def effective_dimension(points: torch.Tensor) -> torch.Tensor:
    """[run, n, d] -> [run]: participation ratio (sum λ)^2 / sum λ^2 of the centred points' Gram spectrum,
    from traces (no eigendecomposition): 2 for points on a circle, d for an isotropic cloud."""
    c = points - points.mean(-2, keepdim=True)
    gram = c.transpose(-1, -2) @ c
    return (c * c).sum((-1, -2)) ** 2 / (gram * gram).sum((-1, -2))


def top_frequency_share(points: torch.Tensor) -> torch.Tensor:
    """[run, n, d] -> [run]: the share of the centred points' energy over the token axis that lies in its
    strongest Fourier frequency pair (k, n-k): 1 for points evenly spaced on one circle, i -> angle 2πki/n."""
    n = points.shape[-2]
    c = points - points.mean(-2, keepdim=True)
    k = torch.arange(1, n // 2 + 1, device=points.device, dtype=torch.float64)
    angle = (2 * torch.pi / n) * k[:, None] * torch.arange(n, device=points.device, dtype=torch.float64)
    energy = ((torch.cos(angle).to(c.dtype) @ c) ** 2 + (torch.sin(angle).to(c.dtype) @ c) ** 2).sum(-1)   # [run, K]
    pair = torch.where(2 * k == n, 1.0, 2.0).to(c.dtype)        # k and n-k carry the same energy (once if k = n/2)
    return (energy * pair).amax(-1) / (n * (c * c).sum((-1, -2)))


@register("embed_norm_cv", default=False, embedding=True)
def _embed_norm_cv(ctx):
    """Spread of the operand embeddings' norms (0: all on one sphere)."""
    return spread(_operand_embeddings(ctx).norm(dim=-1))


@register("embed_step_cv", default=False, embedding=True)
def _embed_step_cv(ctx):
    """Spread of the cyclic adjacent differences ||φ(i+1) - φ(i)|| (0: evenly spaced; MED is their mean)."""
    x = _operand_embeddings(ctx)
    return spread((torch.roll(x, -1, dims=-2) - x).norm(dim=-1))


@register("embed_eff_dim", default=False, embedding=True)
def _embed_eff_dim(ctx):
    return effective_dimension(_operand_embeddings(ctx))


@register("embed_top_freq", default=False, embedding=True)
def _embed_top_freq(ctx):
    return top_frequency_share(_operand_embeddings(ctx))


# -- numerical stability (Prieto et al. 2025), recorded only for runs that ask for them -------------------------
def train_share(ctx, hit: torch.Tensor) -> torch.Tensor:
    """[run, n] bool over the train rows -> [run]: the share of each run's real train rows where it holds."""
    real = ctx.train_real
    return (hit.to(real.dtype) * real).sum(-1) / real.sum(-1)


def collapsed(cfg, logits: torch.Tensor) -> torch.Tensor | None:
    """[run, n, p] logits in the training dtype -> [run, n] bool: Softmax Collapse of each sample, None for a
    loss without a softmax (mse). The log-softmax is the training loss's own (torch's kernel, on the same
    logits transform, in the loss's float type). Its top log-probability is -log of the kernel's sum of
    exp(x_j - max x), so it is exactly 0 when and only when that sum rounded to exactly 1: every other
    class's term was absorbed."""
    transform = SOFTMAX_LOGITS.get(cfg.loss)
    if transform is None:
        return None
    R, n, p = logits.shape
    z = transform(logits.to(loss_dtype(cfg, logits.dtype))).reshape(R * n, p)
    return (F.log_softmax(z, 1).amax(1) == 0).view(R, n)


@register("sc_fraction", default=False)
def _sc_fraction(ctx):
    """Share of train samples in Softmax Collapse (see `collapsed`); NaN for a loss without a softmax."""
    hit = collapsed(ctx.cfg, ctx.train_logits)
    if hit is None:
        return torch.full(ctx.train_real.shape[:1], torch.nan, dtype=ctx.train_real.dtype, device=ctx.train_real.device)
    return train_share(ctx, hit)


@register("zero_loss_fraction", default=False)
def _zero_loss_fraction(ctx):
    """Share of train samples whose loss is exactly 0 in the loss's float type (before any cast back): they
    give no gradient at all."""
    return train_share(ctx, loss_in_its_dtype(ctx.cfg, ctx.train_logits, ctx.train_labels) == 0)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[run, n] x [run, n] -> [run]: the cosine of the angle between each run's two vectors."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


@register("nlm_cosine", default=False, needs_grad=True)
def _nlm_cosine(ctx):
    """Alignment of the descent direction with the weights (Prieto et al.'s naive loss minimisation): the
    cosine between -grad L and theta over all trainable parameters of a run (1: the step only scales the
    weights up)."""
    return cosine(-ctx.grad, ctx.flat)


@register("nlm_cosine_tensors", default=False, needs_grad=True)
def _nlm_cosine_tensors(ctx):
    """The same cosine per parameter tensor, averaged over the model's tensors (Prieto et al. measure it per
    layer: a tensor can align while the global vector is dominated by another)."""
    grads, weights = ctx.model.layout.views(ctx.grad), ctx.model.layout.views(ctx.flat)
    return torch.stack([cosine(-grads[n].flatten(1), weights[n].flatten(1)) for n in grads]).mean(0)


@register("param_move", default=False, needs_init=True)
def _param_move(ctx):
    """How far the parameters have moved from initialisation, ||theta - theta_0|| / ||theta_0||: small in lazy
    training (Kumar et al.: O(1/alpha) for the output scale alpha), order one when the features are learned."""
    return (ctx.flat - ctx.flat0).norm(dim=-1) / ctx.flat0.norm(dim=-1)


# -- label corruption and periodic neurons (Doshi et al. 2024) ---------------------------------------------------
def spectrum_ipr(vectors: torch.Tensor) -> torch.Tensor:
    """[..., p] -> [...]: the inverse participation ratio (r = 2) sum_k F_k^4 of the magnitudes F of each vector's
    real DFT over its p entries (k = 0..floor(p/2), the constant included), normalised to unit l2 norm. 1 for a
    single frequency (a pure cosine), 1 / (floor(p/2) + 1) for a flat spectrum; NaN for a zero vector. The DFT is
    a product with cos/sin tables (the real FFT's numbers, on any device and inside a captured step)."""
    from .fourier import ipr
    p = vectors.shape[-1]
    k = torch.arange(p // 2 + 1, device=vectors.device, dtype=torch.float64)
    angle = (2 * torch.pi / p) * torch.arange(p, device=vectors.device, dtype=torch.float64)[:, None] * k
    power = (vectors @ torch.cos(angle).to(vectors.dtype)) ** 2 + (vectors @ torch.sin(angle).to(vectors.dtype)) ** 2
    return ipr(power)                                                                # F_k^2 = power / its sum


def neuron_ipr(model, w: dict) -> torch.Tensor:
    """[run, d_mlp]: each hidden neuron's IPR (r = 2), the mean of those of its input weights from the i block and
    from the j block and of its output weights, each over the residues (Doshi et al.; the model's neuron_weights).
    NaN for a dead neuron (one of its vectors exactly zero, e.g. decayed to underflow): it has no spectrum."""
    return torch.stack([spectrum_ipr(v) for v in model.neuron_weights(w)]).mean(0)


@register("mean_ipr", per_model=True)
def _mean_ipr(ctx):
    """The network's periodicity: the mean IPR over its live neurons (about 1 when each holds one frequency)."""
    return torch.nanmean(neuron_ipr(ctx.model, ctx.w), -1)


def _share_of(ctx, rows: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """[run]: the share of the real train rows among `rows` ([run, n] bool) where `hit` holds; NaN where none are."""
    rows = rows.to(ctx.train_real.dtype) * ctx.train_real
    return (hit.to(rows.dtype) * rows).sum(-1) / rows.sum(-1)


def _corrupted(ctx) -> torch.Tensor:
    """[run, n] bool: train rows whose label is not the task's (a drawn label can equal it: those count as clean)."""
    return ctx.train_labels != ctx.train_truth


@register("corrupted_acc", default=False)
def _corrupted_acc(ctx):
    """Accuracy on the corrupted train rows against their corrupted labels: 1 when they are memorised."""
    return _share_of(ctx, _corrupted(ctx), ctx.train_logits.argmax(-1) == ctx.train_labels)


@register("corrupted_rule_acc", default=False)
def _corrupted_rule_acc(ctx):
    """The share of corrupted train rows predicted by the rule (the task's label): 1 at full inversion."""
    return _share_of(ctx, _corrupted(ctx), ctx.train_logits.argmax(-1) == ctx.train_truth)


@register("clean_acc", default=False)
def _clean_acc(ctx):
    """Accuracy on the clean train rows (label equal to the task's)."""
    return _share_of(ctx, ~_corrupted(ctx), ctx.train_logits.argmax(-1) == ctx.train_labels)
# -- candidate progress measures (the progress_measures chapter), recorded only for runs that ask for them -------
# Each reads the weights of its own step and test *inputs* at most, never test labels: the losses below are on the
# train rows. The ones that look inside the model need the transformer (grok_core.internals).
BLOCKS = {"embed": ("W_E", "W_pos"), "attn": ("W_Q", "W_K", "W_V", "W_O"), "mlp": ("W_in", "b_in", "W_out", "b_out"),
          "unembed": ("W_U",)}


def block_norm(w: dict, block: str) -> torch.Tensor:
    """L2 norm of the named parameter tensors of one block (BLOCKS; layer prefixes ignored), [run]."""
    parts = [v.flatten(1) for k, v in w.items() if k.split(".")[-1] in BLOCKS[block]]
    return torch.cat(parts, 1).norm(dim=-1)


def _transformer(ctx):
    if ctx.cfg.model != "transformer":
        raise ValueError(f"model={ctx.cfg.model!r} is not allowed for this measure; it reads the transformer's "
                         "internals")
    return ctx.model


def _internal_table(ctx):
    """(MLP post-activations, logits) on the whole p x p table, computed once per step."""
    if "table" not in ctx.cache:
        from .internals import table
        ctx.cache["table"] = table(ctx.cfg, _transformer(ctx).act, ctx.w)
    return ctx.cache["table"]


def _nan(ctx) -> torch.Tensor:
    return torch.full(ctx.flat.shape[:1], torch.nan, dtype=ctx.flat.dtype, device=ctx.flat.device)


def circuit_losses(ctx, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(restricted, excluded) train loss [run] of the logits with only / without the circuit of the key frequencies
    keys [run, K]; NaN for a task without a Fourier circuit (fourier.CIRCUIT_SIGN)."""
    from .fourier import CIRCUIT_SIGN, circuit_parts, table_loss
    sign = CIRCUIT_SIGN.get(ctx.cfg.fn)
    if sign is None:
        return _nan(ctx), _nan(ctx)
    restricted, excluded = circuit_parts(_internal_table(ctx)[1], keys, sign)
    rows, labels, real = ctx.train_idx, ctx.train_labels, ctx.train_real.double()
    return table_loss(restricted, labels, rows, real), table_loss(excluded, labels, rows, real)


def online_keys(ctx) -> torch.Tensor:
    """[run, K] the key frequencies of this step's weights alone (fourier.key_frequencies)."""
    if "keys" not in ctx.cache:
        from .fourier import key_frequencies
        ctx.cache["keys"] = key_frequencies(_internal_table(ctx)[0])
    return ctx.cache["keys"]


@register("med_sum", default=False, embedding=True)
def _med_sum(ctx):
    """The figures' MED: the p distances summed, not averaged (a fixed multiple of MED at each p)."""
    return med(ctx.w["W_E"], ctx.cfg.p, normalize="sum")


for _block in BLOCKS:
    register(f"weight_norm_{_block}", default=False)(lambda ctx, b=_block: block_norm(ctx.w, b))


@register("fourier_gini", default=False, embedding=True)
def _fourier_gini(ctx):
    """Gini of W_E's per-frequency norms over the operand tokens: 0 when flat, near 1 when a few frequencies hold it."""
    from .fourier import embedding_gini
    return embedding_gini(_operand_embeddings(ctx)).to(ctx.flat.dtype)


@register("fourier_ipr", default=False, embedding=True)
def _fourier_ipr(ctx):
    """IPR over frequencies of each embedding direction, averaged: 1 when each is one pure frequency."""
    from .fourier import embedding_ipr
    return embedding_ipr(_operand_embeddings(ctx)).to(ctx.flat.dtype)


@register("circuit_share", default=False, embedding=True)
def _circuit_share(ctx):
    """Share of the logit table's energy on the task's circuit coefficients ((k, k) for x + y); NaN without one."""
    from .fourier import CIRCUIT_SIGN, circuit_share
    sign = CIRCUIT_SIGN.get(ctx.cfg.fn)
    return _nan(ctx) if sign is None else circuit_share(_internal_table(ctx)[1], sign).to(ctx.flat.dtype)


@register("key_frequencies", default=False, embedding=True)
def _key_frequencies(ctx):
    """How many key frequencies this step's MLP has."""
    return online_keys(ctx).sum(-1).to(ctx.flat.dtype)


@register("restricted_loss", default=False, embedding=True)
def _restricted_loss(ctx):
    """Train loss of the logits kept to the constant and the circuit of this step's own key frequencies."""
    return circuit_losses(ctx, online_keys(ctx))[0].to(ctx.flat.dtype)


@register("excluded_loss", default=False, embedding=True)
def _excluded_loss(ctx):
    """Train loss of the logits less the circuit of this step's own key frequencies."""
    return circuit_losses(ctx, online_keys(ctx))[1].to(ctx.flat.dtype)


@register("qk_eff_rank", default=False)
def _qk_eff_rank(ctx):
    """Effective rank of W_Q W_Kᵀ, averaged over heads (first layer)."""
    from .internals import qk_effective_rank
    _transformer(ctx)
    return qk_effective_rank(ctx.w).to(ctx.flat.dtype)


def _real_rows(ctx) -> list[torch.Tensor]:
    return [rows[real > 0] for rows, real in zip(ctx.train_idx, ctx.train_real)]


def local_complexity(ctx, part: str) -> torch.Tensor:
    """Mean count of MLP neurons (last layer, at '=') whose sign changes over the cross-polytope around each of up
    to N_POINTS train or held-out inputs (grok_core.local_complexity), [run]."""
    from . import local_complexity as lc
    from .internals import embedded, forward
    model, cfg = _transformer(ctx), ctx.cfg
    picked = [lc.point_rows(rows, cfg.p)[part == "test"] for rows in _real_rows(ctx)]

    def mean_count(w, rows):
        x = embedded(cfg, w, rows).flatten(2)                                          # [run, n, 3d]
        R, _, D = x.shape
        q = lc.frame(D, dtype=x.dtype, device=x.device)
        pre = lambda v: forward(cfg, model.act, w, v.reshape(R, -1, 3, D // 3))[0]
        return lc.sign_changes(pre, x, q, lc.RADIUS * x.norm(dim=-1).mean(-1)).to(ctx.flat.dtype).mean(-1)
    if len({len(r) for r in picked}) == 1:                  # one point count (a run's snapshots): all at once
        return mean_count(ctx.w, torch.stack(picked))
    return torch.cat([mean_count({k: v[i:i + 1] for k, v in ctx.w.items()}, r[None]) for i, r in enumerate(picked)])


register("local_complexity_train", default=False, embedding=True)(lambda ctx: local_complexity(ctx, "train"))
register("local_complexity_test", default=False, embedding=True)(lambda ctx: local_complexity(ctx, "test"))


@register("llc", default=False, embedding=True)
def _llc(ctx):
    """Local learning coefficient of the train loss at this step's weights, by SGLD (grok_core.llc)."""
    from .fourier import table_loss
    from .internals import embedded, forward
    from .llc import sgld_llc
    model, cfg = _transformer(ctx), ctx.cfg
    rows, labels, real = ctx.train_idx, ctx.train_labels, ctx.train_real

    def loss(flat):
        w = model.layout.views(flat)
        logits = forward(cfg, model.act, w, embedded(cfg, w, rows))[1]
        nll = -torch.log_softmax(logits, -1).gather(-1, labels[..., None]).squeeze(-1)
        return (nll * real).sum(-1) / real.sum(-1)
    return sgld_llc(loss, ctx.flat, real.sum(-1))
