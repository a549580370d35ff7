"""Batched full-batch GD of many polynomial-regression runs at once (a leading run axis), measured at log-spaced
steps, into their own run store; the lazy-limit reference lines are computed once per run, in float64.

A recorded step s measures the model after s updates (0: at initialisation; n_steps: the final one). A batch
trains in about a minute on one GPU, so it is not checkpointed: an interrupted batch starts again.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from ..devices import default_device, device_name
from ..store import Run, RunStore, code_commit
from . import measures
from .config import LAZY_RICH_SEMANTICS_VERSION, LazyRichConfig
from .data import make_data
from .model import init_weights, ntk, output_and_grad, raw_output

RECORDED = ("train_loss", "test_loss", "alignment", "kernel_move", "param_move", "weight_norm")


def recorded_steps(cfg: LazyRichConfig) -> np.ndarray:
    """Step 0 and up to n_records - 1 more, log-spaced from 1 to n_steps (rounded, duplicates dropped)."""
    logs = np.round(np.logspace(0, math.log10(cfg.n_steps), cfg.n_records - 1)).astype(np.int64)
    return np.unique(np.concatenate([[0], logs, [cfg.n_steps]]))


class LazyRichStore(RunStore):
    """The run store for LazyRichConfig entries, in <results root>/lazy-rich-runs (same layout as the others)."""

    def __init__(self, root=None):
        super().__init__(root, config_cls=LazyRichConfig, runs_subdir="lazy-rich-runs")


class LazyRichTrainer:
    """Trains runs that share D, P, N, the test size and the schedule; alpha, eps, lr and both seeds may differ."""

    def __init__(self, configs: list[LazyRichConfig], device=None, dtype: torch.dtype = torch.float32):
        """dtype: float64 trains the same runs in double precision (tests); the reference lines are float64 always."""
        LazyRichConfig.check_batchable(configs)
        self.configs = list(configs)
        self.cfg = cfg = configs[0]
        self.device = dev = torch.device(device) if device is not None else default_device()
        self.dtype = dtype
        data = [make_data(c) for c in configs]
        stack = lambda name: torch.stack([getattr(d, name) for d in data]).to(dev)   # noqa: E731  float64
        self.x64, self.y64 = stack("x_train"), stack("y_train")
        self.xt64, self.yt64 = stack("x_test"), stack("y_test")
        self.W0_64 = torch.stack([init_weights(c.seed, c.width, c.d) for c in configs]).to(dev)
        col = lambda name: torch.tensor([getattr(c, name) for c in configs], dtype=torch.float64, device=dev)  # noqa: E731
        self.alpha64, self.eps64, self.lr64 = col("alpha")[:, None], col("eps")[:, None, None], col("lr")[:, None, None]
        self.x, self.y, self.xt, self.yt = (t.to(dtype) for t in (self.x64, self.y64, self.xt64, self.yt64))
        self.alpha, self.eps, self.lr = (t.to(dtype) for t in (self.alpha64, self.eps64, self.lr64))
        self.W0 = self.W0_64.to(dtype)
        self.W = self.W0.clone()
        zero = lambda x: torch.zeros(x.shape[:2], dtype=dtype, device=dev)            # noqa: E731
        self.f0 = raw_output(self.W0, self.x, self.eps) if cfg.centre else zero(self.x)
        self.f0t = raw_output(self.W0, self.xt, self.eps) if cfg.centre else zero(self.xt)
        self.K0t = ntk(self.W0, self.xt, self.xt, self.alpha, self.eps)
        self.y2, self.y2t = (self.y * self.y).mean(-1), (self.yt * self.yt).mean(-1)
        self.steps = recorded_steps(cfg)
        self.step = 0
        self._rows: list[torch.Tensor] = []

    def _update(self):
        _, _, grad = output_and_grad(self.W, self.x, self.y, self.f0, self.alpha, self.eps)
        self.W -= self.lr * self.cfg.width * grad

    @torch.no_grad()
    def _record(self) -> torch.Tensor:
        """[R, len(RECORDED)] at the current weights; the losses are MSE over the split's mean square target."""
        W = self.W
        f, _, _ = output_and_grad(W, self.x, self.y, self.f0, self.alpha, self.eps)
        ft = self.alpha[:, 0:1] * (raw_output(W, self.xt, self.eps) - self.f0t)
        Kt = ntk(W, self.xt, self.xt, self.alpha, self.eps)
        return torch.stack([((f - self.y) ** 2).mean(-1) / self.y2, ((ft - self.yt) ** 2).mean(-1) / self.y2t,
                            measures.alignment(Kt, self.yt), measures.relative_change(Kt, self.K0t),
                            measures.relative_change(W, self.W0), measures.weight_norm(W)], -1)

    @torch.no_grad()
    def run(self):
        for s in self.steps:
            while self.step < s:
                self._update()
                self.step += 1
            self._rows.append(self._record())

    @torch.no_grad()
    def references(self) -> list[dict]:
        """Per run, in float64: the linearised model's normalised train and test losses at the recorded steps,
        and the test loss of kernel regression with K_0 (the lazy limit)."""
        out = []
        for r, c in enumerate(self.configs):
            sl = slice(r, r + 1)
            W0, a, e = self.W0_64[sl], self.alpha64[sl], self.eps64[sl]
            x, y, xt, yt = self.x64[sl], self.y64[sl], self.xt64[sl], self.yt64[sl]
            F0, F0t = ((1 - c.centre) * a * raw_output(W0, z, e) for z in (x, xt))   # the output at W_0
            K, Kxt = ntk(W0, x, x, a, e), ntk(W0, xt, x, a, e)
            rate = torch.tensor([2 * c.lr * c.width / (c.n_train * c.alpha ** 2)], dtype=torch.float64, device=x.device)
            train, test = measures.linearised_outputs(K, Kxt, y - F0, F0, F0t, rate, self.steps)
            k0 = measures.kernel_regression(K, Kxt, y - F0, F0t)
            y2, y2t = (y * y).mean(), (yt * yt).mean()
            out.append({"lin_train_loss": (((train - y[:, None]) ** 2).mean(-1) / y2)[0].cpu().numpy(),
                        "lin_test_loss": (((test - yt[:, None]) ** 2).mean(-1) / y2t)[0].cpu().numpy(),
                        "k0_test_loss": float(((k0 - yt) ** 2).mean() / y2t)})
        return out

    def histories(self) -> list[dict]:
        """Per run: {'step': int32, measure: float32 array} over the recorded steps done, plus the linearised
        model's losses; the kernel-regression level goes into the run's meta."""
        rows = torch.stack(self._rows, 1).float().cpu().numpy()                 # [R, T, n]
        refs = self.references()
        steps = self.steps[:rows.shape[1]].astype(np.int32)
        return [{"step": steps, **{m: rows[r, :, k] for k, m in enumerate(RECORDED)},
                 "lin_train_loss": refs[r]["lin_train_loss"].astype(np.float32),
                 "lin_test_loss": refs[r]["lin_test_loss"].astype(np.float32),
                 "k0_test_loss": np.float64(refs[r]["k0_test_loss"])} for r in range(len(self.configs))]


