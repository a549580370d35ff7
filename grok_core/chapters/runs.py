"""A chapter's runs and splits, read quietly: the notebook reports what matters itself.

`load_runs` prints one line (how many runs came from the store, how many were trained); `provenance_rows`
says where they came from, one row per training batch.
"""
from __future__ import annotations

import os
import time
import warnings

from ..config import RunConfig
from ..runner import load_or_train
from ..splits import make_split
from ..store import ENV_VAR, REPO_ROOT, RunStore


def load_runs(configs: list[RunConfig], train: bool = True):
    """load_or_train without progress bars or split warnings; prints how many runs were found or trained.

    Raises LookupError (from load_or_train) when train is False and a run is missing.
    """
    store = RunStore()
    n_unique = len({c.key() for c in configs})
    hits = sum(store.entry(k).exists() for k in {c.key() for c in configs})
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # shrunk splits are reported by the notebooks
        runs = load_or_train(configs, store=store, progress=False, train=train)
    print(f"{n_unique} run(s): {hits} from the run store, {n_unique - hits} trained now "
          f"({time.time() - t0:.1f} s); store: {_shown(store.root)}")
    return runs


def _shown(path) -> str:
    """The store folder relative to the repository, or the variable that named it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT)) + "/"
    except ValueError:
        return f"${ENV_VAR}" if os.environ.get(ENV_VAR) else str(path)


def quiet_split(cfg: RunConfig):
    """make_split, with its shrink warning caught (the chapters report shrunk train sets in their tables)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return make_split(cfg)


def provenance_rows(runs) -> list[list[str]]:
    """Where the runs came from, one row per training batch: runs, config hashes (the first few),
    device, torch, code commit, and the batch's training wall time (of its last segment, if it was resumed). A
    batch is named by its start where the runs record it (runs that stop early each record their own end)."""
    batches: dict[tuple, list] = {}
    for r in {r.key: r for r in runs}.values():
        m = r.meta
        where = (str(m.get("device", "?")), str(m.get("torch", "?")), str(m.get("code_commit", "?")),
                 m.get("batch_started") or m.get("wall_time_s", float("nan")), m.get("batch_size", "?"),
                 m.get("resumed_at_step"))
        batches.setdefault(where, []).append(r)
    rows = []
    for (device, torch_version, commit, _, size, resumed), members in batches.items():
        keys = [r.key for r in members]
        wall = max(r.meta.get("wall_time_s", float("nan")) for r in members)
        shown = ", ".join(f"`{k}`" for k in keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        when = f", steps from {resumed} on, resumed from a checkpoint" if resumed else ""
        rows.append([str(len(keys)), shown, device, torch_version, commit, f"{wall:.0f} s (batch of {size}{when})"])
    return rows


PROVENANCE_HEADERS = ["runs", "config hashes", "device", "torch", "code commit", "training time"]
