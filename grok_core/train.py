"""Full-batch training of many runs at once, with every-step metrics and checkpoint/resume.

One step, for all runs together:
  1. the trunk (embeddings, attention, ...) is evaluated on the whole p x p grid, with grad;
  2. under no-grad the head runs on every pair: train/test loss and accuracy, block and leftover
     accuracy, MED and the weight norm are written into a device-side history buffer
     (entry s is the model *before* update s, as in the released code; no host sync);
  3. the head runs again on each run's train rows only, and the train loss is backpropagated;
  4. AdamW (decoupled, one parameter group: weight decay on everything) with the warm-up
     multiplier min(s / warmup, 1), so the first update has lr 0 while Adam's moments still
     take the first gradient (spec section 5).
Runs never mix: the loss is a sum of per-run losses and all kernels are batched over runs.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import RunConfig
from .measures import med, med_reference, weight_norm
from .models import build_model
from .splits import make_split
from .tasks import labels as task_labels

BASE_METRICS = ("train_loss", "test_loss", "train_acc", "test_acc", "block_acc", "leftover_acc",
                "med", "med_ref", "weight_norm")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_strict_fp32():
    """Grokking curves are sensitive to numerics: no TF32 unless asked for explicitly."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def metric_names(cfg: RunConfig) -> tuple[str, ...]:
    return BASE_METRICS + (("med_hidden",) if cfg.model == "mlp" else ())


def check_batchable(configs: list[RunConfig]):
    if not configs:
        raise ValueError("configs is empty; give at least one RunConfig")
    first = configs[0].batch_key()
    for c in configs[1:]:
        if c.batch_key() != first:
            diff = sorted({k for (k, v) in first} ^ {k for (k, v) in c.batch_key()} |
                          {k for (k, v), (k2, v2) in zip(first, c.batch_key()) if v != v2})
            raise ValueError(f"runs in one batch must share shapes and optimiser settings; these differ: {diff}")


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """[run, n, p] logits, [run, n] labels -> [run, n] loss per sample (float32)."""
    R, n, p = logits.shape
    flat, y = logits.reshape(R * n, p), labels.reshape(R * n)
    if kind == "ce":
        out = F.cross_entropy(flat, y, reduction="none")
    elif kind == "ce64":
        out = F.cross_entropy(flat.double(), y, reduction="none").float()
    else:  # mse against one-hot targets, averaged over the p outputs (the README variant)
        out = ((flat - F.one_hot(y, p).to(flat.dtype)) ** 2).mean(-1)
    return out.view(R, n)


