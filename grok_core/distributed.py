"""Sweeps under torchrun: one process per device, batches handed out through torchrun's store.

`torchrun --nproc-per-node=N -m grok_core.programme run` (or `-m grok_core run sweep.yaml`) starts N processes;
each trains on cuda:LOCAL_RANK (the CPU where there is no CUDA). Rank 0 plans the batches: first those of
checkpoints some process holds, then grok_core.runner.plan's, most expensive first. Every process then takes
the next batch from an atomic counter in the store (TCPStore.add), so a process that is free early takes more,
and scheduling needs no shared filesystem. Runs go into the run store: one folder every process sees, or with
gather (hosts that share nothing) each process's own, from which every finished run is sent through the store
to rank 0, which writes it into its store. A run depends on its config and batch alone, never on the rank.
"""
from __future__ import annotations

import io
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .budget import resolve_device
from .config import RunConfig
from .runner import batch_label, batches_to_train, precompiled, train_batch
from .store import Checkpoint, Run, RunStore

# Waits for other processes poll, so that a process that died is noticed (STALE_S) rather than waited for:
# torchrun stops the others when a worker fails on one host, but not on the other hosts of a launch.
TIMEOUT = timedelta(days=30)
POLL_S, BEAT_S, STALE_S = 0.05, 5.0, 120.0


@dataclass
class Launch:
    """This process's place in a launch: its rank, the number of processes, its rank on its host, the store they
    share (an in-process one when the process runs alone), and whether torchrun started it."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    store: dist.Store = field(default_factory=dist.HashStore)
    torchrun: bool = False


def join() -> Launch:
    """The launch torchrun started this process in, read from its environment; a launch of one otherwise."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" not in env:
        return Launch()
    if env.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        raise ValueError("torchrun's agent shares no store with its workers here "
                         "(TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1?); launch without that setting")
    store = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), is_master=False, timeout=TIMEOUT)
    # the agent's store outlives a restart of the workers (--max-restarts): each attempt keeps its own keys
    store = dist.PrefixStore(f"grokbook/attempt-{env['TORCHELASTIC_RESTART_COUNT']}", store)
    launch = Launch(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]), store, torchrun=True)
    threading.Thread(target=_beat, args=(launch,), daemon=True).start()
    return launch


def device(launch: Launch, requested: str | None = None) -> torch.device:
    """Where this process trains: under torchrun cuda:LOCAL_RANK when CUDA is there (one GPU per process), else
    the CPU; requested (grok run --device) may name the CPU, or cuda for that same GPU."""
    if launch.torchrun and requested is not None and requested.startswith("cuda:"):
        raise ValueError(f"--device {requested} is not allowed under torchrun: each process trains on "
                         "cuda:LOCAL_RANK; give --device cuda or leave it out")
    dev = resolve_device(requested)
    if not launch.torchrun or dev.type == "cpu":
        return dev
    if launch.local_rank >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK {launch.local_rank} has no GPU: {torch.cuda.device_count()} CUDA device(s) "
                         f"are visible; give torchrun --nproc-per-node={torch.cuda.device_count()} or fewer")
    torch.cuda.set_device(launch.local_rank)
    return torch.device("cuda", launch.local_rank)


# -- waiting for other processes ------------------------------------------------------------------------------
def _beat(launch: Launch):
    """A sign of life every BEAT_S seconds, while the process lives (a daemon thread)."""
    while True:
        launch.store.add(f"alive/{launch.rank}", 1)
        time.sleep(BEAT_S)


def _await(launch: Launch, ready, what: str, stale_s: float = STALE_S):
    """Return once ready() holds; raise RuntimeError, naming the rank, if another process shows no sign of life
    for stale_s seconds meanwhile (it died, on a host whose torchrun did not stop the others)."""
    s, seen, looked = launch.store, {}, -math.inf
    while not ready():
        time.sleep(POLL_S)
        now = time.monotonic()
        if now - looked < min(BEAT_S, stale_s / 4):
            continue
        looked = now
        for r in range(launch.world_size):
            if r == launch.rank:
                continue
            beats = s.add(f"alive/{r}", 0)
            if seen.get(r, (None,))[0] != beats:
                seen[r] = (beats, now)
            elif now - seen[r][1] > stale_s:
                raise RuntimeError(f"rank {r} has given no sign of life for {stale_s:.0f} s while rank {launch.rank} "
                                   f"waited for {what}; it has stopped. Launch again: stored runs are kept, "
                                   "checkpointed batches resume")


