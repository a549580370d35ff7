"""A run's operand embeddings, snapshot by snapshot, in their two leading principal components: the frames of
the theory chapter's slider figure, where the embeddings close into a circle as they become uniform.

Each frame is projected on its own two leading components (of the centred embeddings φ(0..p-1)). Those are
defined only up to a rotation or reflection within their plane (and up to any rotation when the two
eigenvalues are close, as on a circle), so each frame is turned by the orthogonal 2 x 2 map that best matches
it to the frame before (orthogonal Procrustes): the figure then moves only where the embeddings do.
"""
from __future__ import annotations

import numpy as np
import torch

from .config import RunConfig
from .models import build_model


def operand_embeddings(cfg: RunConfig, weights: torch.Tensor) -> np.ndarray:
    """[k, p, d_model] float64: the operand tokens' rows of W_E in each of k flat weight vectors (the model's
    layout), as stored in a run's snapshots."""
    views = build_model(cfg).layout.views(weights.to(torch.float64).reshape(len(weights), -1))
    if "W_E" not in views:
        raise ValueError(f"run {cfg.key()} has no trained embedding (embed_init={cfg.embed_init!r})")
    return views["W_E"][:, :cfg.p].numpy()


def leading_components(points: np.ndarray) -> tuple[np.ndarray, float]:
    """([n, 2] coordinates of the centred points in their two leading principal components, the share of the
    points' variance those two hold)."""
    c = points - points.mean(0)
    u, s, _ = np.linalg.svd(c, full_matrices=False)
    total = float((s ** 2).sum())
    return u[:, :2] * s[:2], (float((s[:2] ** 2).sum()) / total if total > 0 else 0.0)


def align(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Each [n, 2] frame turned (rotated or reflected) to best match the one before: R minimising
    |prev - cur R| over orthogonal R is U V^T for the SVD U S V^T of cur^T prev."""
    out = [frames[0]]
    for cur in frames[1:]:
        u, _, vt = np.linalg.svd(cur.T @ out[-1])
        out.append(cur @ (u @ vt))
    return out


def embedding_frames(cfg: RunConfig, snapshots: dict) -> dict:
    """{'step': [k], 'xy': [k][p][2] each frame scaled to unit largest radius, 'share': [k] the variance share
    of the two components, 'radius': [k] the largest radius before scaling} from a run's stored snapshots
    ({'step', 'weights'}, grok_core.store.RunStore.snapshots)."""
    emb = operand_embeddings(cfg, snapshots["weights"])
    pcs = [leading_components(e) for e in emb]
    xy = align([xy for xy, _ in pcs])
    radius = [float(np.sqrt((f ** 2).sum(1)).max()) for f in xy]
    return {"step": [int(s) for s in snapshots["step"]],
            "xy": [np.round(f / r if r > 0 else f, 4).tolist() for f, r in zip(xy, radius)],
            "share": [round(s, 4) for _, s in pcs], "radius": radius}
