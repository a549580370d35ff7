"""LazyRichConfig: one run of Kumar et al.'s polynomial regression, validated, hashed into its run key.

The defaults are the paper's setting: y = (beta.x)^2 / 2 in D = 100 dimensions, 550 train and 1,000 test
points, f(x) = alpha * (1/N) sum_i phi(w_i.x) with N = 500 and phi(h) = h + (eps/2) h^2, only W trained by
full-batch GD on MSE / alpha^2 with the step lr * N (lr = 0.5, the paper's sweep notebook).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import SEED_MAX, HashedConfig

# Bump when the training semantics change (same config, different numbers).
LAZY_RICH_SEMANTICS_VERSION = 1

# Fields that may differ between runs trained together in one batch; the others fix the shapes and the schedule.
PER_RUN_FIELDS = ("alpha", "eps", "lr", "seed", "data_seed")


@dataclass(frozen=True)
class LazyRichConfig(HashedConfig):
    """One run. alpha scales the output (and the loss by 1/alpha^2); eps sets the quadratic part of phi."""
    BATCH_SHARES = "shapes and the schedule"
    d: int = 100                 # input dimension D
    n_train: int = 550           # P
    n_test: int = 1000
    width: int = 500             # hidden units N
    alpha: float = 1.0           # output scale: large alpha is lazy, small is rich
    eps: float = 1.0             # phi(h) = h + (eps/2) h^2: how well the initial features align with the target
    lr: float = 0.5              # GD step lr * N on the loss MSE / alpha^2
    n_steps: int = 100000
    centre: bool = True          # train alpha * (f(W) - f(W_0)), so that every alpha starts from the zero function
    seed: int = 0                # the initial weights W_0 ~ N(0, I)
    data_seed: int = 0           # beta and the train and test inputs
    n_records: int = 160         # log-spaced recorded steps (step 0 and the last included)

    def __post_init__(self):
        self._store_declared_types()
        for name in ("d", "n_train", "width", "n_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must be an integer >= 1")
        for name in ("n_test", "n_records"):
            if getattr(self, name) < 2:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must be an integer >= 2")
        if not self.alpha > 0:
            raise ValueError(f"alpha={self.alpha!r} is not allowed; the output scale must be > 0")
        if not self.eps >= 0:
            raise ValueError(f"eps={self.eps!r} is not allowed; phi's quadratic coefficient must be >= 0")
        if not self.lr > 0:
            raise ValueError(f"lr={self.lr!r} is not allowed; it must be > 0")
        for name in ("seed", "data_seed"):
            if not 0 <= getattr(self, name) <= SEED_MAX:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must lie in 0..2**64 - 1")
        if self.n_records > self.n_steps + 1:
            raise ValueError(f"n_records={self.n_records!r} is not allowed with n_steps={self.n_steps}; "
                             f"there are only {self.n_steps + 1} steps to record (0..n_steps)")
        if not math.isfinite(self.alpha * self.alpha * self.lr):
            raise ValueError(f"alpha={self.alpha!r} with lr={self.lr!r} overflows")

    def key_tags(self) -> dict:
        return {"semantics": LAZY_RICH_SEMANTICS_VERSION, "kind": "lazy_rich"}

    def batch_key(self) -> tuple:
        """Runs with equal batch keys train together in one batched tensor."""
        return tuple((k, v) for k, v in sorted(self.to_dict().items()) if k not in PER_RUN_FIELDS)