def plan(configs: list[LazyRichConfig], max_batch: int) -> list[list[LazyRichConfig]]:
    """Unique configs grouped by batch key, in order of first appearance, chunked to at most max_batch runs."""
    groups: dict[tuple, list[LazyRichConfig]] = {}
    for c in {c.key(): c for c in configs}.values():
        groups.setdefault(c.batch_key(), []).append(c)
    return [g[i:i + max_batch] for g in groups.values() for i in range(0, len(g), max_batch)]


def train_batch(configs: list[LazyRichConfig], store: LazyRichStore, device=None) -> list[Run]:
    """Train one batch and store each run (history, the K_0 level in meta, where and how long it trained)."""
    device = torch.device(device) if device is not None else default_device()
    t0 = time.time()
    trainer = LazyRichTrainer(configs, device)
    trainer.run()
    hists = trainer.histories()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall = time.time() - t0
    out = []
    for c, h in zip(configs, hists):
        k0 = float(h.pop("k0_test_loss"))
        meta = {"kind": "lazy_rich", "semantics": LAZY_RICH_SEMANTICS_VERSION, "code_commit": code_commit(),
                "device": device_name(device), "torch": torch.__version__, "wall_time_s": round(wall, 3),
                "batch_size": len(configs), "k0_test_loss": k0, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        out.append(store.put(c, h, meta))
    return out


def load_or_train(configs: list[LazyRichConfig], store: LazyRichStore | None = None, train: bool = True,
                  device=None, max_batch: int = 256) -> list[Run]:
    """Runs for configs in order: stored ones at once, missing ones trained in batches (train=False: LookupError
    naming how many are missing and the first)."""
    store = store or LazyRichStore()
    found = {c.key(): store.get(c) for c in configs}
    missing = [c for c in {c.key(): c for c in configs}.values() if found[c.key()] is None]
    if missing and not train:
        raise LookupError(f"{len(missing)} polynomial-regression run(s) are not in the store at {store.runs_dir}, "
                          f"e.g. {missing[0]}")
    if missing:
        store.check_writable()
    for batch in plan(missing, max_batch):
        for run in train_batch(batch, store, device):
            found[run.key] = run
    return [found[c.key()] for c in configs]
