"""The book's training programme: each chapter's profiles and the run configs they resolve to.

A chapter notebook calls `setup(chapter, profile, given)` in its first cells; the GPU runner
(`python -m grok_core.programme run`) calls the same function with the paper profile, so the
runs the book reads are, by construction, the runs that were trained.

Seeds: every setting is trained with n_seeds init seeds x n_split_seeds split seeds (split seeds
counted up from split_seed), so the two sources of variation can be told apart.
History resolution of the paper profiles (PAPER_RECORD): every step for the first 2,000 steps,
then every 20th step and the last; Table 1's rules smooth by step, so they apply unchanged.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

from .config import RunConfig
from .runner import batch_cost, batch_label, plan, precompiled, train_batch
from .notebook import as_float_list, as_int_list, require, resolve

PAPER_RECORD = dict(record_dense=2000, record_every=20)
FULL_RECORD = dict(record_dense=0, record_every=1)

# The recovered captions of Figs. 12-19: figure -> (function, d_model, train share).
APPENDIX = {12: ("subtract", 128, 0.3), 13: ("mul", 128, 0.3), 14: ("x2_y2", 256, 0.2), 15: ("x3_y3", 128, 0.2),
            16: ("x2_xy_y2", 128, 0.3), 17: ("x2_xy_y2", 256, 0.3), 18: ("x2_xy_y2", 256, 0.4),
            19: ("x3_xy_y3", 256, 0.5)}

PROFILES = {
    "table1_square_strip": {
        # Table 1 (paper Section 6.1): p = 97, f = x + y, 1-layer transformer, frac 0.3, split seed 0.
        # offset_strip_t: strip rows trained a second time with the second operand fed as token j + strip_offset,
        # as the released strip code does (60), to measure what that offset does to the row.
        "paper": dict(p=97, frac_train=0.3, square_k=[30, 35, 40, 45, 50, 55, 60], strip_t=[40, 50, 60, 67],
                      n_seeds=4, n_split_seeds=2, split_seed=0, n_steps=30000, lr=1e-3, d_model=128,
                      operand_offset=0, offset_strip_t=[40, 50, 60, 67], strip_offset=60, **PAPER_RECORD),
        # p = 23 with the blocks scaled to cover about the same share of the table as at p = 97
        # (k + 1 ≈ (k_paper + 1) · 23 / 97 for k_paper = 30, 45, 60 and t_paper = 40, 50, 67); a larger train
        # share and learning rate so that the leftover pairs are learned within a few hundred steps.
        "quick": dict(p=23, frac_train=0.5, square_k=[6, 10, 13], strip_t=[9, 11, 15], n_seeds=1, n_split_seeds=1,
                      split_seed=0, n_steps=500, lr=1e-2, d_model=128, operand_offset=0, offset_strip_t=[],
                      strip_offset=60, **FULL_RECORD),
    },
    "fig2_layers": {
        # Fig. 2: transformer/base.py's setting (f = x + y, p = 97, random split, frac 0.5, split seed 11).
        "paper": dict(p=97, depths=[1, 2, 3, 4], frac_train=0.5, n_seeds=4, n_split_seeds=2, split_seed=11,
                      n_steps=30000, lr=1e-3, d_model=128, **PAPER_RECORD),
        # Deeper models cost much more per step on a CPU, so the quick version is tiny: p = 17, three depths.
        "quick": dict(p=17, depths=[1, 2, 3], frac_train=0.6, n_seeds=2, n_split_seeds=1, split_seed=11,
                      n_steps=400, lr=1e-2, d_model=64, **FULL_RECORD),
    },
    "fig4_x2xyy2_frac": {
        # Fig. 4 (Section 6.2): 1-layer transformer, p = 97, f = i^2 + ij + j^2, random split, frac 0.5/0.6/0.7.
        "paper": dict(p=97, fn="x2_xy_y2", fracs=[0.5, 0.6, 0.7], n_seeds=4, n_split_seeds=2, split_seed=0,
                      n_steps=30000, lr=1e-3, **PAPER_RECORD),
        # p = 23 and a larger learning rate: a few hundred steps show where each train share levels off.
        "quick": dict(p=23, fn="x2_xy_y2", fracs=[0.5, 0.6, 0.7], n_seeds=2, n_split_seeds=1, split_seed=0,
                      n_steps=300, lr=1e-2, **FULL_RECORD),
    },
    "fig5_med_primes": {
        # Fig. 5 (Section 6.3): the Section 6.1 transformer, f = x + y, a 30 % random train set.
        "paper": dict(primes=[47, 97, 211, 379], frac_train=0.3, n_seeds=4, n_split_seeds=2, split_seed=0,
                      n_steps=30000, lr=1e-3, **PAPER_RECORD),
        # Three small primes with a larger train share and learning rate, so that they grok within a few hundred steps.
        "quick": dict(primes=[17, 23, 31], frac_train=0.6, n_seeds=2, n_split_seeds=1, split_seed=0, n_steps=300,
                      lr=1e-2, **FULL_RECORD),
    },
    "figs12_19_functions": {
        "paper": dict(figures=list(APPENDIX), p=97, d_model=0, frac_train=0, n_seeds=4, n_split_seeds=2,
                      split_seed=0, n_steps=30000, lr=1e-3, **PAPER_RECORD),
        # p = 23, one width and a larger train share for all, a few hundred steps; one figure per function
        # (Figs. 17 and 18 differ from 16 only in width and train share, which the quick profile fixes).
        "quick": dict(figures=[12, 13, 14, 15, 16, 19], p=23, d_model=64, frac_train=0.5, n_seeds=1, n_split_seeds=1,
                      split_seed=0, n_steps=400, lr=1e-2, **FULL_RECORD),
    },
    "fig20_toeplitz": {
        # Fig. 20 (Appendix E): p = 97, x + y, random split ("k = 0"), d_model 128, train shares 0.3, 0.25, 0.2.
        "paper": dict(p=97, fracs=[0.3, 0.25, 0.2], embed_inits=["normal", "toeplitz", "circulant"], n_seeds=4,
                      n_split_seeds=2, split_seed=0, n_steps=30000, lr=1e-3, **PAPER_RECORD),
        # p = 23 with a large train share, which groks within a few hundred steps.
        "quick": dict(p=23, fracs=[0.6], embed_inits=["normal", "toeplitz", "circulant"], n_seeds=2, n_split_seeds=1,
                      split_seed=0, n_steps=400, lr=1e-2, **FULL_RECORD),
    },
}


def _count(name: str, value, least: int) -> int:
    require(isinstance(value, int) and not isinstance(value, bool) and value >= least, name, value,
            f"it must be an integer >= {least}")
    return value


def seed_pairs(S: dict) -> list[tuple[int, int]]:
    """(init seed, split seed) of every run of one setting: init seeds 0..n_seeds-1 crossed with
    split seeds split_seed..split_seed+n_split_seeds-1."""
    n_init = _count("n_seeds", S["n_seeds"], 1)
    n_split = _count("n_split_seeds", S["n_split_seeds"], 1)
    _count("split_seed", S["split_seed"], 0)
    return [(i, S["split_seed"] + k) for k in range(n_split) for i in range(n_init)]


def _common(S: dict) -> dict:
    return dict(n_steps=S["n_steps"], lr=S["lr"], record_dense=S["record_dense"], record_every=S["record_every"])


def _table1(S):
    S["square_k"] = as_int_list("square_k", S["square_k"])
    S["strip_t"] = as_int_list("strip_t", S["strip_t"])
    S["offset_strip_t"] = as_int_list("offset_strip_t", S["offset_strip_t"], empty_ok=True)
    require(isinstance(S["strip_offset"], int) and S["strip_offset"] > 0, "strip_offset", S["strip_offset"],
            "it must be a positive integer")
    base = RunConfig(p=S["p"], fn="add", frac_train=S["frac_train"], n_layers=1, d_model=S["d_model"], **_common(S))
    d = S["operand_offset"]
    settings = ([("square", k, d) for k in S["square_k"]] + [("strip", t, d) for t in S["strip_t"]]
                + [("strip", t, S["strip_offset"]) for t in S["offset_strip_t"]])
    return [base.replace(split=split, split_param=param, operand_offset=off, init_seed=i, split_seed=s)
            for split, param, off in settings for i, s in seed_pairs(S)]


def _fig2(S):
    S["depths"] = as_int_list("depths", S["depths"])
    require(all(d >= 1 for d in S["depths"]), "depths", S["depths"], "every depth must be >= 1")
    return [RunConfig(p=S["p"], fn="add", split="random", frac_train=S["frac_train"], n_layers=d,
                      d_model=S["d_model"], init_seed=i, split_seed=s, **_common(S))
            for d in S["depths"] for i, s in seed_pairs(S)]


def _fig4(S):
    S["fracs"] = as_float_list("fracs", S["fracs"])
    return [RunConfig(p=S["p"], fn=S["fn"], split="random", frac_train=f, init_seed=i, split_seed=s, **_common(S))
            for f in S["fracs"] for i, s in seed_pairs(S)]


def _fig5(S):
    S["primes"] = as_int_list("primes", S["primes"])
    return [RunConfig(p=q, fn="add", split="random", frac_train=S["frac_train"], init_seed=i, split_seed=s,
                      **_common(S)) for q in S["primes"] for i, s in seed_pairs(S)]


def appendix_setting(S: dict, fig: int) -> tuple[str, int, float]:
    """(function, d_model, train share) of an appendix figure under the settings S (0 = the figure's own)."""
    fn, width, frac = APPENDIX[fig]
    return fn, S["d_model"] or width, S["frac_train"] or frac


def _figs12_19(S):
    S["figures"] = as_int_list("figures", S["figures"])
    require(all(f in APPENDIX for f in S["figures"]), "figures", S["figures"], f"choose from {sorted(APPENDIX)}")
    require(S["d_model"] == 0 or (isinstance(S["d_model"], int) and S["d_model"] > 0), "d_model", S["d_model"],
            "use 0 (each figure's own width) or a positive integer")
    require(S["frac_train"] == 0 or 0 < S["frac_train"] < 1, "frac_train", S["frac_train"],
            "use 0 (each figure's own share) or a number in (0, 1)")
    out = []
    for f in S["figures"]:
        fn, width, frac = appendix_setting(S, f)
        out += [RunConfig(p=S["p"], fn=fn, d_model=width, frac_train=frac, split="random", init_seed=i,
                          split_seed=s, **_common(S)) for i, s in seed_pairs(S)]
    return out


def _fig20(S):
    S["fracs"] = as_float_list("fracs", S["fracs"])
    if isinstance(S["embed_inits"], str):
        S["embed_inits"] = [s.strip() for s in S["embed_inits"].split(",") if s.strip()]
    require(isinstance(S["embed_inits"], list) and len(S["embed_inits"]) > 0
            and all(e in ("normal", "toeplitz", "circulant") for e in S["embed_inits"]),
            "embed_inits", S["embed_inits"], "give a list from 'normal', 'toeplitz', 'circulant'")
    return [RunConfig(p=S["p"], fn="add", split="random", frac_train=f, embed_init=e, init_seed=i, split_seed=s,
                      **_common(S)) for f in S["fracs"] for e in S["embed_inits"] for i, s in seed_pairs(S)]


BUILD = {"table1_square_strip": _table1, "fig2_layers": _fig2, "fig4_x2xyy2_frac": _fig4,
         "fig5_med_primes": _fig5, "figs12_19_functions": _figs12_19, "fig20_toeplitz": _fig20}


def setup(chapter: str, profile: str, given: dict) -> tuple[dict, list[RunConfig]]:
    """The chapter's resolved settings (profile values with `given` non-None values over them,
    lists normalised) and its run configs. Bad values raise ValueError naming the parameter."""
    if chapter not in PROFILES:
        raise ValueError(f"chapter={chapter!r} is not allowed; choose one of {', '.join(PROFILES)}")
    S = resolve(PROFILES[chapter], profile, given)
    return S, BUILD[chapter](S)


def paper_configs(chapters=None) -> dict[str, list[RunConfig]]:
    """Every chapter's paper-profile runs."""
    return {c: setup(c, "paper", {})[1] for c in (chapters or PROFILES)}


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
    claims.mkdir(parents=True, exist_ok=True)
    for b in batches:
        name = hashlib.sha256(" ".join(sorted(c.key() for c in b)).encode()).hexdigest()[:16]
        try:
            os.close(os.open(claims / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        yield b


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m grok_core.programme",
                                 description="List or train the paper-profile runs of the book's chapters.")
    ap.add_argument("action", choices=["list", "run", "manifest"],
                    help="list: what a shard would train; run: train it; manifest: write results/manifest.csv")
    ap.add_argument("--chapters", default=",".join(PROFILES), help="comma list of chapters (default: all)")
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
