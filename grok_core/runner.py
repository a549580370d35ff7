"""load_or_train: stored runs come back at once; missing ones are trained in batches and stored.

Misses are grouped by batch key (same p and shapes), trained together on the best device,
checkpointed as they go, and resumed from the checkpoint if an earlier attempt was interrupted.
"""
from __future__ import annotations

import platform
import time

import torch

from .config import RunConfig
from .splits import make_split
from .store import Run, RunStore, code_commit
from .train import Trainer, default_device, set_strict_fp32


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def train_batch(configs: list[RunConfig], store: RunStore, device=None, ckpt_every: int = 1000,
                deadline: float | None = None, progress: bool | None = None, save_weights: bool = False) -> list[Run] | None:
    """Train one batch of compatible runs (resuming a checkpoint) and store them; None if stopped early."""
    set_strict_fp32()
    trainer = Trainer(configs, device)
    ckpt = store.checkpoint_path(configs)
    trainer.resume(ckpt)
    t0 = time.time()
    finished = trainer.run(ckpt_path=ckpt, ckpt_every=ckpt_every, deadline=deadline, progress=progress)
    if not finished:
        return None
    wall = time.time() - t0
    meta = {"code_commit": code_commit(), "device": device_name(trainer.device), "torch": torch.__version__,
            "wall_time_s": round(wall, 3), "batch_size": len(configs), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    runs = [store.put(c, h, meta, trainer.flat[r].detach() if save_weights else None)
            for r, (c, h) in enumerate(zip(configs, trainer.histories()))]
    ckpt.unlink(missing_ok=True)
    return runs


def load_or_train(configs: list[RunConfig], store: RunStore | None = None, device=None, max_batch: int = 64,
                  ckpt_every: int = 1000, progress: bool | None = None, train: bool = True) -> list[Run]:
    """Runs for configs in order: from the store when present, else trained (train=False raises instead)."""
    store = store or RunStore()
    configs = list(configs)
    for c in configs:          # bad splits fail here, before anything trains
        make_split(c)
    found = {c.key(): store.get(c) for c in configs}
    missing = list({c.key(): c for c in configs if found[c.key()] is None}.values())
    if missing and not train:
        raise LookupError(f"{len(missing)} run(s) are not in the store at {store.root}, e.g. {missing[0]}")
    groups: dict[tuple, list[RunConfig]] = {}
    for c in missing:
        groups.setdefault(c.batch_key(), []).append(c)
    device = torch.device(device) if device is not None else default_device()
    for group in groups.values():
        for i in range(0, len(group), max_batch):
            for run in train_batch(group[i:i + max_batch], store, device, ckpt_every, progress=progress):
                found[run.key] = run
    return [found[c.key()] for c in configs]
