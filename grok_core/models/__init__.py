"""The models, by the name a RunConfig gives them: model X lives in models/X.py as its MODEL class.

A model declares what the rest of the package needs: `shapes(cfg)` (its parameters, packed per run
by parts.FlatLayout), `init_params`, `buffers`, the fast `trunk`/`head` training runs, the plain
`reference_logits`, the names of its own `measures`, and `n_params`, `words_per_pair` and
`pair_flops` for the planner. Adding a model: its file, and its name in config.MODELS.
"""
from __future__ import annotations

import importlib

from ..config import MODELS, RunConfig


def model_class(name: str):
    """The MODEL class of models/<name>.py, for a name in config.MODELS (the planner counts without building)."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is not allowed; choose one of {', '.join(map(repr, MODELS))}")
    return importlib.import_module(f".{name}", __name__).MODEL


def build_model(cfg: RunConfig):
    return model_class(cfg.model)(cfg)