def _get(launch: Launch, key: str, what: str) -> bytes:
    """The store's value at key, once another process has set it (a blocking get would hold this process's
    signs of life meanwhile)."""
    _await(launch, lambda: launch.store.check([key]), what)
    return launch.store.get(key)


def _barrier(launch: Launch, name: str, stale_s: float = STALE_S):
    """Every process arrives here before any goes on."""
    s = launch.store
    if s.add(name, 1) == launch.world_size:
        s.set(f"{name}/all", "1")
    _await(launch, lambda: s.check([f"{name}/all"]), f"every process to reach {name}", stale_s)


# -- runs in transit --------------------------------------------------------------------------------------
def _pack(obj) -> bytes:
    """Plain containers of numbers, strings and tensors as bytes (read back by _unpack without pickle's risks)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _unpack(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=True)


def _as_record(run: Run, store: RunStore) -> dict:
    """A stored run as _pack carries it: config, history, metadata (less what RunStore.put derives) and files."""
    return {"config": run.config.to_dict(),
            "history": {k: torch.from_numpy(np.asarray(v)) for k, v in run.history.items()},
            "meta": json.dumps({k: v for k, v in run.meta.items() if k not in ("key", "config", "files")}),
            "weights": store.weights(run.config), "snapshots": store.snapshots(run.config)}


def _put_record(record: dict, store: RunStore):
    store.put(RunConfig.from_dict(record["config"]), {k: v.numpy() for k, v in record["history"].items()},
              json.loads(record["meta"]), record["weights"], record["snapshots"])


# -- the plan every process follows ---------------------------------------------------------------------------
def _report(store: RunStore, lacking: set[str], configs: list[RunConfig]) -> dict:
    """What this process brings to the plan: its store's sound checkpoints, and the runs among `lacking` it holds."""
    return {"checkpoints": [{"name": ck.path.name, "step": ck.step, "configs": [c.to_dict() for c in ck.configs]}
                            for ck in store.checkpoints() if ck.error is None],
            "runs": [_as_record(run, store) for c in configs if c.key() in lacking and (run := store.get(c))]}


def _make_plan(reports: list[dict], missing: list[RunConfig], store: RunStore, device, max_batch: int) -> dict:
    """(Rank 0.) The batches, checkpointed ones first, and each one's owner: a batch whose checkpoint only some
    processes see (reports: one per rank, or rank 0's alone) goes to the one of them with the fewest such
    batches; the others (-1) to whoever is free."""
    best: dict[str, tuple[int, list, set]] = {}                     # checkpoint name -> (step, configs, ranks)
    for rank, report in enumerate(reports):
        for ck in report["checkpoints"]:
            step, _, ranks = best.get(ck["name"], (-1, None, set()))
            if ck["step"] > step:
                best[ck["name"]] = (ck["step"], ck["configs"], {rank})
            elif ck["step"] == step:
                ranks.add(rank)
    batches = batches_to_train(missing, [Checkpoint(Path(name), [RunConfig.from_dict(c) for c in configs], step)
                                         for name, (step, configs, _) in best.items()], max_batch, device)
    owner, owned = [], [0] * len(reports)
    for b in batches:
        ranks = best.get(store.checkpoint_path(b).name, (0, None, set()))[2]
        if ranks and len(ranks) < len(reports):
            owner.append(min(sorted(ranks), key=lambda r: owned[r]))
            owned[owner[-1]] += 1
        else:
            owner.append(-1)
    return {"batches": [[c.to_dict() for c in b] for b in batches], "owner": owner}


