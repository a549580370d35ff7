"""The book's training programme: every chapter's paper-profile runs, trained in sharded batches on GPUs.

The chapters (grok_core/chapters/, one module each) say which runs they read; a chapter notebook calls
`setup(chapter, profile, given)` in its first cells, and the GPU runner (`python -m grok_core.programme run`)
calls the same function with the paper profile, so the runs the book reads are, by construction, the runs
that were trained.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

from .chapters import find, names, setup
from .config import RunConfig
from .runner import batch_cost, batch_label, plan, precompiled, train_batch


def paper_configs(chapters=None) -> dict[str, list[RunConfig]]:
    """Every chapter's paper-profile runs (default: every chapter that trains runs), in book order."""
    return {c: setup(c, "paper", {})[1] for c in (chapters or names("run_configs"))}


# -- running the programme on GPUs ------------------------------------------------------------------
def shard(batches: list[list[RunConfig]], index: int, count: int) -> list[list[RunConfig]]:
    """The batches of shard `index` of `count`: greedy by cost, each batch to the least loaded shard."""
    if not (isinstance(count, int) and count >= 1 and isinstance(index, int) and 0 <= index < count):
        raise ValueError(f"shard {index}/{count} is not allowed; use i/n with 0 <= i < n")
    load, mine = [0.0] * count, []
    for b in batches:
        k = min(range(count), key=lambda s: load[s])
        load[k] += batch_cost(b)
        if k == index:
            mine.append(b)
    return mine


MANIFEST_FIELDS = ["key", "chapters", "model", "p", "fn", "split", "split_param", "frac_train", "operand_offset",
                   "n_layers", "d_model", "d_mlp", "embed_init", "init_seed", "split_seed", "n_steps", "lr",
                   "record_dense", "record_every", "precision", "device", "torch", "compiled", "batch_size", "batch_wall_time_s",
                   "code_commit", "created"]


def manifest_rows(store) -> list[dict]:
    """One row per stored run of the chapters' paper profiles (sorted by key; runs trained for other
    settings, e.g. by the tests, are left out): its config hash, the chapters that read it, the settings
    that tell runs apart, both seeds, and where, with what and how long it was trained."""
    chapters: dict[str, list[str]] = {}
    for name, cs in paper_configs().items():
        for c in cs:
            chapters.setdefault(c.key(), []).append(name)
    rows = []
    for meta in sorted(store.list(), key=lambda m: m["key"]):
        cfg, key = meta["config"], meta["key"]
        if key not in chapters:
            continue
        rows.append({**{k: cfg.get(k) for k in MANIFEST_FIELDS if k in cfg}, "key": key,
                     "chapters": " ".join(chapters[key]), "device": meta.get("device"),
                     "torch": meta.get("torch"), "compiled": meta.get("compiled"), "batch_size": meta.get("batch_size"),
                     "batch_wall_time_s": meta.get("wall_time_s"), "code_commit": meta.get("code_commit"),
                     "created": meta.get("created")})
    return rows


def manifest_text(store) -> str:
    import csv
    import io
    buf = io.StringIO()
    w = csv.DictWriter(buf, MANIFEST_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(manifest_rows(store))
    return buf.getvalue()


def claimed(batches: list[list[RunConfig]], claims: Path):
    """Yield the batches this process claims: a batch is claimed by creating its file in `claims`
    (atomic), so processes sharing the folder never train the same batch; the claim is taken just
    before the batch is trained (with --compile, when the batch before it starts, so that it can compile
    meanwhile), so a process that is free early takes more."""
    for b in batches:
        if claim(claims, hashlib.sha256(" ".join(sorted(c.key() for c in b)).encode()).hexdigest()[:16]):
            yield b


def claim(claims: Path, name: str) -> bool:
    """Take the piece of work `name` for this process by creating its file in `claims` (atomic); False when another
    process of the launch has it already."""
    claims.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(claims / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m grok_core.programme",
                                 description="List or train the paper-profile runs of the book's chapters.")
    ap.add_argument("action", choices=["list", "run", "manifest"],
                    help="list: what a shard would train; run: train it; manifest: write results/manifest.csv")
    ap.add_argument("--chapters", default=",".join(names("run_configs")), help="comma list of chapters (default: all)")
    ap.add_argument("--shard", default="0/1", help="i/n: train only shard i of n (one per GPU)")
    ap.add_argument("--max-batch", type=int, default=128, help="most runs trained together")
    ap.add_argument("--compile", action="store_true", help="torch.compile the step (recorded in each run's meta)")
    ap.add_argument("--claims", default=None, metavar="DIR",
                    help="processes given the same DIR share the shard's batches: each trains, largest first, the "
                         "next batch no other has claimed (one file per batch in DIR; use a new DIR per launch)")
    args = ap.parse_args(argv)
    from .store import RunStore
    from .devices import default_device
    store = RunStore()
    if args.action == "manifest":                                    # every chapter's runs, whatever --chapters says
        path = store.root / "manifest.csv"
        text = manifest_text(store)
        path.write_text(text)
        print(f"wrote {path} ({text.count(chr(10)) - 1} runs)")
        return 0
    per_chapter = paper_configs([c for c in args.chapters.split(",") if c])
    configs = [c for cs in per_chapter.values() for c in cs]
    missing = [c for c in {c.key(): c for c in configs}.values() if not store.entry(c.key()).exists()]
    for name, cs in per_chapter.items():
        have = sum(store.entry(c.key()).exists() for c in cs)
        print(f"{name}: {len(cs)} runs, {have} stored")
    # runs of other kinds (a chapter's own `extra_training` hook): listed here, trained by shard 0 / the first claim
    extra = [(name, setup(name, "paper", {})[0]) for name in per_chapter if hasattr(find(name), "extra_training")]
    for name, S in extra:
        print(find(name).extra_training(S, train=False))
    device = default_device()
    try:
        i, n = (int(x) for x in args.shard.split("/"))
    except ValueError:
        ap.error(f"--shard {args.shard!r} is not allowed; use i/n, e.g. 0/2")
    batches = shard(plan(missing, args.max_batch, device), i, n)
    total = sum(map(batch_cost, batches))
    print(f"shard {i}/{n}: {sum(map(len, batches))} runs in {len(batches)} batches, relative cost {total:.1f}")
    if args.action == "list":
        for b in batches:
            print(f"  {len(b):4d} x {batch_label(b)}: cost {batch_cost(b):.2f}")
        return 0
    store.check_writable()                                           # before any batch trains, not after the first
    for name, S in extra:
        if claim(Path(args.claims), f"extra-{name}") if args.claims else i == 0:
            print(find(name).extra_training(S, train=True), flush=True)
    if args.claims:
        batches = claimed(batches, Path(args.claims))                  # plan's order: most expensive first
    for b in precompiled(batches, device, args.compile):
        t0 = time.time()
        try:
            train_batch(b, store, device, ckpt_every=2000, progress=False, compile=args.compile)
        except Exception as err:          # noqa: BLE001 -- a compiler failure must not cost the batch
            if not args.compile:
                raise
            print(f"compiled step failed ({type(err).__name__}: {str(err)[:200]}); training without compile", flush=True)
            train_batch(b, store, device, ckpt_every=2000, progress=False, compile=False)
        print(f"done {len(b)} x {batch_label(b)} in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
