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
from .train import Trainer, default_device, estimate_bytes_per_run, set_strict_fp32


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def train_batch(configs: list[RunConfig], store: RunStore, device=None, ckpt_every: int = 1000,
                deadline: float | None = None, progress: bool | None = None, save_weights: bool = False,
                compile: bool = False) -> list[Run] | None:
    """Train one batch of compatible runs (resuming a checkpoint) and store them; None if stopped early.

    compile=True runs the step through torch.compile (faster on CUDA at large batches; the same
    float32 arithmetic up to rounding order); it is recorded in the run's metadata.
    """
    set_strict_fp32()
    trainer = Trainer(configs, device, compile=compile)
    ckpt = store.checkpoint_path(configs)
    trainer.resume(ckpt)
    t0 = time.time()
    finished = trainer.run(ckpt_path=ckpt, ckpt_every=ckpt_every, deadline=deadline, progress=progress)
    if not finished:
        return None
    wall = time.time() - t0
    meta = {"code_commit": code_commit(), "device": device_name(trainer.device), "torch": torch.__version__,
            "precision": trainer.precision, "cuda_graph": trainer.use_graph, "compiled": trainer.compiled,
            "wall_time_s": round(wall, 3), "batch_size": len(configs), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    runs = [store.put(c, h, meta, trainer.flat[r].detach() if save_weights else None)
            for r, (c, h) in enumerate(zip(configs, trainer.histories()))]
    ckpt.unlink(missing_ok=True)
    return runs


def runs_that_fit(cfg: RunConfig, device, share: float = 0.85) -> int | None:
    """How many runs of cfg's shape fit in the free memory of a CUDA device (None off CUDA)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)   # cached by torch, reusable
    return max(1, int(free * share // estimate_bytes_per_run(cfg)))


def chunks(group: list[RunConfig], max_batch: int, fit: int | None) -> list[list[RunConfig]]:
    """Split a group of compatible runs into near-equal batches of at most min(max_batch, fit) runs."""
    size = max(1, min(max_batch, fit or max_batch))
    n = -(-len(group) // size)
    per = -(-len(group) // n)
    return [group[i:i + per] for i in range(0, len(group), per)]


def cost(cfg: RunConfig) -> float:
    """Rough relative cost of one run (for ordering batches and balancing shards; never reported)."""
    return cfg.n_steps * cfg.p ** 2 * cfg.d_model * cfg.d_mlp * (1 + 2.5 * (cfg.n_layers - 1)) * 1e-12


def plan(configs: list[RunConfig], max_batch: int, device) -> list[list[RunConfig]]:
    """Batches of compatible runs: one batch key each, at most max_batch runs and no more than fit
    in the device's free memory (so 64 runs of p=379 train as a few batches), most expensive first."""
    groups: dict[tuple, list[RunConfig]] = {}
    for c in {c.key(): c for c in configs}.values():
        groups.setdefault(c.batch_key(), []).append(c)
    batches = []
    for group in groups.values():
        batches += chunks(group, max_batch, runs_that_fit(max(group, key=lambda c: c.frac_train), device))
    return sorted(batches, key=lambda b: -sum(map(cost, b)))


def load_or_train(configs: list[RunConfig], store: RunStore | None = None, device=None, max_batch: int = 64,
                  ckpt_every: int = 1000, progress: bool | None = None, train: bool = True,
                  compile: bool = False, save_weights: bool = False) -> list[Run]:
    """Runs for configs in order: from the store when present, else trained (train=False raises instead).

    save_weights also stores each newly trained run's final flat parameters (weights.pt)."""
    store = store or RunStore()
    configs = list(configs)
    for c in configs:          # bad splits fail here, before anything trains
        make_split(c)
    found = {c.key(): store.get(c) for c in configs}
    missing = list({c.key(): c for c in configs if found[c.key()] is None}.values())
    if missing and not train:
        raise LookupError(f"{len(missing)} run(s) are not in the store at {store.root}, e.g. {missing[0]}")
    device = torch.device(device) if device is not None else default_device()
    for batch in plan(missing, max_batch, device):
        for run in train_batch(batch, store, device, ckpt_every, progress=progress, compile=compile,
                               save_weights=save_weights):
            found[run.key] = run
    return [found[c.key()] for c in configs]
