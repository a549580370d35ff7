"""Lottery tickets (Minegishi et al., "Grokking Tickets"): masks and inits derived from a stored dense base run.

A ticket run names its base by key (RunConfig.ticket_base) and a snapshot step of it (ticket_step); the mask is
recomputed from the weights the store keeps at that step, so the same config always trains against the same
base, and one whose base is not stored is refused before anything trains. The ticket starts from the base's
init: both are init_params of the same init seed and shapes (checked), so rewinding needs no stored init.

Prunable weights are the weight matrices (parameters named W_*); biases are never masked. Pruning is global over
them: the n_kept(N, keep_fraction) = round(keep_fraction * N) largest |w| are kept, ties going to the parameter that
comes first in the flat layout. A masked weight is zero from the start and its gradient is zeroed before AdamW,
so it gets no update, no weight decay (it is zero) and its Adam moments stay exactly zero.
"""
from __future__ import annotations

import hashlib
import math

import torch

from .config import RunConfig
from .store import RunStore

# the fields that fix a run's initial weights: a ticket's must equal its base's, so that its init is the base's
INIT_FIELDS = ("model", "p", "n_layers", "d_model", "n_heads", "d_mlp", "act", "use_pos", "embed_init",
               "operand_offset", "init_seed")


def prunable(layout) -> torch.Tensor:
    """[n_params] bool: the entries of the weight matrices (names whose last part starts with W_)."""
    out = torch.zeros(layout.size, dtype=torch.bool)
    for name, o in layout.offsets.items():
        if name.rsplit(".", 1)[-1].startswith("W_"):
            out[o:o + math.prod(layout.shapes[name])] = True
    return out


def n_kept(n: int, keep_fraction: float) -> int:
    """How many of n prunable weights a mask keeps: the nearest integer to keep_fraction * n, at least one."""
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction={keep_fraction!r} is not allowed; it must lie in (0, 1]")
    return max(1, round(keep_fraction * n))


