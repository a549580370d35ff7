"""How far the quick profiles' claim numbers move between seeds: the spread the quick-profile bands of
tests/test_chapter_claims.py are set against. Training is chaotic, so another machine's rounding moves a
run about as far as another seed does; the bands must hold for every seed pair measured here.

    python scripts/quick_spread.py train --init-seeds 8 --split-seeds 2       # into $GROKBOOK_RESULTS
    python scripts/quick_spread.py summarise --init-seeds 8 --split-seeds 2 --out results/quick_spread.json

`train` needs only torch (it runs on a GPU machine too); `summarise` reads the same store and needs scipy.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grok_core.chapters import names, setup  # noqa: E402
from grok_core.runner import load_or_train  # noqa: E402
from grok_core.store import RunStore  # noqa: E402


def quick_configs(chapter: str, init_seeds: int, split_seeds: int):
    return setup(chapter, "quick", {"n_seeds": init_seeds, "n_split_seeds": split_seeds})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["train", "summarise"])
    ap.add_argument("--init-seeds", type=int, default=8)
    ap.add_argument("--split-seeds", type=int, default=2)
    ap.add_argument("--out", help="summarise: write the per-run numbers here as JSON")
    args = ap.parse_args(argv)
    store = RunStore()
    report = {}
    for chapter in (n for n in names("claims") if n in names("run_configs")):   # chapters that train
        S, configs = quick_configs(chapter, args.init_seeds, args.split_seeds)
        runs = load_or_train(configs, store=store, progress=False, train=args.what == "train", max_batch=256)
        if args.what == "train":
            print(f"{chapter}: {len(runs)} runs on {runs[0].meta['device']}", flush=True)
            continue
        from grok_core.chapters.claims import chapter_claims
        report[chapter] = {"device": sorted({r.meta["device"] for r in runs}), **chapter_claims(chapter, S, runs)}
    if args.what == "summarise" and args.out:
        from grok_core.chapters.claims import json_safe
        Path(args.out).write_text(json.dumps(json_safe({"init_seeds": args.init_seeds, "split_seeds": args.split_seeds,
                                                     "chapters": report}), indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
