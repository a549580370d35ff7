"""The data of one run: a single-index quadratic target on Gaussian inputs, drawn from the run's data seed.

x ~ N(0, I/D), beta ~ N(0, I_D), y = (beta.x)^2 / 2, so beta.x ~ N(0, |beta|^2/D) has variance about 1.
Drawn in float64 on the CPU from a seeded generator, so a run's data is the same on every device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import LazyRichConfig


@dataclass(frozen=True)
class Data:
    x_train: torch.Tensor     # [P, D]
    y_train: torch.Tensor     # [P]
    x_test: torch.Tensor      # [n_test, D]
    y_test: torch.Tensor      # [n_test]


def target(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """y = (beta.x)^2 / 2 for inputs x [..., D]."""
    return 0.5 * (x @ beta) ** 2


def make_data(cfg: LazyRichConfig) -> Data:
    """The run's train and test sets (float64, CPU): beta first, then the train inputs, then the test inputs."""
    g = torch.Generator().manual_seed(cfg.data_seed)
    beta = torch.randn(cfg.d, generator=g, dtype=torch.float64)
    x_train = torch.randn(cfg.n_train, cfg.d, generator=g, dtype=torch.float64) / cfg.d ** 0.5
    x_test = torch.randn(cfg.n_test, cfg.d, generator=g, dtype=torch.float64) / cfg.d ** 0.5
    return Data(x_train, target(x_train, beta), x_test, target(x_test, beta))
