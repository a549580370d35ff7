"""The training semantics are pinned to SEMANTICS_VERSION by a fingerprint: short float64 CPU runs of each
kind (transformer of 1 and 2 layers, a square split, the operand offset, Toeplitz init, the MLP, MSE loss),
their whole histories and final parameters rounded to 6 significant digits and hashed.

A change of what training computes (a formula, an initialisation, the warm-up, a metric) changes the hash;
then SEMANTICS_VERSION must be bumped, so that the store treats old entries as other keys, and the new
fingerprint recorded. Float64 keeps the hash the same on every CPU: machines differ here by ~1e-15 relative
(the order of sums; 100 steps alone and batched differ by 3e-16), so a value crosses a rounding boundary of
6 digits with odds of ~1e-15 / 1e-6 = 1e-9, about 1e-5 for the ~10,000 values. A mere reordering of float32
sums, which moves float32 training but not these 6 digits, is not a semantics change.
The initial weights come from torch.randn, whose float32 values depend on torch's CPU kernels: the same
with AVX2 and AVX-512 (ATEN_CPU_CAPABILITY=avx2 gives this hash too), 4e-7 apart with the scalar ones
(ATEN_CPU_CAPABILITY=default), where the hash differs; so the test runs where torch uses AVX2 or AVX-512.
"""
import hashlib

import numpy as np
import pytest
import torch

from grok_core.config import SEMANTICS_FINGERPRINT, SEMANTICS_VERSION, RunConfig
from grok_core.train import Trainer

BASE = RunConfig(p=11, d_model=16, n_heads=2, d_mlp=32, frac_train=0.5, n_steps=30, lr=3e-3, wd=0.5)
KINDS = [BASE, BASE.replace(n_layers=2, split="square", split_param=3, init_seed=1),
         BASE.replace(operand_offset=3, embed_init="toeplitz", fn="x2_xy_y2", split="strip", split_param=2),
         BASE.replace(model="mlp", loss="mse", init_seed=2)]


def fingerprint(kinds=KINDS) -> str:
    h = hashlib.sha256()
    for cfg in kinds:
        tr = Trainer([cfg], "cpu", dtype=torch.float64)
        tr.run(progress=False)
        values = np.concatenate([tr.history[0].flatten().numpy(), tr.flat[0].detach().numpy()])
        h.update(" ".join(np.format_float_scientific(v, precision=5) for v in values).encode())
    return h.hexdigest()[:16]


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
                    reason="torch's scalar CPU kernels draw other initial weights (see the module docstring)")
def test_training_semantics_match_the_recorded_fingerprint():
    got = fingerprint()
    assert got == SEMANTICS_FINGERPRINT, (
        f"training computes other numbers than SEMANTICS_VERSION = {SEMANTICS_VERSION} records "
        f"(fingerprint {got}, recorded {SEMANTICS_FINGERPRINT}). If the change is meant, bump SEMANTICS_VERSION "
        f"in grok_core/config.py and set SEMANTICS_FINGERPRINT = {got!r}")


def test_the_fingerprint_tells_a_changed_formula_apart(monkeypatch):
    base = fingerprint(KINDS[:1])
    monkeypatch.setattr("grok_core.updates.adamw_schedule",
                        lambda cfg, dtype=torch.float32: torch.ones(cfg.n_steps, 3, dtype=dtype))   # no warm-up, no bias correction
    assert fingerprint(KINDS[:1]) != base