class Trainer:
    """Trains a batch of runs that share p and model shape; any mix of seeds, splits, functions."""

    def __init__(self, configs: list[RunConfig], device: torch.device | str | None = None):
        check_batchable(configs)
        self.configs = list(configs)
        self.device = torch.device(device) if device is not None else default_device()
        cfg = self.cfg = configs[0]
        R, N = len(configs), cfg.p ** 2
        self.model = build_model(cfg)
        self.metrics = metric_names(cfg)
        dev = self.device

        splits = [make_split(c) for c in configs]
        self.labels = torch.stack([task_labels(c.fn, c.p) for c in configs]).to(dev)          # [r, N]
        n_train = torch.tensor([len(s.train_idx) for s in splits])
        n_max = int(n_train.max())
        self.train_idx = torch.zeros(R, n_max, dtype=torch.long)
        self.train_w = torch.zeros(R, n_max)
        for r, s in enumerate(splits):
            self.train_idx[r, :len(s.train_idx)] = s.train_idx
            self.train_w[r, :len(s.train_idx)] = 1.0 / len(s.train_idx)
        self.train_idx, self.train_w = self.train_idx.to(dev), self.train_w.to(dev)
        self.train_labels = torch.gather(self.labels, 1, self.train_idx)
        # [r, N, 4] 0/1 membership of train / test / block / leftover (sums of 0/1 are exact in float32);
        # an empty part (no block in a random split) averages to NaN
        parts = torch.stack([torch.stack([s.train_mask, s.test_mask, s.block_mask & s.test_mask, s.leftover_mask], -1)
                             for s in splits]).float()
        counts = parts.sum(1)                                                                 # [r, 4]
        self.parts = parts.to(dev)
        self.part_div = torch.where(counts > 0, counts, math.nan).to(dev)
        self.splits = splits

        self.flat = torch.stack([self.model.init_params(c) for c in configs]).to(dev).requires_grad_()
        self.buffers = {k: v.to(dev) for k, v in self.model.buffers(R).items()}
        self.m = torch.zeros_like(self.flat)
        self.v = torch.zeros_like(self.flat)
        col = lambda name: torch.tensor([getattr(c, name) for c in configs], dtype=torch.float32, device=dev)[:, None]
        self.lr, self.wd = col("lr"), col("wd")
        self.step = 0
        self.history = torch.full((R, cfg.n_steps, len(self.metrics)), math.nan, device=dev)

    # -- one step -------------------------------------------------------------------------------------
    def _weights(self) -> dict[str, torch.Tensor]:
        return self.model.layout.views(self.flat) | self.buffers

    @torch.no_grad()
    def _record(self, w, feats, s: int):
        cfg = self.cfg
        logits = self.model.head(w, feats)
        loss = per_sample_loss(logits, self.labels, cfg.loss)
        correct = (logits.argmax(-1) == self.labels).float()
        L = torch.bmm(loss[:, None], self.parts)[:, 0] / self.part_div                        # [r, 4]
        A = torch.bmm(correct[:, None], self.parts)[:, 0] / self.part_div
        W_E = w["W_E"]
        row = [L[:, 0], L[:, 1], A[:, 0], A[:, 1], A[:, 2], A[:, 3],
               med(W_E, cfg.p), med_reference(W_E, cfg.p, cfg.operand_offset), weight_norm(self.flat)]
        row += list(self.model.extra_measures(w, feats).values())
        self.history[:, s] = torch.stack(row, -1)

    def _adamw(self, grad: torch.Tensor):
        cfg, s = self.cfg, self.step
        mult = min(s / cfg.warmup_steps, 1.0) if cfg.warmup_steps else 1.0
        lr = self.lr * mult                                                                   # [r, 1]
        t = s + 1
        with torch.no_grad():
            self.flat.mul_(1 - lr * self.wd)
            self.m.lerp_(grad, 1 - cfg.beta1)
            self.v.mul_(cfg.beta2).addcmul_(grad, grad, value=1 - cfg.beta2)
            denom = (self.v.sqrt() / math.sqrt(1 - cfg.beta2 ** t)).add_(1e-8)
            self.flat.sub_(lr / (1 - cfg.beta1 ** t) * self.m / denom)

    def train_step(self):
        w = self._weights()
        feats = self.model.trunk(w)
        self._record(w, feats.detach(), self.step)
        F_dim = feats.shape[-1]
        rows = torch.gather(feats, 1, self.train_idx[..., None].expand(-1, -1, F_dim))
        logits = self.model.head(w, rows)
        loss = (per_sample_loss(logits, self.train_labels, self.cfg.loss) * self.train_w).sum()
        (grad,) = torch.autograd.grad(loss, self.flat)
        self._adamw(grad)
        self.step += 1

    # -- loop, checkpoints ----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.step >= self.cfg.n_steps

    def run(self, ckpt_path: str | Path | None = None, ckpt_every: int = 1000, stop_at: int | None = None,
            deadline: float | None = None, progress: bool | None = None) -> bool:
        """Train until n_steps (or stop_at, or time.time() >= deadline); True when all steps are done.

        With ckpt_path, a checkpoint is written every ckpt_every steps and when stopping early.
        """
        end = self.cfg.n_steps if stop_at is None else min(stop_at, self.cfg.n_steps)
        show = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.cfg.n_steps, initial=self.step, desc=f"{len(self.configs)} run(s) p={self.cfg.p}",
                       unit="step", mininterval=1.0)
        while self.step < end:
            self.train_step()
            if bar is not None and self.step % 50 == 0:
                bar.n = self.step
                bar.refresh()
            if ckpt_path and self.step % ckpt_every == 0 and self.step < self.cfg.n_steps:
                self.save_checkpoint(ckpt_path)
            if deadline is not None and time.time() >= deadline:
                break
        if bar is not None:
            bar.n = self.step
            bar.close()
        if ckpt_path and not self.done:
            self.save_checkpoint(ckpt_path)
        return self.done

    def state_dict(self) -> dict:
        return {"keys": [c.key() for c in self.configs], "step": self.step, "flat": self.flat.detach().cpu(),
                "m": self.m.cpu(), "v": self.v.cpu(), "history": self.history[:, :self.step].cpu()}

    def load_state_dict(self, state: dict):
        if state["keys"] != [c.key() for c in self.configs]:
            raise ValueError("checkpoint belongs to a different set of runs (config keys differ)")
        with torch.no_grad():
            self.flat.copy_(state["flat"])
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])
        self.step = int(state["step"])
        self.history[:, :self.step] = state["history"].to(self.device)

    def save_checkpoint(self, path: str | Path):
        """Atomic: written to a temporary file, then renamed over the old checkpoint."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def resume(self, path: str | Path) -> bool:
        """Load a checkpoint if one exists and is readable; a damaged one is ignored (training restarts)."""
        path = Path(path)
        if not path.exists():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.load_state_dict(state)
        except Exception as err:  # a damaged checkpoint must never be used
            import warnings
            warnings.warn(f"ignoring unreadable checkpoint {path}: {err}")
            return False
        return True

    def histories(self) -> list[dict]:
        """Per run: {metric: float32 array [steps done]} plus 'step'."""
        import numpy as np
        h = self.history[:, :self.step].cpu().numpy()
        steps = np.arange(self.step, dtype=np.int32)
        return [{"step": steps, **{m: h[r, :, k] for k, m in enumerate(self.metrics)}} for r in range(len(self.configs))]
