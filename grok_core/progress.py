"""The progress-measure comparison's pipeline: train a batch of runs with weight snapshots, compute every candidate
measure from the snapshots where they are (on the training device, batched over a run's snapshots), and keep only
a compact record per run: the loss and accuracy history and the measures at the snapshot steps.

Snapshots of a whole population are gigabytes, so they are not stored, except at a few steps of the example runs.
Records live in their own store (<results>/progress-runs/<key>/, a RunStore keyed by the run's config), and the
per-run transition times in one CSV per profile (<results>/progress-measures/transitions_<profile>.csv).
"""
from __future__ import annotations

import csv
import gc
import time
from pathlib import Path

import numpy as np
import torch

from . import transitions as tr
from .config import RunConfig
from .devices import default_device
from .measures import MeasureContext, circuit_losses
from .runner import batches_to_train, plan, train_batch
from .store import Run, RunStore, results_root
from .train import RunResult, Trainer

# admissible candidates (each reads test inputs at most), in the order of the chapter's tables
CANDIDATES = ("med", "med_sum", "weight_norm", "weight_norm_embed", "weight_norm_attn", "weight_norm_mlp",
              "weight_norm_unembed", "restricted_loss", "excluded_loss", "key_frequencies", "fourier_gini",
              "fourier_ipr", "circuit_share", "sc_fraction", "zero_loss_fraction", "nlm_cosine",
              "local_complexity_train", "local_complexity_test", "llc", "qk_eff_rank", "train_loss")
# not admissible, shown as ceilings: the test loss itself, and Nanda's losses with the final snapshot's key frequencies
CEILINGS = ("test_loss", "restricted_loss_final", "excluded_loss_final")
EXPENSIVE = ("local_complexity_train", "local_complexity_test", "llc")
DENSE = ("train_loss", "test_loss", "train_acc", "test_acc")      # kept at every recorded step
AT_SNAPSHOT = "at_snapshot."                                      # record keys of the measures at the snapshots


def store(root: str | Path | None = None) -> RunStore:
    return RunStore(root or results_root(), RunConfig, runs_subdir="progress-runs")


def expensive_steps(n: int, most: int) -> np.ndarray:
    """Indices of at most `most` of n snapshots, evenly spread over them, for the costly measures."""
    return np.unique(np.round(np.linspace(0, n - 1, min(n, most))).astype(int))


def _evaluator(cfg: RunConfig, runs: int, device) -> Trainer:
    """A Trainer that only evaluates: without the config's snapshot schedule, so it holds no snapshot buffer
    (runs x snapshots x parameters: gigabytes at p = 97)."""
    return Trainer([cfg.replace(snapshots=0, snapshot_every=0, snapshot_at="")] * runs, device, cuda_graph=False)


def _evaluate(cfg: RunConfig, weights: torch.Tensor, names: tuple, device, chunk: int, keys=None) -> np.ndarray:
    """[k, len(names)] registry measures of one run's snapshots [k, n_params], `chunk` at a time (the snapshots
    stand in the batch's run axis); with keys [1, K], the look-ahead losses instead (names ignored)."""
    out = []
    for lo in range(0, len(weights), chunk):
        w = weights[lo:lo + chunk].to(device, torch.float32)
        t = _evaluator(cfg, len(w), device)
        if keys is None:
            out.append(t.evaluate(w, names).double().cpu())
            continue
        d = t.data
        ctx = MeasureContext(cfg, t.model, t.model.layout.views(w), w, None, None, None, d.train_labels,
                             (d.train_w > 0).to(w.dtype), train_idx=d.train_idx)
        with torch.no_grad():
            out.append(torch.stack(circuit_losses(ctx, keys.expand(len(w), -1)), -1).cpu())
    del t
    gc.collect()          # a Trainer holds itself (its step functions are its bound methods): free its memory now
    return torch.cat(out).numpy()


def final_keys(cfg: RunConfig, weights: torch.Tensor, device) -> torch.Tensor:
    """[1, K] the key frequencies of the last snapshot: the look-ahead ceiling's, not admissible as a predictor."""
    from .fourier import key_frequencies
    from .internals import table
    t = _evaluator(cfg, 1, device)
    with torch.no_grad():
        return key_frequencies(table(cfg, t.model.act, t.model.layout.views(weights[-1:].to(device, torch.float32)))[0])


def measure_snapshots(cfg: RunConfig, steps, weights: torch.Tensor, device=None, most_expensive: int = 40,
                      chunk: int = 16) -> dict[str, np.ndarray]:
    """{name: [k] values at the k snapshot steps} of every candidate and ceiling; the EXPENSIVE ones only at
    expensive_steps (NaN elsewhere)."""
    device = torch.device(device) if device is not None else default_device()
    k = len(steps)
    cheap = tuple(n for n in CANDIDATES + ("test_loss",) if n not in EXPENSIVE)
    got = dict(zip(cheap, _evaluate(cfg, weights, cheap, device, chunk).T))
    at = expensive_steps(k, most_expensive)
    values = _evaluate(cfg, weights[at], EXPENSIVE, device, chunk)
    for i, name in enumerate(EXPENSIVE):
        got[name] = np.full(k, np.nan)
        got[name][at] = values[:, i]
    ahead = _evaluate(cfg, weights, (), device, chunk, keys=final_keys(cfg, weights, device))
    got["restricted_loss_final"], got["excluded_loss_final"] = ahead.T
    return {n: got[n] for n in CANDIDATES + CEILINGS}


