"""load_or_train: stored runs come back at once; missing ones are trained in batches and stored.

Misses are grouped by batch key (same p and shapes), trained together on the best device,
checkpointed as they go, and resumed from the checkpoint if an earlier attempt was interrupted.
A batch's checkpoint is written at its last step too and removed only once every run of it is
stored; a missing run held by a checkpoint is finished from it with that checkpoint's whole batch,
so a process killed at any point (even between storing two runs of a batch) retrains nothing done.
The store is checked to be writable before anything trains.
"""
from __future__ import annotations

import functools
import gc
import sys
import time
from collections.abc import Callable, Iterable, Iterator

import torch

from . import precompile
from .budget import bytes_per_run
from .config import RunConfig
from .splits import split_sizes, warn_if_shrunk
from .store import Checkpoint, Run, RunStore, code_commit
from .devices import default_device, device_name, set_strict_fp32
from .tickets import check_bases
from .train import RunResult, Trainer, recorded_steps


def train_batch(configs: list[RunConfig], store: RunStore, device=None, ckpt_every: int = 1000,
                deadline: float | None = None, progress: bool | None = None, save_weights: bool = False,
                compile: bool = False, keep: Callable[[RunResult, dict], Run] | None = None) -> list[Run] | None:
    """Train one batch of compatible runs (resuming a checkpoint) and store them; None if stopped early.

    A run that stops by its rule (RunConfig.stop_acc) is stored at once, before any checkpoint counts it as
    stopped, and leaves the batch; its meta says where and why it stopped, and its wall_time_s runs to its stop.
    The last step is checkpointed too, and the checkpoint removed once every run is stored, so that a
    process killed while storing them leaves its work to be stored, not retrained.
    compile=True runs the step through torch.compile (faster on CUDA at large batches; the same
    float32 arithmetic up to rounding order); it is recorded in the run's metadata.
    Returns the batch's runs in its order, those that stopped before a resume read back from the store (one
    missing there meanwhile is left out, for the caller to train again).
    keep(result, meta) stores a run instead of the history (with weights when save_weights, and snapshots): the
    progress-measure pipeline stores its measures.
    """
    set_strict_fp32()
    gc.collect()        # a Trainer holds itself through its step functions: free the last batch's memory first
    trainer = Trainer(configs, device, compile=compile)
    ckpt = store.checkpoint_path(configs)
    if trainer.resume(ckpt):
        print(f"resuming {len(configs)} run(s) at step {trainer.step} of {trainer.cfg.n_steps} from {ckpt}",
              file=sys.stderr)
    start = trainer.step
    t0 = time.time()
    meta = {"code_commit": code_commit(), "device": device_name(trainer.device), "torch": torch.__version__,
            "cuda_graph": trainer.use_graph, "compiled": trainer.compiled, "batch_size": len(configs),
            "batch_started": round(t0, 3)}       # names the batch: its runs' wall times, which end at their stops, share it
    if start:
        meta["resumed_at_step"] = start       # wall_time_s then covers only the steps from here on
    runs = {}

    def put(result, wall: float):
        more = {"wall_time_s": round(wall, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if keep is not None:
            runs[result.config.key()] = keep(result, meta | more)
            return
        runs[result.config.key()] = store.put(result.config, result.history, meta | more | result.stop,
                                              result.weights if save_weights else None, result.snapshots)

    finished = trainer.run(ckpt_path=ckpt, ckpt_every=ckpt_every, deadline=deadline, progress=progress,
                           on_finish=lambda result: put(result, time.time() - t0))
    if not finished:
        return None
    wall = time.time() - t0
    final = trainer.results()
    if final and trainer.step > start:
        trainer.save_checkpoint(ckpt)
    for result in final:
        put(result, wall)
    ckpt.unlink(missing_ok=True)
    return [r for r in (runs.get(c.key()) or store.get(c) for c in configs) if r is not None]


def runs_that_fit(cfg: RunConfig, device, share: float = 0.85) -> int | None:
    """How many runs of cfg's shape fit in the free memory of a CUDA device (None off CUDA)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)   # cached by torch, reusable
    return max(1, int(free * share // bytes_per_run(cfg)))


# A batch pads every run to its largest train and test sets. Measured on an H200 (1 layer, p = 97, compiled,
# 2,822 train rows): 32 runs take 4.2 ms per step and 96 runs 11.1 ms, i.e. about 0.75 ms per step of fixed
# cost, as much as 7 runs' work; planning counts it as BATCH_OVERHEAD_RUNS extra runs per batch.
BATCH_OVERHEAD_RUNS = 8


def batch_label(batch: list[RunConfig]) -> str:
    """A batch's name in listings and benchmarks: model, shapes and the train shares it holds."""
    c = batch[0]
    fracs = sorted({x.frac_train for x in batch})
    share = f"{fracs[0]}" + (f"-{fracs[-1]}" if len(fracs) > 1 else "")
    return f"{c.model} p={c.p} L={c.n_layers} D={c.d_model} M={c.d_mlp} frac {share}"


def _row_work(cfg: RunConfig) -> float:
    """Relative work per trunk row per step: the MLP and attention widths, and depth."""
    return cfg.d_model * cfg.d_mlp * (1 + 2.5 * (cfg.n_layers - 1)) * 1e-12


@functools.lru_cache(maxsize=4096)
def _rows(cfg: RunConfig) -> tuple[int, float]:
    """(train rows, test rows per step averaged over the run): train rows go forward and backward
    every step, test rows forward only on recorded steps."""
    n_train, n_test = split_sizes(cfg)
    return n_train, n_test * len(recorded_steps(cfg)) / cfg.n_steps


def _padded_rows(n_runs: int, most_train: float, most_test: float) -> float:
    """Rows worked per step by a batch: every run padded to the largest train and test sets, plus the
    fixed cost counted as BATCH_OVERHEAD_RUNS more runs."""
    return (n_runs + BATCH_OVERHEAD_RUNS) * (3 * most_train + most_test)


def batch_cost(batch: list[RunConfig]) -> float:
    """Rough relative cost of training a batch (for planning batches, ordering them and balancing shards;
    never reported)."""
    rows = [_rows(c) for c in batch]
    return (_padded_rows(len(batch), max(r[0] for r in rows), max(r[1] for r in rows))
            * batch[0].n_steps * _row_work(batch[0]))


def _partition(group: list[RunConfig], size: int) -> list[list[RunConfig]]:
    """Cheapest split of a group of compatible runs into batches of at most `size` runs: the runs are
    ordered by train and test set size and cut into consecutive pieces (dynamic programming over the
    cut points), so runs of very different train shares are not padded to each other; of equally cheap
    splits, the one with the most even batches."""
    runs = sorted(group, key=lambda c: (_rows(c), c.key()))
    rows = [_rows(c) for c in runs]
    n = len(runs)
    best, cut = [0.0] + [float("inf")] * n, [0] * (n + 1)
    for end in range(1, n + 1):
        most_train = most_test = 0.0
        for start in range(end - 1, max(0, end - size) - 1, -1):       # the piece runs[start:end], growing left
            most_train, most_test = max(most_train, rows[start][0]), max(most_test, rows[start][1])
            n_b = end - start                                              # ties go to even pieces
            c = best[start] + _padded_rows(n_b, most_train, most_test) + 1e-6 * n_b ** 2
            if c < best[end]:
                best[end], cut[end] = c, start
    pieces, end = [], n
    while end:
        pieces.append(runs[cut[end]:end])
        end = cut[end]
    return pieces[::-1]


def plan(configs: list[RunConfig], max_batch: int, device) -> list[list[RunConfig]]:
    """Batches of compatible runs: one batch key each, at most max_batch runs and no more than fit
    in the device's free memory (so 64 runs of p=379 train as a few batches), runs of similar train
    and test set sizes together, most expensive batch first."""
    groups: dict[tuple, list[RunConfig]] = {}
    for c in {c.key(): c for c in configs}.values():
        groups.setdefault(c.batch_key(), []).append(c)
    batches = []
    for group in groups.values():
        fit = runs_that_fit(max(group, key=lambda c: c.frac_train), device)
        batches += _partition(group, max(1, min(max_batch, fit or max_batch)))
    return sorted(batches, key=lambda b: -batch_cost(b))


def checkpointed(missing: list[RunConfig],
                 checkpoints: list[Checkpoint]) -> tuple[list[list[RunConfig]], list[RunConfig]]:
    """(the batches of the sound checkpoints (RunStore.checkpoints) that hold missing runs, most advanced first;
    the missing runs none holds). Such a batch is finished whole from its checkpoint, so that work done for a
    larger batch than the one asked for now (one killed between storing its runs, say) is kept rather than
    retrained."""
    want = {c.key(): c for c in missing}
    held = []
    for ck in sorted((c for c in checkpoints if c.error is None), key=lambda c: -c.step):
        if any(c.key() in want for c in ck.configs):
            held.append(ck.configs)
            for c in ck.configs:
                want.pop(c.key(), None)
    return held, list(want.values())


def batches_to_train(missing: list[RunConfig], checkpoints: list[Checkpoint], max_batch: int,
                     device) -> list[list[RunConfig]]:
    """The batches that train the missing runs: those of the checkpoints that hold any (checkpointed), then
    plan's batches of the rest, most expensive first."""
    held, rest = checkpointed(missing, checkpoints)
    return held + plan(rest, max_batch, device)


def precompiled(batches: Iterable[list[RunConfig]], device, compile: bool) -> Iterator[list[RunConfig]]:
    """The batches, in order. With compile on a CUDA device, while the caller trains one batch a helper
    process (grok_core.precompile) compiles the next into torch's on-disk caches, so that compiling it
    here is mostly loading; the helper is awaited before the next batch is handed out. (Pulling the next
    batch early matters for a shared queue (grok_core.distributed): it is taken when the current one starts.)"""
    if not (compile and torch.device(device).type == "cuda"):
        yield from batches
        return
    batches = iter(batches)
    batch = next(batches, None)
    while batch is not None:
        following = next(batches, None)
        helper = precompile.start(following, device) if following is not None else None
        try:
            yield batch
        except BaseException:
            if helper is not None:
                helper.kill()
            raise
        if helper is not None:
            helper.wait()
        batch = following


def load_or_train(configs: list[RunConfig], store: RunStore | None = None, device=None, max_batch: int = 64,
                  ckpt_every: int = 1000, progress: bool | None = None, train: bool = True,
                  compile: bool = False, save_weights: bool = False) -> list[Run]:
    """Runs for configs in order: from the store when present, else trained (train=False raises instead).

    save_weights also stores each newly trained run's final flat parameters (weights.pt)."""
    store = store or RunStore()
    configs = list(configs)
    for c in configs:          # a train set cut short by its block is said before anything trains (counted)
        warn_if_shrunk(c)
    found = {c.key(): store.get(c) for c in configs}

    def unfound(among: list[RunConfig]) -> list[RunConfig]:
        return list({c.key(): c for c in among if found[c.key()] is None}.values())

    def train_all(batches):
        for batch in batches:
            for run in train_batch(batch, store, device, ckpt_every, progress=progress, compile=compile,
                                   save_weights=save_weights):
                found[run.key] = run

    missing = unfound(configs)
    if missing and not train:
        raise LookupError(f"{len(missing)} run(s) are not in the store at {store.root}, e.g. {missing[0]}")
    if not missing:
        return [found[c.key()] for c in configs]
    check_bases(missing, store)     # a ticket whose base run is missing is refused before any batch trains
    store.check_writable()
    device = torch.device(device) if device is not None else default_device()
    train_all(precompiled(batches_to_train(missing, store.checkpoints(), max_batch, device), device, compile))
    # a run that stopped before its batch was resumed, and whose store entry is gone since, is trained again
    train_all(plan(unfound(missing), max_batch, device))
    return [found[c.key()] for c in configs]