def _mask_from_order(order: torch.Tensor, where: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """1 on the first n_kept prunable entries of `order` (indices into the prunable entries) and on every entry that
    is not prunable, 0 elsewhere; float32 [n_params]."""
    idx = torch.nonzero(where).flatten()
    mask = torch.ones(len(where))
    mask[idx] = 0.0
    mask[idx[order[:n_kept(len(idx), keep_fraction)]]] = 1.0
    return mask


def magnitude_mask(weights: torch.Tensor, layout, keep_fraction: float) -> torch.Tensor:
    """Global magnitude pruning of one run's flat weights [n_params]: keep the largest |w| among the prunable entries
    (ties: the earlier entry), and every entry that is not prunable."""
    where = prunable(layout)
    order = torch.argsort(weights[where].abs().double(), descending=True, stable=True)
    return _mask_from_order(order, where, keep_fraction)


def threshold_margin(weights: torch.Tensor, layout, keep_fraction: float, rel: float) -> tuple[int, int]:
    """(prunable entries whose |w| lies within a factor 1 ± rel of the magnitude mask's threshold, entries kept): with
    weights known to a relative precision rel / 2 (a float16 snapshot: rel = 2^-10), only the first can change sides."""
    a = weights[prunable(layout)].abs().double()
    keep = n_kept(len(a), keep_fraction)
    tau = torch.sort(a, descending=True).values[keep - 1]
    return int(((a >= tau * (1 - rel)) & (a <= tau * (1 + rel))).sum()), keep


def random_mask_seed(init_seed: int) -> int:
    """The random mask's own generator seed, drawn from the init seed by a hash (not the init's stream itself)."""
    return int.from_bytes(hashlib.sha256(f"random mask {init_seed}".encode()).digest()[:7], "big")


def random_mask(layout, keep_fraction: float, seed: int) -> torch.Tensor:
    """The same count of prunable entries as magnitude_mask keeps, chosen uniformly at random."""
    where = prunable(layout)
    order = torch.randperm(int(where.sum()), generator=torch.Generator().manual_seed(seed))
    return _mask_from_order(order, where, keep_fraction)


# -- the base run ------------------------------------------------------------------------------------------------
def base_config(cfg: RunConfig, store: RunStore | None = None) -> RunConfig:
    """The stored dense run cfg.ticket_base names, checked to be a base for cfg: dense, the same init, and keeping
    weights at cfg.ticket_step. ValueError in one line otherwise (not stored, not dense, other init, no such step)."""
    from .train import snapshot_steps
    store = store or RunStore()
    try:
        base = store.config_of(cfg.ticket_base)
    except LookupError:
        raise ValueError(f"ticket_base={cfg.ticket_base!r} is not in the run store at {store.root}; train the dense base "
                         "run first (a ticket is trained only against a stored base)") from None
    if base.param_mask != "none" or base.init_rescale != "none":
        raise ValueError(f"ticket_base={cfg.ticket_base!r} is not a dense run (its param_mask is {base.param_mask!r}, "
                         f"init_rescale {base.init_rescale!r})")
    differ = [f for f in INIT_FIELDS if getattr(base, f) != getattr(cfg, f)]
    if differ:
        raise ValueError(f"ticket_base={cfg.ticket_base!r} has another init than this ticket: {', '.join(differ)} differ "
                         "(a ticket is rewound to its base's init, so these must be equal)")
    steps = snapshot_steps(base).tolist()
    if cfg.ticket_step not in steps:
        raise ValueError(f"ticket_step={cfg.ticket_step!r} is not allowed; the base run {cfg.ticket_base} keeps weights "
                         f"at steps {steps}")
    return base


def base_weights(cfg: RunConfig, store: RunStore | None = None) -> torch.Tensor:
    """The base's stored flat weights at cfg.ticket_step, as float32 [n_params]."""
    store = store or RunStore()
    base = base_config(cfg, store)
    snaps = store.snapshots(base)
    if snaps is None:
        raise ValueError(f"ticket_base={cfg.ticket_base!r} is stored without its weight snapshots")
    k = snaps["step"].tolist().index(cfg.ticket_step)
    return snaps["weights"][k].float()


def check_bases(configs: list[RunConfig], store: RunStore | None = None):
    """Before anything trains: every ticket config's base is stored and fits it (ValueError at the first that is not)."""
    for c in configs:
        if c.ticket_base:
            base_config(c, store)


def ticket_mask(cfg: RunConfig, model) -> torch.Tensor:
    """param_mask 'magnitude': the mask of cfg's base weights at ticket_step keeping keep_fraction."""
    return magnitude_mask(base_weights(cfg), model.layout, cfg.keep_fraction)


def ticket_random_mask(cfg: RunConfig, model) -> torch.Tensor:
    """param_mask 'random': keep_fraction of the prunable weights at random (seeded from init_seed)."""
    return random_mask(model.layout, cfg.keep_fraction, random_mask_seed(cfg.init_seed))


def rescale_factor(init: torch.Tensor, mask: torch.Tensor, layout, norm: str) -> float:
    """c with ||c * w0||_q = ||mask * w0||_q over the prunable entries (q = 1 for 'l1', 2 for 'l2'), in float64."""
    where = prunable(layout)
    w0, m = init[where].double(), mask[where].double()
    q = {"l1": 1, "l2": 2}[norm]
    return float(torch.linalg.vector_norm(m * w0, q) / torch.linalg.vector_norm(w0, q))


def initial_params(model, cfg: RunConfig) -> torch.Tensor:
    """A run's initial flat parameters: init_params, with the prunable entries scaled by rescale_factor for the
    norm-matched dense control (init_rescale 'l1' or 'l2'); the mask, if any, is applied by the trainer."""
    init = model.init_params(cfg)
    if cfg.init_rescale == "none":
        return init
    c = rescale_factor(init, ticket_mask(cfg, model), model.layout, cfg.init_rescale)
    return torch.where(prunable(model.layout), init * c, init)
