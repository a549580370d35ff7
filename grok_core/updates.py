"""How a run's gradient becomes its update, by name in RunConfig: a gradient transform, a frozen
parameter mask and the optimiser. Each acts on [run, n_params] tensors and on each run alone.
"""
from __future__ import annotations

import math

import torch


def orthogonal_grad(grad: torch.Tensor, params: torch.Tensor, layout) -> torch.Tensor:
    """⊥Grad (Prieto et al. 2025): per run and per parameter tensor w (a slice of layout), the gradient g
    without its component along w, g - (<w, g> / (<w, w> + 1e-30)) w, rescaled to the norm of g. The step
    then cannot grow a tensor along itself (the "naive loss minimisation" direction). A tensor whose
    gradient is parallel to it gets a zero update; an all-zero tensor keeps its gradient."""
    out = []
    for name, o in layout.offsets.items():
        n = math.prod(layout.shapes[name])
        g, w = grad[:, o:o + n], params[:, o:o + n]
        perp = g - ((w * g).sum(-1, keepdim=True) / ((w * w).sum(-1, keepdim=True) + 1e-30)) * w
        g_norm, perp_norm = g.norm(dim=-1, keepdim=True), perp.norm(dim=-1, keepdim=True)
        out.append(torch.where(perp_norm > 0, perp * (g_norm / perp_norm), 0.0))
    return torch.cat(out, -1)


# Gradient transforms (RunConfig.grad_transform): name -> fn(grad, params, layout) -> grad, before the update.
GRAD_TRANSFORMS = {"none": None, "orthogonal": orthogonal_grad}

def _magnitude(cfg, model) -> torch.Tensor:
    from .tickets import ticket_mask        # (tickets reads the run store, which imports the config)
    return ticket_mask(cfg, model)


def _random(cfg, model) -> torch.Tensor:
    from .tickets import ticket_random_mask
    return ticket_random_mask(cfg, model)


# Parameter masks (RunConfig.param_mask): name -> fn(cfg, model) -> a 0/1 tensor [n_params] for one run;
# masked parameters start at zero and their gradients are zeroed before the update, so under AdamW they get no
# step, no weight decay (they are zero) and their moments stay zero. magnitude: a lottery ticket of a stored
# base run; random: the same count at random (grok_core.tickets).
PARAM_MASKS = {"none": None, "magnitude": _magnitude, "random": _random}


def adamw_schedule(cfg, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[n_steps, 3]: per step s, the warm-up multiplier min(s / warmup, 1) and Adam's bias corrections
    1 - beta1^(s+1) and sqrt(1 - beta2^(s+1)), computed in float64 like torch's AdamW, stored in dtype."""
    s = torch.arange(cfg.n_steps, dtype=torch.float64)
    mult = torch.clamp(s / cfg.warmup_steps, max=1.0) if cfg.warmup_steps else torch.ones_like(s)
    t = s + 1
    bc1 = 1 - cfg.beta1 ** t
    bc2 = torch.sqrt(1 - cfg.beta2 ** t)
    return torch.stack([mult, bc1, bc2], -1).to(dtype)


class AdamW:
    """torch's AdamW formula (decoupled weight decay on every parameter, eps RunConfig.adam_eps: 1e-8 unless set)
    with a warm-up multiplier on the learning rate, so that the first update has lr 0 while the moments take the
    first gradient (spec 5).
    Per-step numbers come from a table (`schedule`), so a step needs no host number that changes."""
    state_names = ("m", "v")

    def __init__(self, cfg, params: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor):
        """params [run, n]; lr, wd [run, 1]: each run's own."""
        self.beta1, self.beta2, self.eps = cfg.beta1, cfg.beta2, cfg.adam_eps
        self.lr, self.wd = lr, wd
        self.m = torch.zeros_like(params)
        self.v = torch.zeros_like(params)
        self.schedule = adamw_schedule(cfg, params.dtype).to(params.device)        # [n_steps, 3]

    @torch.no_grad()
    def update(self, params: torch.Tensor, grad: torch.Tensor, row: torch.Tensor):
        """One step in place; row [1, 3] = this step's schedule row (warm-up multiplier, 1 - b1^t, sqrt(1 - b2^t))."""
        lr = self.lr * row[:, 0:1]                                                      # [r, 1]
        params.mul_(1 - lr * self.wd)
        self.m.lerp_(grad, 1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        denom = (self.v.sqrt() / row[:, 2:3]).add_(self.eps)
        params.sub_(lr / row[:, 1:2] * self.m / denom)


OPTIMISERS = {"adamw": AdamW}
