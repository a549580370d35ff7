"""The book's training programme: every chapter's paper-profile runs, trained in batches on one or many GPUs.

The chapters (grok_core/chapters/, one module each) say which runs they read; a chapter notebook calls
`setup(chapter, profile, given)` in its first cells, and the GPU runner (`python -m grok_core.programme run`)
calls the same function with the paper profile, so the runs the book reads are, by construction, the runs
that were trained.
"""
from __future__ import annotations

import argparse
import sys

from .chapters import find, names, setup
from .config import RunConfig
from .runner import batch_cost, batch_label, batches_to_train
from .store import results_at


def paper_configs(chapters=None) -> dict[str, list[RunConfig]]:
    """Every chapter's paper-profile runs (default: every chapter that trains runs), in book order."""
    return {c: setup(c, "paper", {})[1] for c in (chapters or names("run_configs"))}


MANIFEST_FIELDS = ["key", "chapters", "model", "p", "fn", "split", "split_param", "frac_train", "operand_offset",
                   "n_layers", "d_model", "d_mlp", "embed_init", "init_seed", "split_seed", "n_steps", "lr",
                   "record_dense", "record_every", "precision", "device", "torch", "compiled", "batch_size", "batch_wall_time_s",
                   "code_commit", "created"]


def manifest_rows(store) -> list[dict]:
    """One row per stored run of the chapters' paper profiles (sorted by key; runs trained for other
    settings, e.g. by the tests, are left out): its config hash, the chapters that read it, the settings
    that tell runs apart, both seeds, and where, with what and how long it was trained. The chapters' runs are
    those the listed store implies (the race's second stage follows from its stored grid), with the runs the
    chapters' hooks train (extra_configs)."""
    chapters: dict[str, list[str]] = {}
    with results_at(store.root):
        per = paper_configs()
        for name in names("extra_configs"):
            per[name] = per.get(name, []) + find(name).extra_configs(setup(name, "paper", {})[0])
    for name, cs in per.items():
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


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m grok_core.programme",
                                 description="List or train the paper-profile runs of the book's chapters; under "
                                             "torchrun, its processes share the batches (README, GPU section).")
    ap.add_argument("action", choices=["list", "run", "manifest"],
                    help="list: the batches run would train; run: train them; manifest: write results/manifest.csv")
    trains = [n for n in names() if n in names("run_configs") or n in names("extra_training")]
    ap.add_argument("--chapters", default=",".join(trains), help="comma list of chapters (default: all that train)")
    ap.add_argument("--max-batch", type=int, default=128, help="most runs trained together")
    ap.add_argument("--compile", action="store_true", help="torch.compile the step (recorded in each run's meta)")
    ap.add_argument("--ckpt-every", type=int, default=2000, help="steps between checkpoints")
    ap.add_argument("--gather", action="store_true",
                    help="under torchrun, for hosts that share no filesystem: every process trains into its own run "
                         "store and sends each finished run to rank 0, which writes it into its store")
    args = ap.parse_args(argv)
    from . import distributed
    from .store import RunStore
    from .devices import default_device
    store = RunStore()
    if args.action == "manifest":                                    # every chapter's runs, whatever --chapters says
        path = store.root / "manifest.csv"
        text = manifest_text(store)
        path.write_text(text)
        print(f"wrote {path} ({text.count(chr(10)) - 1} runs)")
        return 0
    try:
        launch = distributed.join() if args.action == "run" else distributed.Launch()
        device = distributed.device(launch) if args.action == "run" else default_device()
    except ValueError as err:
        ap.error(str(err))
    per_chapter = paper_configs([c for c in args.chapters.split(",") if c])
    configs = [c for cs in per_chapter.values() for c in cs]
    # runs of another kind (a chapter's own `extra_training` hook): listed here, trained by rank 0 after its batches
    extra = [(name, setup(name, "paper", {})[0]) for name in per_chapter if hasattr(find(name), "extra_training")]
    if launch.rank == 0:
        for name, cs in per_chapter.items():
            have = sum(store.entry(c.key()).exists() for c in cs)
            print(f"{name}: {len(cs)} runs, {have} stored")
        for name, S in extra:
            print(find(name).extra_training(S, train=False))
    if args.action == "list":
        missing = [c for c in {c.key(): c for c in configs}.values() if not store.entry(c.key()).exists()]
        batches = batches_to_train(missing, store.checkpoints(), args.max_batch, device)
        total = sum(map(batch_cost, batches))
        print(f"{sum(map(len, batches))} runs in {len(batches)} batches, relative cost {total:.1f}")
        for b in batches:
            print(f"  {len(b):4d} x {batch_label(b)}: cost {batch_cost(b):.2f}")
        return 0
    store.check_writable()                                           # before any batch trains, not after the first
    try:
        distributed.train_shared(launch, configs, store, device, max_batch=args.max_batch, ckpt_every=args.ckpt_every,
                                 compile=args.compile, gather=args.gather)
    except KeyboardInterrupt as err:  # SIGINT or SIGTERM (torchrun stopping its workers): the checkpoint is written
        print(f"rank {launch.rank} of {launch.world_size}: {str(err) or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(err, "signum", 2)
    if launch.rank == 0:
        for name, S in extra:
            print(find(name).extra_training(S, train=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
