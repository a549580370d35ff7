"""Compile a batch's training steps in a helper process, ahead of the process that will train it.

torch.compile keeps what it compiles in on-disk caches (inductor's FX graph cache and AOT autograd's
cache), keyed by the graph, its shapes and the settings. A process that later compiles the same batch
mostly loads. The runner (`runner.precompiled`) starts a helper for the next batch while it trains the
current one, so compilation overlaps training instead of adding to it: over the paper's programme on an
H100, setup in the training process fell from 6.9 to 2.5 minutes (bench/results/README.md).

    python -m grok_core.precompile CONFIGS.json DEVICE      # what start() runs
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from .config import RunConfig


def start(configs: list[RunConfig], device, log: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start a helper process that compiles these runs' Trainer on `device` (and captures its CUDA graphs)
    and exits; its output goes to `log` (default: discarded). The configs travel in a temporary file that
    the helper deletes."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump([c.to_dict() for c in configs], fh)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", "grok_core.precompile", fh.name, str(device)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        if log:
            out.close()


def main(argv: list[str]) -> int:
    from .devices import set_strict_fp32
    from .train import Trainer
    path, device = argv
    try:
        configs = [RunConfig.from_dict(d) for d in json.loads(Path(path).read_text())]
    finally:
        Path(path).unlink(missing_ok=True)
    set_strict_fp32()
    Trainer(configs, torch.device(device), compile=True).prepare()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
