"""How much the book's history resolution changes the Table 1 numbers, on one real run.

    .venv/bin/python scripts/thinning_check.py [--split square --param 30 --steps 30000] [--out results/thinning_check.json]

Trains one Table 1 setting (init seed 0, split seed 0) with every step recorded (on the CPU this
takes about 40 minutes; the run is checkpointed and resumes), thins its history to the paper
profiles' resolution (every step below 2,000, then every 20th and the last), and applies the
Table 1 rules to both. Thinning leaves training untouched, so the two histories come from one
trajectory and every difference is the resolution's.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from grok_core.analysis import steps_to_threshold, table1_metrics
from grok_core.chapters import setup
from grok_core.chapters.settings import PAPER_RECORD
from grok_core.runner import load_or_train
from grok_core.store import RunStore
from grok_core.train import recorded_steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="square", choices=["square", "strip"])
    ap.add_argument("--param", type=int, default=30, help="k of the square split, t of the strip split")
    ap.add_argument("--steps", type=int, default=30000)
    ap.add_argument("--out", type=Path, default=Path("results/thinning_check.json"))
    ap.add_argument("--store", type=Path, default=Path("results/scratch"),
                    help="run store for the full-resolution run (not committed)")
    args = ap.parse_args(argv)
    _, configs = setup("table1_square_strip", "paper", {})
    cfg = next(c for c in configs if (c.split, c.split_param, c.init_seed, c.split_seed) == (args.split, args.param, 0, 0))
    full_cfg = cfg.replace(n_steps=args.steps, record_dense=0, record_every=1)
    t0 = time.time()
    (run,) = load_or_train([full_cfg], RunStore(args.store), progress=True)
    h = run.history
    steps = h["step"]
    keep = np.isin(steps, recorded_steps(full_cfg.replace(**PAPER_RECORD)).numpy())
    out = {"config": full_cfg.to_dict(), "key": run.key, "device": run.meta.get("device"),
           "torch": run.meta.get("torch"), "code_commit": run.meta.get("code_commit"),
           "entries": {"full": int(len(steps)), "thinned": int(keep.sum())}}
    for name, sel in (("full", slice(None)), ("thinned", keep)):
        r = table1_metrics(h["test_acc"][sel], h["train_acc"][sel], steps=steps[sel])
        out[name] = {"u_acc": r.u_acc, "l_acc": r.l_acc, "go_epoch": r.go_epoch, "memorised_at": r.memorised_at,
                     "ceiling_at": r.ceiling_at, "test95_at": steps_to_threshold(h["test_acc"][sel], 0.95, steps[sel])}
    f, t = out["full"], out["thinned"]
    out["difference"] = {k: (None if f[k] is None or t[k] is None else t[k] - f[k]) for k in f}
    out["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=float) + "\n")
    print(json.dumps({k: out[k] for k in ("full", "thinned", "difference")}, indent=1, default=float))


if __name__ == "__main__":
    main()
