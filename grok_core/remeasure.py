"""Measures computed after the fact from a stored run's weight snapshots (RunConfig.snapshots), so that
a measure added to the registry later can be read on old runs without training them again.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import RunConfig
from .measures import MEASURES
from .store import RunStore
from .train import Trainer


def measure_snapshots(store: RunStore, cfg: RunConfig, names: tuple[str, ...], device=None) -> dict[str, np.ndarray]:
    """{'step': the snapshot steps, name: its value at each} for registry measures on cfg's stored snapshots,
    computed as a recorded step computes them (in the snapshots' precision, widened to float32)."""
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        raise ValueError(f"measure(s) {unknown} are not registered; known: {', '.join(MEASURES)}")
    snaps = store.snapshots(cfg)
    if snaps is None:
        raise ValueError(f"run {cfg.key()} has no stored snapshots (train it with snapshots > 0)")
    trainer = Trainer([cfg], device or "cpu", cuda_graph=False)
    values = torch.cat([trainer.evaluate(w[None].float(), tuple(names)) for w in snaps["weights"]])   # [k, names]
    return {"step": snaps["step"].numpy(), **{n: values[:, i].cpu().numpy() for i, n in enumerate(names)}}
