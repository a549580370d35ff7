"""Models with a leading run axis: R independent runs share one set of batched kernels.

All trainable parameters of all runs live in one [run, n_params] tensor; models read named
views of it. The optimiser then works on a handful of large elementwise kernels, and a
run's numbers never mix with another's: every matmul is batched over the run axis.
"""
from __future__ import annotations

import math

import torch

from ..config import RunConfig


class FlatLayout:
    """Names and shapes of parameters packed, in order, into one flat vector per run."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.shapes = dict(shapes)
        self.offsets, n = {}, 0
        for name, shape in self.shapes.items():
            self.offsets[name] = n
            n += math.prod(shape)
        self.size = n

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """[run, size] -> {name: [run, *shape]} views sharing flat's storage (and autograd graph)."""
        R = flat.shape[0]
        return {name: flat[:, o:o + math.prod(s)].view(R, *s)
                for (name, s), o in zip(self.shapes.items(), self.offsets.values())}

    def pack(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """{name: [*shape]} for one run -> [size]."""
        return torch.cat([tensors[name].reshape(-1) for name in self.shapes])


def embedding_init(cfg: RunConfig, g: torch.Generator) -> torch.Tensor:
    """W_E [d_vocab, d_model] for the trainable inits, scaled by 1/sqrt(d_model) like every matrix.

    toeplitz follows the released code (a symmetric Toeplitz matrix of one Uniform[0,1) vector,
    T[r, c] = v[|r - c|]); circulant is the paper's wording (row t is v rotated by t).
    """
    V, D = cfg.d_vocab, cfg.d_model
    if cfg.embed_init == "normal":
        return torch.randn(V, D, generator=g) / math.sqrt(D)
    v = torch.rand(D, generator=g)
    r = torch.arange(V)[:, None]
    c = torch.arange(D)[None, :]
    idx = (r - c).abs() if cfg.embed_init == "toeplitz" else (c - r) % D
    return v[idx] / math.sqrt(D)


def onehot_embedding(cfg: RunConfig) -> torch.Tensor:
    """The README's fixed embedding: identity in the top-left block, a buffer (not trained, not decayed)."""
    W = torch.zeros(cfg.d_vocab, cfg.d_model)
    n = min(cfg.d_vocab, cfg.d_model)
    W[torch.arange(n), torch.arange(n)] = 1.0
    return W


def activation(name: str):
    return torch.relu if name == "relu" else torch.nn.functional.gelu


MIN_CHUNK_ROWS = 256      # rows in one chunk of a chunked product (below this the products get too short)
ROW_ALIGN = 64            # the Trainer pads train rows to a multiple of this, so that chunking can apply


def row_chunks(R: int, n: int) -> int:
    """Into how many chunks `linear` cuts the n rows of each of R runs: 64 // R (1 above 16 runs),
    halved until the chunks divide n and hold at least MIN_CHUNK_ROWS rows."""
    S = 64 // R if R <= 16 else 1
    while S > 1 and (n % S or n // S < MIN_CHUNK_ROWS):
        S //= 2
    return S


# On CUDA and up to this p a RowIndex sums a gradient by a product with the rows' one-hot matrix; otherwise
# through the inverse table. The product's work grows with p and the table's does not: on an H100 the product
# was 1.14x faster on the programme's 128-run batch at p = 97 and 1.3x slower at p = 379 (a development run).
# On a CPU it gained nothing, and there the inverse table keeps a run's sums independent of its batch mates'
# padding: a run trained alone and in a batch agree to ~1e-7 over 100 steps instead of ~1e-5
# (bench/results/README.md).
ONEHOT_MAX_P = 128


def sums_by_onehot(idx: torch.Tensor, p: int) -> bool:
    """Whether a RowIndex over these rows sums its gradients by the one-hot product (else: the inverse table)."""
    return idx.is_cuda and p <= ONEHOT_MAX_P


class RowIndex:
    """One operand of each run's rows ([run, n] values < p) with what its gradient needs: `take` by a
    RowIndex is differentiable without atomic adds, so training on a GPU is deterministic and stays fast
    (torch's own deterministic scatter-add sorts on every step and tripled the step time on an H100).

    The gradient of the table is, for each value, the sum over the rows that hold it. On CUDA and for
    p <= ONEHOT_MAX_P it is one batched product with the one-hot matrix ([run, p, n], a 0/1 float, cut
    into row chunks like a weight gradient in `linear`); otherwise a gather through the inverse table (for
    each value, the rows that hold it: [run, p, most rows per value], padded with n) and a sum. Both add
    in a fixed order."""

    def __init__(self, idx: torch.Tensor, p: int, onehot: bool | None = None):
        R, n = idx.shape
        self.idx = idx
        self.onehot = self.inv = None
        if sums_by_onehot(idx, p) if onehot is None else onehot:
            # cut into row chunks as `linear` cuts a weight gradient's rows: [run * chunks, p, n / chunks]
            S = row_chunks(R, n)
            chunked = idx.view(R * S, 1, n // S)
            self.onehot = (chunked == torch.arange(p, device=idx.device)[None, :, None]).float()
            return
        order = torch.argsort(idx, dim=1, stable=True)                    # rows grouped by value
        value = torch.gather(idx, 1, order)
        counts = torch.zeros(R, p, dtype=torch.long, device=idx.device).scatter_add_(1, idx, torch.ones_like(idx))
        start = counts.cumsum(1) - counts
        rank = torch.arange(n, device=idx.device) - torch.gather(start, 1, value)
        self.inv = torch.full((R, p, int(counts.max())), n, dtype=torch.long, device=idx.device)
        self.inv[torch.arange(R, device=idx.device)[:, None], value, rank] = order


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [run, p, ...] at idx [run, n] -> [run, n, ...]."""
    return torch.gather(x, 1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


def _onehot_sum(onehot: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Per value, the sum of grad [run, n, ...] over its rows: onehot [run * chunks, p, n / chunks] @ grad."""
    RS, p, m = onehot.shape
    R = grad.shape[0]
    part = torch.bmm(onehot.to(grad.dtype), grad.reshape(RS, m, -1))                     # [run * chunks, p, rest]
    return part.view(R, RS // R, p, *grad.shape[2:]).sum(1)


def _inverse_sum(inv: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Per value, the sum of grad [run, n, ...] over its rows: a gather through the inverse table and a sum."""
    R, p, c = inv.shape
    rest, ones = grad.shape[2:], [1] * (grad.dim() - 2)
    n = grad.shape[1]
    real = (inv < n).view(R, p, c, *ones)                                   # n: the inverse table's filler
    flat = inv.clamp(max=n - 1).view(R, p * c, *ones).expand(-1, -1, *rest)
    rows = torch.gather(grad, 1, flat).view(R, p, c, *rest)
    return torch.where(real, rows, 0.0).sum(2)


class _Take(torch.autograd.Function):
    """x[r, idx[r, k]], with the gradient summed over each value's rows in a fixed order: by the one-hot
    product (`sums` a float one-hot matrix) or through the inverse table (`sums` an integer table)."""

    @staticmethod
    def forward(x, idx, sums):
        return _gather_rows(x, idx)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[2])

    @staticmethod
    def backward(ctx, grad):
        (sums,) = ctx.saved_tensors
        return (_onehot_sum if sums.is_floating_point() else _inverse_sum)(sums, grad), None, None


def take(x: torch.Tensor, idx) -> torch.Tensor:
    """Rows of the per-value table x [run, p, ...] for each run's rows: [run, n, ...].
    idx: a RowIndex (training rows: deterministic gradient) or a plain [run, n] tensor (no gradient needed)."""
    if isinstance(idx, RowIndex):
        return _Take.apply(x, idx.idx, idx.onehot if idx.onehot is not None else idx.inv)
    return _gather_rows(x, idx)


def take_all(tables: dict, idx, p: int) -> dict:
    """{name: take(table, idx)} for several per-value tables [run, p, ...] by the same rows.

    Where gradients are summed through the inverse table (on a CPU, or p > ONEHOT_MAX_P), the tables are
    concatenated and taken in one gather, so the backward walks the inverse table once, not once per
    table: a 4-wide table of scores costs a walk as a 128-wide one does. On an H100 the programme's p = 379
    batch ran 1.04x faster so. Summed by the one-hot product, separate takes were faster (1.03x in the
    128-run p = 97 batch, 1.02x at d_model 256), so there each table is taken alone."""
    onehot = idx.onehot is not None if isinstance(idx, RowIndex) else sums_by_onehot(idx, p)
    if onehot or len(tables) == 1:
        return {name: take(x, idx) for name, x in tables.items()}
    R = next(iter(tables.values())).shape[0]
    flat = [x.reshape(R, x.shape[1], -1) for x in tables.values()]
    taken = take(torch.cat(flat, -1), idx).split([f.shape[-1] for f in flat], -1)
    return {name: y.view(R, -1, *x.shape[2:]) for (name, x), y in zip(tables.items(), taken)}


def rows_or_all_pairs(i, j, p: int, R: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows (i, j) a trunk was asked for; None means all p*p pairs, row i*p + j, for every run."""
    if i is not None:
        return i, j
    grid = torch.arange(p * p, device=device).expand(R, -1)
    return grid // p, grid % p


def linear(x: torch.Tensor, W: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
    """x [r, *rows, d_in] @ W [r, d_in, d_out] (+ add: a bias [r, d_out] or a tensor like the output).

    One batched product over runs. With few runs, each run's rows are cut into chunks and every
    chunk is its own batch entry with a copy of its run's W; the weight gradient then comes out as
    many short products summed over chunks. For a handful of long products cuBLAS picks small-tile
    kernels that walk the whole row sum serially; chunked, forward and backward together run 1.1-1.9x
    faster at 8 runs on an H100 (`bench/speed.py --only chunking`). Cutting changes only the order of
    the gradient's sum.
    """
    R, *grid, d_in = x.shape
    d_out = W.shape[-1]
    n = math.prod(grid)
    S = row_chunks(R, n)
    xs = x.reshape(R * S, n // S, d_in)
    Ws = W if S == 1 else W[:, None].expand(R, S, d_in, d_out).reshape(R * S, d_in, d_out)
    if add is None:
        return torch.bmm(xs, Ws).view(R, *grid, d_out)
    if torch.compiler.is_compiling():
        # compiled, the addition comes after the product and fuses into the next elementwise kernel; baddbmm
        # would first copy its addend into the output (for a bias, into every row): a full extra pass
        return torch.bmm(xs, Ws).view(R, *grid, d_out) + (add.view(R, *([1] * len(grid)), d_out) if add.dim() == 2 else add)
    # eager, the product adds it (one kernel fewer: 8-15 % of a CPU step at p = 97)
    add = add[:, None].repeat_interleave(S, 0) if add.dim() == 2 else add.reshape(R * S, n // S, d_out)
    return torch.baddbmm(add, xs, Ws).view(R, *grid, d_out)


def build_model(cfg: RunConfig):
    from .mlp import EmbedMLP
    from .transformer import Transformer
    return Transformer(cfg) if cfg.model == "transformer" else EmbedMLP(cfg)
