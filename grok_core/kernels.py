"""Batched kernels the fast forwards are built from: products over the run axis, row lookups
whose gradients add in a fixed order (deterministic on a GPU without atomics).

Every kernel keeps runs apart: run r's numbers are computed from run r's tensors only.
"""
from __future__ import annotations

import math

import torch


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
# through the inverse table. The product's work grows with p and the table's does not, so it wins only at small
# p; on a CPU it gains nothing, and there the inverse table keeps a run's sums independent of its batch mates'
# padding. Measured: bench/results/README.md, "Where a step goes".
ONEHOT_MAX_P = 128


def sums_by_onehot(idx: torch.Tensor, p: int) -> bool:
    """Whether a RowIndex over these rows sums its gradients by the one-hot product (else: the inverse table)."""
    return idx.is_cuda and p <= ONEHOT_MAX_P


class RowIndex:
    """One operand of each run's rows ([run, n] values < p) with what its gradient needs: `take` by a
    RowIndex is differentiable without atomic adds, so training on a GPU is deterministic and stays fast
    (torch's own deterministic scatter-add sorts on every step: bench/results/README.md, "Where a step goes").

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


def _flat_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows idx [run, ...] (values < x.shape[1]) of x [run, m, ...], copied by one index_select over the runs' rows
    laid end to end: on a CPU far faster than a gather whose index is expanded over the trailing axes, same values."""
    R, m = x.shape[:2]
    flat = (idx + torch.arange(R, device=idx.device).view(R, *([1] * (idx.dim() - 1))) * m).reshape(-1)
    return x.reshape(R * m, *x.shape[2:]).index_select(0, flat).view(*idx.shape, *x.shape[2:])


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [run, p, ...] at idx [run, n] -> [run, n, ...]."""
    if not x.is_cuda:
        return _flat_rows(x, idx)
    return torch.gather(x, 1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))


def _onehot_sum(onehot: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Per value, the sum of grad [run, n, ...] over its rows: onehot [run * chunks, p, n / chunks] @ grad."""
    RS, p, m = onehot.shape
    R = grad.shape[0]
    part = torch.bmm(onehot.to(grad.dtype), grad.reshape(RS, m, -1))                     # [run * chunks, p, rest]
    return part.view(R, RS // R, p, *grad.shape[2:]).sum(1)


def _inverse_sum(inv: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Per value, the sum of grad [run, n, ...] over its rows: a gather through the inverse table and a sum.
    On a CPU the table's filler n picks an appended zero row (a row copy, no mask): the same terms, summed alike."""
    R, p, c = inv.shape
    rest, ones = grad.shape[2:], [1] * (grad.dim() - 2)
    n = grad.shape[1]
    if not grad.is_cuda:
        padded = torch.cat([grad, grad.new_zeros(R, 1, *rest)], 1)
        return _flat_rows(padded, inv).sum(2)
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
    table: a 4-wide table of scores costs a walk as a 128-wide one does. Summed by the one-hot product,
    separate takes measured faster, so there each table is taken alone (bench/results/README.md)."""
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
    kernels that walk the whole row sum serially; chunked, forward and backward together run faster
    (`bench/kernels.py --only chunking`). Cutting changes only the order of the gradient's sum.
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
    # eager, the product adds it (one kernel fewer)
    add = add[:, None].repeat_interleave(S, 0) if add.dim() == 2 else add.reshape(R * S, n // S, d_out)
    return torch.baddbmm(add, xs, Ws).view(R, *grid, d_out)