def record(result: RunResult, measured: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A run's record: the dense history (step, the accuracies in float32, the losses in float16: three digits are
    all t_drop reads, and they halve the committed size) and the measures at the snapshot steps (float32)."""
    h = result.history
    out = {"step": h["step"], **{n: np.asarray(h[n], dtype=np.float16 if "loss" in n else np.float32) for n in DENSE},
           "snapshot_step": result.snapshots["step"].numpy().astype(np.int32)}
    return out | {AT_SNAPSHOT + n: v.astype(np.float32) for n, v in measured.items()}


def example_snapshots(snaps: dict, n: int) -> dict:
    """n of a run's snapshots, evenly spread, in float16: what is kept of an example run's weights."""
    at = torch.as_tensor(expensive_steps(len(snaps["step"]), n))
    return {"step": snaps["step"][at], "weights": snaps["weights"][at].to(torch.float16)}


def _store_measured(records: RunStore, device, most_expensive: int, examples: tuple[str, ...], n_example: int,
                    chunk: int, result: RunResult, meta: dict) -> Run:
    """Measure one stopped run from its snapshots and store its record (snapshots only for the keys in examples)."""
    m0 = time.time()
    measured = measure_snapshots(result.config, result.snapshots["step"].numpy(), result.snapshots["weights"],
                                 device, most_expensive, chunk)
    keep = example_snapshots(result.snapshots, n_example) if result.config.key() in examples else None
    return records.put(result.config, record(result, measured), meta | result.stop | {
        "measure_s": round(time.time() - m0, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}, snapshots=keep)


def train_and_measure(configs: list[RunConfig], records: RunStore, device=None, max_batch: int = 64,
                      examples: tuple[str, ...] = (), n_example: int = 6, most_expensive: int = 40,
                      progress: bool = False, ckpt_every: int = 10000, chunk: int = 16) -> str:
    """Train the configs whose records are missing, batch by batch, measure each run from its snapshots as it
    stops (or at the end) and store its record (snapshots only for the keys in `examples`); one line of what was
    done. Batches are checkpointed every ckpt_every steps, snapshots included, and an interrupted batch resumes
    from its checkpoint (grok_core.runner.train_batch): the runs it had stopped are stored already. chunk: snapshots
    evaluated at once (memory against speed; the values do not depend on it: every snapshot's LLC chain draws the
    same noise)."""
    missing = list({c.key(): c for c in configs if not records.entry(c.key()).exists()}.values())
    if not missing:
        return "0 runs trained"
    device = torch.device(device) if device is not None else default_device()
    records.check_writable()
    t0 = time.time()
    measured, batches = [], 0

    def keep(result: RunResult, meta: dict) -> Run:
        run = _store_measured(records, device, most_expensive, examples, n_example, chunk, result, meta)
        measured.append(run.meta["measure_s"])
        return run
    # the batches of checkpoints first; then any run that stopped before its batch was resumed and is not stored
    for plan_of in (lambda: batches_to_train(missing, records.checkpoints(), max_batch, device),
                    lambda: plan([c for c in missing if not records.entry(c.key()).exists()], max_batch, device)):
        for batch in plan_of():
            train_batch(batch, records, device, ckpt_every, progress=progress, keep=keep)
            batches += 1
            gc.collect()      # the batch's snapshots (gigabytes) go before the next batch is built
    return (f"{len(missing)} runs trained and measured in {batches} batches, {time.time() - t0:.0f} s "
            f"({sum(measured):.0f} s of it measuring)")


def load_records(configs: list[RunConfig], records: RunStore) -> list[Run]:
    """The stored records of configs, in order; LookupError naming how many are missing."""
    got = [records.get(c) for c in configs]
    missing = sum(r is None for r in got)
    if missing:
        raise LookupError(f"{missing} of {len(configs)} progress-measure records are not in the store at "
                          f"{records.runs_dir}")
    return got


# -- per-run transition times ------------------------------------------------------------------------------
def measure_series(run: Run, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(snapshot steps, values) of one measure in a record."""
    return run.history["snapshot_step"], run.history[AT_SNAPSHOT + name].astype(np.float64)


def transition_row(run: Run) -> dict:
    """One run's ground truth (t_mem, t_grok, t_drop, end: its last recorded step + 1) and each measure's
    transition times (t50.<name>: half its change from t_mem on; cp.<name>: the log-time change point)."""
    c, h = run.config, run.history
    mem = tr.t_mem(h["step"], h["train_acc"])
    grok = tr.t_grok(h["step"], h["test_acc"])
    row = {"key": run.key, "p": c.p, "fn": c.fn, "frac_train": c.frac_train, "wd": c.wd, "loss": c.loss,
           "init_seed": c.init_seed, "split_seed": c.split_seed, "end": int(h["step"][-1]) + 1,
           "t_mem": mem, "t_grok": grok, "t_drop": tr.t_drop(h["step"], h["test_loss"], mem)}
    for name in CANDIDATES + CEILINGS:
        steps, v = measure_series(run, name)
        row[f"t50.{name}"] = tr.half_change_time(steps, v, mem)
        row[f"cp.{name}"] = tr.changepoint_time(steps, v, mem)
    return row


def write_transitions(runs: list[Run], path: Path) -> Path:
    rows = [transition_row(r) for r in runs]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return path


def read_transitions(path: Path) -> list[dict]:
    """The CSV's rows with numbers as numbers and empty cells as None."""
    def cell(k, v):
        if v == "":
            return None
        if k in ("key", "fn", "loss"):
            return v
        return float(v) if k in ("frac_train", "wd") else int(v)
    with open(path, newline="") as f:
        return [{k: cell(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
