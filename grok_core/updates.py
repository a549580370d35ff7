"""How a run's gradient becomes its update, by name in RunConfig: a gradient transform, a frozen
parameter mask and the optimiser. Each acts on [run, n_params] tensors and on each run alone.

A gradient transform is a function fn(grad, params, layout) (stateless), or a class with `state_names`
(tensors with a leading run axis that it keeps from step to step: checkpointed, and gathered when a batch
is compacted, like an optimiser's state) built as cls(configs, params, layout) and called as t(grad, params).
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


def per_run(configs, name: str, dtype, device) -> torch.Tensor:
    """A per-run config number as a [run, 1] column."""
    return torch.tensor([getattr(c, name) for c in configs], dtype=dtype, device=device)[:, None]


class Stateless:
    """A transform function as the trainer calls a transform: t(grad, params); it keeps nothing."""
    state_names = ()

    def __init__(self, fn, layout):
        self.fn, self.layout = fn, layout

    def __call__(self, grad, params):
        return self.fn(grad, params, self.layout)


class GrokfastEMA:
    """Grokfast's EMA filter (Lee et al. 2024): the gradient plus lambda times its exponential moving average,
    g + lambda * e with e <- alpha * e + (1 - alpha) * g, e starting at the first gradient (as the authors' code
    does), so the first step's gradient is (1 + lambda) g. alpha (grokfast_alpha) and lambda (grokfast_lamb) are
    each run's own."""
    state_names = ("gf_ema", "gf_seen")

    def __init__(self, configs, params: torch.Tensor, layout):
        self.alpha = per_run(configs, "grokfast_alpha", params.dtype, params.device)
        self.lamb = per_run(configs, "grokfast_lamb", params.dtype, params.device)
        self.gf_ema = torch.zeros_like(params)
        self.gf_seen = torch.zeros_like(self.alpha)               # gradients seen, per run

    @torch.no_grad()
    def __call__(self, grad: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        self.gf_ema.lerp_(grad, torch.where(self.gf_seen == 0, 1.0, 1 - self.alpha))
        self.gf_seen.add_(1)
        return grad + self.lamb * self.gf_ema

    @staticmethod
    def state_words(cfg, n_params: int) -> int:
        return n_params


class GrokfastMA:
    """Grokfast's moving-average filter: once the last w gradients are at hand (w = grokfast_window), the
    gradient plus lambda times their mean, the current one included; until then the gradient unchanged (the
    authors' warm-up). The window is a ring buffer; its sum is kept in float64, so that adding the newest
    gradient and taking off the oldest leave a rounding error far below float32's."""
    state_names = ("gf_window", "gf_sum", "gf_seen")

    def __init__(self, configs, params: torch.Tensor, layout):
        self.window = configs[0].grokfast_window
        self.lamb = per_run(configs, "grokfast_lamb", params.dtype, params.device)
        R, n = params.shape
        self.gf_window = torch.zeros(R, self.window, n, dtype=params.dtype, device=params.device)
        self.gf_sum = torch.zeros(R, n, dtype=torch.float64, device=params.device)
        self.gf_seen = torch.zeros(R, 1, dtype=torch.long, device=params.device)

    @torch.no_grad()
    def __call__(self, grad: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        slot = (self.gf_seen % self.window)[:, :, None].expand(-1, 1, grad.shape[1])      # [r, 1, n]
        self.gf_sum.sub_(torch.gather(self.gf_window, 1, slot)[:, 0].double()).add_(grad.double())
        self.gf_window.scatter_(1, slot, grad[:, None])
        self.gf_seen.add_(1)
        full = (self.gf_seen >= self.window).to(grad.dtype)
        return grad + (full * self.lamb) * (self.gf_sum / self.window).to(grad.dtype)

    @staticmethod
    def state_words(cfg, n_params: int) -> int:
        return (cfg.grokfast_window + 2) * n_params + 1


# Gradient transforms (RunConfig.grad_transform): name -> a function fn(grad, params, layout) -> grad, or a class
# (module docstring); applied before the update.
GRAD_TRANSFORMS = {"none": None, "orthogonal": orthogonal_grad, "grokfast_ema": GrokfastEMA,
                   "grokfast_ma": GrokfastMA}


def make_transform(configs, params: torch.Tensor, layout):
    """The batch's gradient transform as the trainer calls it (None for 'none')."""
    member = GRAD_TRANSFORMS[configs[0].grad_transform]
    if member is None:
        return None
    return member(configs, params, layout) if isinstance(member, type) else Stateless(member, layout)


def state_words(cfg, n_params: int) -> int:
    """Float32 words per run that cfg's gradient transform and optimiser keep beyond AdamW's (for budget)."""
    members = (GRAD_TRANSFORMS[cfg.grad_transform], OPTIMISERS[cfg.optimizer])
    return sum(m.state_words(cfg, n_params) for m in members if hasattr(m, "state_words"))


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


def adamw_step(p, g, m, v, lr, wd, row, beta1: float, beta2: float, eps: float):
    """One AdamW step in place on parameters p with gradient g and moments m, v (tensors or slices of them, [run, k]);
    lr, wd [run, 1]; row [1, 3] as in adamw_schedule."""
    p.mul_(1 - lr * wd)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = (v.sqrt() / row[:, 2:3]).add_(eps)
    p.sub_(lr / row[:, 1:2] * m / denom)


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
        adamw_step(params, grad, self.m, self.v, self.lr * row[:, 0:1], self.wd, row, self.beta1, self.beta2, self.eps)


NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)     # the quintic of Jordan et al.'s Muon
NS_STEPS = 5


def newton_schulz(G: torch.Tensor, steps: int = NS_STEPS) -> torch.Tensor:
    """[..., a, b] -> the same shape: Muon's approximate orthogonalisation of each matrix, G / (|G|_F + 1e-7)
    then `steps` times X <- aX + b (XX^T)X + c (XX^T)^2 X, on the wide side (transposed when a > b). Each
    matrix's singular values s go through s <- a s + b s^3 + c s^5 from s / |G|_F; the norm is each matrix's own,
    so the runs of a batch (a leading axis) never mix."""
    a, b, c = NS_COEFFICIENTS
    tall = G.shape[-2] > G.shape[-1]
    X = G.mT if tall else G
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return X.mT if tall else X


def _as_matrix(x: torch.Tensor, perm: tuple[int, ...], n_rows: int) -> torch.Tensor:
    """[run, *shape] -> [run, rows, cols]: the axes put in perm's order, the first n_rows of them the rows."""
    y = x.permute(0, *(p + 1 for p in perm))
    return y.reshape(y.shape[0], math.prod(y.shape[1:1 + n_rows]), -1)


def _from_matrix(m: torch.Tensor, shape: tuple[int, ...], perm: tuple[int, ...]) -> torch.Tensor:
    """The inverse of _as_matrix, flattened: [run, rows, cols] -> [run, prod(shape)] in the layout's order."""
    y = m.reshape(m.shape[0], *(shape[p] for p in perm))
    inverse = [perm.index(k) + 1 for k in range(len(perm))]
    return y.permute(0, *inverse).reshape(m.shape[0], -1)


class Muon(AdamW):
    """Muon (Jordan et al. 2024) on the hidden weight matrices and AdamW on every other parameter, as the reference
    implementation splits them: embeddings, the read-out and biases go to AdamW. The model names its hidden matrices
    and the matrix each acts as (its class's hidden_matrices). Per matrix and run: Nesterov momentum
    m <- beta m + (1 - beta) g, u = (1 - beta) g + beta m, the update newton_schulz(u) * sqrt(max(1, rows / cols)),
    then W <- W (1 - lr wd) - lr * update with lr = muon_lr times the warm-up multiplier. The rest is AdamW with the
    run's lr and wd (its moments span the whole vector; those of the matrices stay zero). Newton-Schulz runs in the
    training dtype (float32; the reference uses bfloat16)."""
    state_names = ("m", "v", "mom")

    def __init__(self, cfg, params: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor):
        from .models import model_class
        from .models.parts import FlatLayout
        super().__init__(cfg, params, lr, wd)
        model = model_class(cfg.model)
        self.shapes = FlatLayout(model.shapes(cfg)).shapes
        self.matrices = model.hidden_matrices(cfg)                      # name -> (axis order, row axes)
        self.mom = torch.zeros_like(params)
        self.muon_lr, self.beta = cfg.muon_lr, cfg.muon_momentum

    @torch.no_grad()
    def update(self, params: torch.Tensor, grad: torch.Tensor, row: torch.Tensor):
        """One step in place; row [1, 3] is AdamW's schedule row (its warm-up multiplier serves Muon too)."""
        lr_a, lr_m, o = self.lr * row[:, 0:1], self.muon_lr * row[:, 0:1], 0
        for name, shape in self.shapes.items():
            s = slice(o, o + math.prod(shape))
            o = s.stop
            p, g = params[:, s], grad[:, s]
            if name not in self.matrices:
                adamw_step(p, g, self.m[:, s], self.v[:, s], lr_a, self.wd, row, self.beta1, self.beta2, self.eps)
                continue
            perm, n_rows = self.matrices[name]
            mom = self.mom[:, s]
            mom.lerp_(g, 1 - self.beta)
            u = _as_matrix(g.lerp(mom, self.beta).view(-1, *shape), perm, n_rows)
            step = _from_matrix(newton_schulz(u) * math.sqrt(max(1.0, u.shape[-2] / u.shape[-1])), shape, perm)
            p.mul_(1 - lr_m * self.wd).sub_(lr_m * step)

    @staticmethod
    def state_words(cfg, n_params: int) -> int:
        return n_params


OPTIMISERS = {"adamw": AdamW, "muon": Muon}
