"""The arithmetic a training step cannot avoid and the card's fp32 rate: the bound the benches hold timings against.

Loaded by path in tests/test_cli_input.py (grok_core.budget counts the same FLOPs in closed form), so it
imports nothing from bench/.
"""
from __future__ import annotations

import statistics

import torch

from grok_core.config import RunConfig
from grok_core.splits import split_sizes
from grok_core.train import recorded_steps


def per_sample_flops(cfg: RunConfig) -> float:
    """Forward FLOPs per (i, j) sample that cannot be shared between samples.

    Work that depends on one token only (embeddings, keys/values of positions 0 and 1 while they
    are still per-token tables, the MLP's first layer in the embedding MLP) is shared by p samples
    and left out. Transformer: only the '=' position feeds the logits; earlier layers must also
    carry position 1 (which sees both operands after the first attention) on the rows.
    """
    D, M, H, p = cfg.d_model, cfg.d_mlp, cfg.n_heads, cfg.p
    if cfg.model == "mlp":
        return 2 * M * M + 2 * M * p + 2 * M          # hidden 2, output, the sum of the three tables
    f = 0.0
    for l in range(cfg.n_layers):
        last = l == cfg.n_layers - 1
        grid_pos = [2] if last else [1, 2]            # positions whose state depends on (i, j)
        if l == 0:
            f += sum(2 * (q + 1) * H * D for q in grid_pos)        # attn-weighted sum of v W_O tables
        else:
            n_kv = 2                                               # keys/values of grid positions 1, 2
            f += n_kv * 2 * 2 * D * D                              # K, V projections
            f += len(grid_pos) * (2 * D * D + 2 * D * D)           # Q projection, W_O
            f += sum(4 * (q + 1) * D for q in grid_pos)            # scores and mix
        f += len(grid_pos) * 4 * D * M                              # MLP
    return f + 2 * D * p                                            # unembedding at '='


def recorded_fraction(cfg: RunConfig) -> float:
    """Share of cfg's steps that are recorded (and so also run the test rows)."""
    return len(recorded_steps(cfg)) / cfg.n_steps


def step_flops(cfg: RunConfig, recorded: float = 1.0) -> float:
    """Bound per run-step: forward and backward (2x) on the train rows every step, plus the forward
    on the test rows on the `recorded` share of steps. recorded=1 (every step recorded, the headline
    setting) is one forward on every pair and a backward on the train rows."""
    n_train, n_test = split_sizes(cfg)
    return per_sample_flops(cfg) * (3 * n_train + recorded * n_test)


def measure_fp32_rate(dev) -> float:
    """FLOP/s of a large float32 matrix product with TF32 off (the fp32 ceiling used for the bound)."""
    n = 8192
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    for _ in range(2):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        a @ b
        e1.record()
        torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1) / 1e3)
    return 2 * n ** 3 / statistics.median(times)
