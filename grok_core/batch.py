"""The data of a batch of runs as the trainer consumes it: each run's train and test rows of the p x p
table, their labels, the train rows' loss weights, and which part (train / test / block / leftover)
each row belongs to. Runs have their own splits, so every tensor has a leading run axis, padded.
"""
from __future__ import annotations

import math

import torch

from .config import RunConfig
from .kernels import ROW_ALIGN, RowIndex
from .splits import make_split
from .tasks import LABEL_TRANSFORMS
from .tasks import labels as task_labels


def _padded(n: int) -> int:
    """Train rows per run in a batch whose largest train set has n rows: n rounded up to ROW_ALIGN."""
    return -(-n // ROW_ALIGN) * ROW_ALIGN


class BatchData:
    """train_idx [run, n] rows (padding rows weigh 0 in train_w), train_labels (what the runs train on), train_truth
    (the task's labels of the same rows, before a label transform), train_ij (RowIndex pair);
    test_idx, test_labels, test_ij; row_parts [run, n + n_test, 4] 0/1 membership of the rows in their
    order, part_div [run, 4] the size of each part (NaN for an empty one); n_train, n_test each run's real rows."""

    def __init__(self, configs: list[RunConfig], device: torch.device, dtype: torch.dtype):
        cfg = configs[0]
        R, p = len(configs), cfg.p
        splits = [make_split(c) for c in configs]
        labels = torch.stack([task_labels(c.fn, c.p) for c in configs]).to(device)           # [r, N]
        self.p = p
        self.n_train = [len(s.train_idx) for s in splits]
        self.n_test = [len(s.test_idx) for s in splits]
        n_max = _padded(max(self.n_train))                           # padded rows weigh 0; see kernels.linear
        train_idx = torch.zeros(R, n_max, dtype=torch.long)
        self.train_w = torch.zeros(R, n_max, dtype=dtype)
        for r, s in enumerate(splits):
            n = len(s.train_idx)
            # padding rows (weight 0) spread over the table: (0, 0), (1, 1), ... so that no operand value
            # collects many rows (that would widen the RowIndex inverse tables)
            train_idx[r] = torch.cat([s.train_idx, torch.arange(n_max - n) * (p + 1) % p ** 2])
            self.train_w[r, :n] = 1.0 / n
        self.train_idx, self.train_w = train_idx.to(device), self.train_w.to(device)
        self.train_labels = torch.gather(labels, 1, self.train_idx)
        self.train_truth = self.train_labels.clone()                  # the task's labels, before any transform
        for r, (c, s) in enumerate(zip(configs, splits)):
            transform = LABEL_TRANSFORMS[c.label_transform]
            if transform is not None:
                n = len(s.train_idx)
                self.train_labels[r, :n] = transform(self.train_labels[r, :n], c).to(device)
        self.train_ij = (RowIndex(self.train_idx // p, p), RowIndex(self.train_idx % p, p))

        n_test_max = max(self.n_test)
        test_idx = torch.zeros(R, n_test_max, dtype=torch.long)
        test_real = torch.zeros(R, n_test_max)
        for r, s in enumerate(splits):
            test_idx[r, :len(s.test_idx)] = s.test_idx
            test_real[r, :len(s.test_idx)] = 1.0
        self.test_idx = test_idx.to(device)
        self.test_labels = torch.gather(labels, 1, self.test_idx)
        self.test_ij = (self.test_idx // p, self.test_idx % p)

        # [r, N, 4] 0/1 membership of train / test / block / leftover (sums of 0/1 are exact in float32);
        # an empty part (no block in a random split) averages to NaN
        parts = torch.stack([torch.stack([s.train_mask, s.test_mask, s.block_mask & s.test_mask, s.leftover_mask], -1)
                             for s in splits]).float()
        counts = parts.sum(1)                                                                 # [r, 4]
        # the same membership for the rows in the order the measures see them: train rows, then test rows
        rows = torch.cat([train_idx, test_idx], 1)
        real = torch.cat([(self.train_w > 0).float().cpu(), test_real], 1)
        self.row_parts = (torch.gather(parts, 1, rows[..., None].expand(-1, -1, 4)) * real[..., None]).to(device, dtype)
        self.part_div = torch.where(counts > 0, counts, math.nan).to(device, dtype)

    def select(self, rows: list[int]) -> "BatchData":
        """The data of the runs at these rows, as BatchData of their configs builds it, gathered on the device (for
        compacting a batch): every run's rows come first and its padding after, in an order that does not depend on
        the batch's largest set, so cutting the padding to the new largest set gives the same tensors."""
        out = BatchData.__new__(BatchData)
        idx = torch.tensor(rows, device=self.train_idx.device)
        out.p, p = self.p, self.p
        out.n_train, out.n_test = [self.n_train[r] for r in rows], [self.n_test[r] for r in rows]
        n, m, n_old = _padded(max(out.n_train)), max(out.n_test), self.train_idx.shape[1]
        out.train_idx, out.train_w, out.train_labels, out.train_truth = (
            t.index_select(0, idx)[:, :n].contiguous()
            for t in (self.train_idx, self.train_w, self.train_labels, self.train_truth))
        out.train_ij = (RowIndex(out.train_idx // p, p), RowIndex(out.train_idx % p, p))
        out.test_idx, out.test_labels = (t.index_select(0, idx)[:, :m].contiguous()
                                         for t in (self.test_idx, self.test_labels))
        out.test_ij = (out.test_idx // p, out.test_idx % p)
        parts = self.row_parts.index_select(0, idx)
        out.row_parts = torch.cat([parts[:, :n], parts[:, n_old:n_old + m]], 1)
        out.part_div = self.part_div.index_select(0, idx)
        return out
