"""Where training runs and under which numerics: the device, its name in run metadata, strict float32,
deterministic kernels, and the CPU heap setting that keeps freed activations for the next step.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import platform

import torch

# cuBLAS is deterministic only with a fixed workspace; torch's deterministic mode refuses matmuls without it.
# It is read when CUDA starts, so it is set on import (a user's own setting wins).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def default_device() -> torch.device:
    """CUDA when torch sees a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_strict_fp32():
    """Grokking curves are sensitive to numerics: no TF32 unless asked for explicitly."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Keep blocks up to `limit` bytes that torch frees on the CPU in the process's heap (glibc only).

    torch has no caching allocator on the CPU, and glibc serves each large tensor with a fresh mapping
    and returns the memory on free, so every step faults its activations in again, page by page: about
    a quarter of a training step of one run at p = 97 on two cores (bench/results/README.md). Raising
    glibc's mmap and trim thresholds lets the freed blocks be reused. Returns whether glibc took it."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):          # not glibc (macOS, Windows): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))


@contextlib.contextmanager
def deterministic_algorithms(on: bool = True):
    """torch's deterministic mode for the duration: on CUDA a gather's backward (a scatter-add) otherwise adds
    with atomics in any order, and compiled code autotunes reductions, so the same runs trained twice differ
    from step 2 on (measured on an H100; bench/results/README.md). The previous mode is restored on exit."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(on)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def device_name(device: torch.device) -> str:
    """The device as run metadata names it: the GPU's model, or the CPU's with torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