def agree_on_plan(launch: Launch, configs: list[RunConfig], store: RunStore, device, max_batch: int,
                  gather: bool) -> tuple[list[list[RunConfig]], list[int]]:
    """The batches still to train and their owners, planned by rank 0 and read by every process. With gather,
    rank 0 first takes in the missing runs other processes' stores hold (a launch that stopped before they were
    sent), so that nothing finished trains again."""
    s, unique = launch.store, list({c.key(): c for c in configs}.values())
    if launch.rank == 0:
        lacking = [c for c in unique if store.get(c) is None]
        s.set("lacking", json.dumps([c.key() for c in lacking]))
    reporters = range(launch.world_size) if gather else [0]         # a shared store: rank 0 sees every checkpoint
    if launch.rank in reporters:
        keys = set(json.loads(_get(launch, "lacking", "rank 0's store"))) if launch.rank else set()
        s.set(f"report/{launch.rank}", _pack(_report(store, keys, unique)))
    if launch.rank == 0:
        reports = [_unpack(_get(launch, f"report/{r}", f"rank {r}'s checkpoints")) for r in reporters]
        for report in reports:
            for record in report["runs"]:
                _put_record(record, store)
        missing = [c for c in lacking if not store.entry(c.key()).exists()]
        s.set("plan", json.dumps(_make_plan(reports, missing, store, device, max_batch)))
    got = json.loads(_get(launch, "plan", "rank 0's plan"))
    return [[RunConfig.from_dict(d) for d in b] for b in got["batches"]], got["owner"]


def handed_out(launch: Launch, batches: list, owner: list[int]):
    """This process's batches: those it owns, then the next unowned one from the shared counter, until none is left."""
    yield from (b for b, o in zip(batches, owner) if o == launch.rank)
    shared = [b for b, o in zip(batches, owner) if o < 0]
    while (k := launch.store.add("next", 1) - 1) < len(shared):
        yield shared[k]


# -- training -------------------------------------------------------------------------------------------------
def _train(batch: list[RunConfig], store: RunStore, device, ckpt_every: int, compile: bool,
           save_weights: bool) -> list[Run]:
    try:
        return train_batch(batch, store, device, ckpt_every, progress=False, compile=compile, save_weights=save_weights)
    except Exception as err:          # noqa: BLE001 -- a compiler failure must not cost the batch
        if not compile:
            raise
        print(f"compiled step failed ({type(err).__name__}: {str(err)[:200]}); training without compile", flush=True)
        return train_batch(batch, store, device, ckpt_every, progress=False, compile=False, save_weights=save_weights)


def _collect(launch: Launch, pending: dict[str, list], store: RunStore, wait: bool):
    """(Rank 0, gather.) Write the runs other processes have sent into the store; with wait, until every pending
    batch's have come."""
    s = launch.store
    for key in list(pending):
        if wait or s.check([f"result/{key}"]):
            for record in _unpack(_get(launch, f"result/{key}", f"the runs of {batch_label(pending[key])}")):
                _put_record(record, store)
            s.delete_key(f"result/{key}")
            del pending[key]


def train_shared(launch: Launch, configs: list[RunConfig], store: RunStore, device, *, max_batch: int,
                 ckpt_every: int, compile: bool = False, save_weights: bool = False, gather: bool = False):
    """Train every config the store lacks, each batch in one process of the launch, and return once all are
    stored (with gather: in rank 0's store, sent there by the process that trained them)."""
    batches, owner = agree_on_plan(launch, configs, store, device, max_batch, gather)
    who = f"rank {launch.rank}: " if launch.world_size > 1 else ""
    if launch.rank == 0:
        print(f"{sum(map(len, batches))} runs to train in {len(batches)} batches, "
              f"over {launch.world_size} process(es)", flush=True)
    sending = gather and launch.rank != 0
    pending = {b[0].key(): b for b in batches} if gather and launch.rank == 0 else {}
    for b in precompiled(handed_out(launch, batches, owner), device, compile):
        t0 = time.time()
        runs = _train(b, store, device, ckpt_every, compile, save_weights)
        start = runs[0].meta.get("resumed_at_step", 0)
        print(f"{who}done {len(b)} x {batch_label(b)}, steps {start}-{b[0].n_steps}, in {time.time() - t0:.1f} s",
              flush=True)
        if sending:
            launch.store.set(f"result/{b[0].key()}", _pack([_as_record(r, store) for r in runs]))
        pending.pop(b[0].key(), None)
        _collect(launch, pending, store, wait=False)
    _collect(launch, pending, store, wait=True)
    _barrier(launch, "finished")
