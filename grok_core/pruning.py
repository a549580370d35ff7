"""Post-hoc neuron pruning of a stored run's weights (Doshi et al.): zero hidden neurons in a given order and
measure, after each removal, the accuracy on the corrupted and the clean training pairs and on the test pairs.

Removing a neuron removes its term W_out[n, :] h_n(i, j) from every logit, so the curve is one pass over the
neurons in float64: from no neuron (logits exactly 0) the neurons are put back one at a time, the last removed first.
"""
from __future__ import annotations

import numpy as np
import torch

from .batch import BatchData
from .config import RunConfig
from .measures import neuron_ipr
from .models import build_model


def ipr_order(ipr: torch.Tensor) -> torch.Tensor:
    """Neuron indices in increasing IPR (the most memorising first); dead neurons (NaN) lead, since taking them
    out changes nothing. Ties keep index order."""
    return torch.argsort(torch.nan_to_num(ipr, nan=-1.0), stable=True)


def pruning_curve(cfg: RunConfig, flat: torch.Tensor, order: torch.Tensor) -> dict[str, np.ndarray]:
    """One run's weights flat [n_params] with the neurons order[:k] zeroed, for k = 0..d_mlp: {"removed": k,
    "corrupted_acc", "clean_acc", "test_acc"} (corrupted: train pairs whose label is not the task's, judged
    against their corrupted label; NaN where there are none)."""
    model = build_model(cfg)
    if not hasattr(model, "neuron_weights"):
        raise ValueError(f"model={cfg.model!r} has no hidden neurons to prune (it lacks neuron_weights)")
    order = torch.as_tensor(order, dtype=torch.long)
    if sorted(order.tolist()) != list(range(cfg.d_mlp)):
        raise ValueError(f"order must be a permutation of the {cfg.d_mlp} neurons")
    w = model.layout.views(flat.detach().to(torch.float64)[None])
    data = BatchData([cfg], torch.device("cpu"), torch.float64)
    n = data.n_train[0]
    train_idx, labels, truth = data.train_idx[0, :n], data.train_labels[0, :n], data.train_truth[0, :n]
    corrupted = labels != truth
    hidden = model.act(model.trunk(w))[0]                               # [p*p, d_mlp], row i*p + j
    W_out = w["W_out"][0]
    logits = torch.zeros(hidden.shape[0], cfg.p, dtype=torch.float64)   # [p*p, p]: no neuron kept yet
    rows = {"corrupted_acc": (train_idx[corrupted], labels[corrupted]),
            "clean_acc": (train_idx[~corrupted], labels[~corrupted]),
            "test_acc": (data.test_idx[0, :data.n_test[0]], data.test_labels[0, :data.n_test[0]])}
    out = {name: np.empty(cfg.d_mlp + 1) for name in rows}

    def record(k):
        pred = logits.argmax(-1)
        for name, (idx, y) in rows.items():
            out[name][k] = (pred[idx] == y).double().mean().item() if len(idx) else np.nan
    record(cfg.d_mlp)
    for k in range(cfg.d_mlp - 1, -1, -1):                              # put the neurons back, the last removed first
        neuron = int(order[k])
        logits += hidden[:, neuron:neuron + 1] * W_out[neuron]
        record(k)
    return {"removed": np.arange(cfg.d_mlp + 1), **out}


def final_neuron_ipr(cfg: RunConfig, flat: torch.Tensor) -> torch.Tensor:
    """[d_mlp]: the neuron IPRs of one run's weights flat [n_params], in float64."""
    model = build_model(cfg)
    return neuron_ipr(model, model.layout.views(flat.detach().to(torch.float64)[None]))[0]
