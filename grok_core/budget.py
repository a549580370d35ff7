"""Refuse, before anything trains, what cannot fit in the device's memory or would train for days.

Both figures are estimates, computed arithmetically (no model, no tensor) so that checking p=10007 or
n_steps=1e10 is instant. `grok run --force` skips the check.
"""
from __future__ import annotations

import os

import torch

from .config import RunConfig
from .kernels import ONEHOT_MAX_P
from .models import model_class
from .splits import split_sizes
from .devices import default_device
from .train import metric_names
from .updates import state_words

MAX_HOURS = 24.0
# The Trainer's per-step tables, for the whole batch: AdamW schedule (12 bytes), step -> history slot (8),
# recorded flag (1), and recorded_steps' temporaries while they are built (11).
STEP_TABLE_BYTES = 32
# Per-step cost model, an estimate: seconds per batch step = overhead + FLOPs (run_step_flops, summed over
# the batch) / rate. CUDA (eager, CUDA graph, strict fp32): fitted to bench/results/README.md's H100 headline,
# 1.049 ms for one run and 0.263 ms per run-step at 256 runs of 4.37 GFLOP (p=97, 1 layer); on an H200 it
# came within 10 % of the wall time of 1-32 runs at p=31-211 with 1-2 layers (first batch's set-up aside).
# CPU: 68.2 ms for that run-step on this project's 2-core machine (speed_cpu_x86_64_x2_threads.txt), the
# rate growing with the square root of torch's threads (16 threads on the H200's host: 26 ms for one run,
# 13 ms per run-step for 8); the overhead is about a step of a p=7 run there. Within 2x on the CPU; other
# devices differ, and a machine shared with other work is slower still.
CUDA_STEP_OVERHEAD_S, CUDA_FLOPS = 0.8e-3, 16.8e12
CPU_STEP_OVERHEAD_S, CPU_FLOPS_PER_SQRT_THREAD = 5e-3, 45e9
CUDA_FIT_SHARE = 0.85       # share of free memory runner.runs_that_fit fills when it cuts batches


def resolve_device(name: str | None) -> torch.device:
    """The --device to train on (default: cuda when present), refused here if it is not a usable cpu
    or CUDA device rather than failing once training starts."""
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {name!r} is not allowed; use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r} is not available: torch {torch.__version__} sees no CUDA device here; "
                         "use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name!r} is not available: there are {torch.cuda.device_count()} CUDA device(s)")
    return device


def n_params(cfg: RunConfig) -> int:
    """Trainable parameters of one run, counted from the model's declared shapes (no tensor is built)."""
    return model_class(cfg.model).n_params(cfg)


def n_recorded(cfg: RunConfig) -> int:
    """len(train.recorded_steps(cfg)), counted: steps below record_dense, multiples of record_every, the last."""
    n, every = cfg.n_steps, cfg.record_every
    dense = min(cfg.record_dense, n)
    strided = -(-n // every) + (-dense // every)            # multiples of every in [dense, n)
    return dense + strided + (n - 1 >= dense and (n - 1) % every != 0)


def bytes_per_run(cfg: RunConfig) -> int:
    """Estimate (on the safe side) of the device memory one run of a batch needs while training, counted
    without building the model or the recorded-step list (instant at p=10007 or n_steps=1e10).

    Parameters with gradient, Adam moments and AdamW temporaries (8 P), what a gradient transform or another
    optimiser keeps besides (updates.state_words: Grokfast's moving average holds its window), the history, weight snapshots, and
    per pair of the p x p table what the model declares (models.*.words_per_pair), plus for p <= ONEHOT_MAX_P
    the RowIndexes' one-hot matrices. Its calibration against measured peaks: bench/results/README.md.
    """
    p = cfg.p
    n_snaps = cfg.snapshots + (cfg.snapshot_at.count(",") + 1 if cfg.snapshot_at else 0)     # at most
    snapshot_words = n_snaps * n_params(cfg) * (0.5 if cfg.snapshot_dtype == "float16" else 1)
    fixed = 8 * n_params(cfg) + state_words(cfg, n_params(cfg)) + n_recorded(cfg) * len(metric_names(cfg)) + snapshot_words
    per_pair = model_class(cfg.model).words_per_pair(cfg)
    if p <= ONEHOT_MAX_P:
        per_pair += 2 * p
    return int((fixed + p * p * per_pair) * 4)


def pair_flops(cfg: RunConfig) -> int:
    """Forward FLOPs per (i, j) pair, as the model declares them (bench/arithmetic.py's per_sample_flops in closed form)."""
    return model_class(cfg.model).pair_flops(cfg)


def run_step_flops(cfg: RunConfig) -> float:
    """One training step of one run: forward and backward (3x) on the train rows, and the forward on the
    test rows on the share of steps that are recorded."""
    n_train, n_test = split_sizes(cfg)
    return pair_flops(cfg) * (3 * n_train + n_test * n_recorded(cfg) / cfg.n_steps)


def free_bytes(device: torch.device) -> int | None:
    """Memory a new batch can use: free plus torch's cached blocks on CUDA, MemAvailable on the CPU
    (None where neither /proc/meminfo nor sysconf tells)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000


def check(configs: list[RunConfig], device: torch.device, max_batch: int, max_hours: float = MAX_HOURS):
    """Raise ValueError (one line, with the estimate) if a batch of these runs, grouped as runner.plan
    groups them, needs more memory than the device has free, or if all of them would train for more
    than max_hours by the cost model above."""
    unique = {c.key(): c for c in configs}
    groups: dict[tuple, list[RunConfig]] = {}
    for c in unique.values():
        groups.setdefault(c.batch_key(), []).append(c)
    free = free_bytes(device)
    overhead, rate = ((CUDA_STEP_OVERHEAD_S, CUDA_FLOPS) if device.type == "cuda"
                      else (CPU_STEP_OVERHEAD_S, CPU_FLOPS_PER_SQRT_THREAD * torch.get_num_threads() ** 0.5))
    seconds = 0.0
    for group in groups.values():
        c = group[0]
        per_run = bytes_per_run(c)
        n = min(max_batch, len(group))
        if device.type == "cuda" and free is not None:       # the runner cuts CUDA batches to fit
            n = max(1, min(n, int(free * CUDA_FIT_SHARE // per_run)))
        tables = c.n_steps * STEP_TABLE_BYTES
        need = n * per_run + tables
        if free is not None and need > free:
            fewer = ", or lower --max-batch" if n > 1 else ""
            raise ValueError(f"a batch of {n} run(s) of {c.model} p={c.p} (n_layers={c.n_layers}, d_model={c.d_model}, "
                             f"d_mlp={c.d_mlp}, n_steps={c.n_steps}) needs an estimated {_size(need)} "
                             f"({_size(per_run)} per run, {_size(tables)} of per-step tables), more than the "
                             f"{_size(free)} free on {device}; "
                             f"make the runs smaller{fewer}, or pass --force to try anyway")
        n_batches = -(-len(group) // n)
        seconds += c.n_steps * (n_batches * overhead + sum(run_step_flops(x) for x in group) / rate)
    if seconds > max_hours * 3600:
        raise ValueError(f"the {len(unique)} new run(s) would train for an estimated {seconds / 3600:.3g} h on "
                         f"{device} (a rough cost model, grok_core.budget), more than the {max_hours:g} h limit; "
                         "train fewer or smaller runs, or pass --force to train anyway")
