"""Command line: `grok run|list|show` (also `python -m grok_core`).

  grok run --set p=47 --set frac_train=0.6 --seeds 4      one config, four seeds
  grok run sweep.yaml                                    configs from a YAML/JSON file
  grok list                                              what the run store holds
  grok show KEY                                          one stored run: config, metadata, summary

A config file holds one mapping of RunConfig fields, a list of them, or
{base: {...}, grid: {field: [values, ...]}, seeds: N}: the grid's product, each with N seeds.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import yaml

from .analysis import steps_to_threshold
from .config import RunConfig
from .store import RunStore


def with_seeds(cfg: RunConfig, n: int) -> list[RunConfig]:
    """n runs whose init and split seeds both step from the config's own (independent generators)."""
    return [cfg.replace(init_seed=cfg.init_seed + s, split_seed=cfg.split_seed + s) for s in range(n)]


def configs_from_spec(spec, overrides: dict | None = None, seeds: int | None = None) -> list[RunConfig]:
    """Expand a parsed config file (mapping, list, or base/grid/seeds) into RunConfigs."""
    overrides = overrides or {}
    if isinstance(spec, list):
        return [c for item in spec for c in configs_from_spec(item, overrides, seeds)]
    if not isinstance(spec, dict):
        raise ValueError(f"a config file must hold a mapping or a list of mappings, not {type(spec).__name__}")
    if {"base", "grid", "seeds"} & set(spec):
        extra = set(spec) - {"base", "grid", "seeds"}
        if extra:
            raise ValueError(f"unknown key(s) {sorted(extra)} beside base/grid/seeds")
        base, grid = spec.get("base") or {}, spec.get("grid") or {}
        n = seeds or int(spec.get("seeds", 1))
        names = list(grid)
        out = []
        for values in itertools.product(*(grid[k] if isinstance(grid[k], list) else [grid[k]] for k in names)):
            cfg = RunConfig.from_dict({**base, **dict(zip(names, values)), **overrides})
            out += with_seeds(cfg, n)
        return out
    return with_seeds(RunConfig.from_dict({**spec, **overrides}), seeds or 1)


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected field=value, e.g. --set p=47")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def summarize(history: dict) -> dict:
    """Steps trained and recorded, final accuracies, and the first recorded steps at which train
    accuracy reaches 1.0 and test accuracy 0.95."""
    steps = history["step"]
    return {"steps": int(steps[-1]) + 1, "recorded_steps": int(len(steps)),
            "final_train_acc": float(history["train_acc"][-1]), "final_test_acc": float(history["test_acc"][-1]),
            "train_acc_1_at": steps_to_threshold(history["train_acc"], 1.0, steps),
            "test_acc_95_at": steps_to_threshold(history["test_acc"], 0.95, steps)}


def _table(rows: list[dict], cols: list[str]) -> str:
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c) for i, c in enumerate(cols)]
    line = lambda xs: "  ".join(x.ljust(w) for x, w in zip(xs, widths))
    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(x) for x in cells])


def _fmt(x):
    return "-" if x is None else f"{x:.4f}" if isinstance(x, float) else x


def cmd_run(args, store: RunStore) -> int:
    from .runner import load_or_train
    overrides = _parse_set(args.set)
    if args.files:
        configs = []
        for f in args.files:
            text = Path(f).read_text()
            spec = json.loads(text) if f.endswith(".json") else yaml.safe_load(text)
            configs += configs_from_spec(spec, overrides, args.seeds)
    else:
        configs = configs_from_spec(overrides, None, args.seeds)
    runs = load_or_train(configs, store=store, device=args.device, max_batch=args.max_batch,
                         ckpt_every=args.ckpt_every, save_weights=args.save_weights)
    rows = []
    for run in runs:
        c, s = run.config, summarize(run.history)
        rows.append({"key": run.key, "p": c.p, "fn": c.fn, "split": f"{c.split}:{c.split_param}", "frac": c.frac_train,
                     "seeds": f"{c.init_seed}/{c.split_seed}", **{k: _fmt(v) for k, v in s.items()}})
    print(_table(rows, ["key", "p", "fn", "split", "frac", "seeds", "steps", "final_train_acc", "final_test_acc",
                        "train_acc_1_at", "test_acc_95_at"]))
    return 0


def cmd_list(args, store: RunStore) -> int:
    rows = []
    for meta in store.list():
        c = meta["config"]
        rows.append({"key": meta["key"], "model": f"{c['model']}x{c['n_layers']}", "p": c["p"], "fn": c["fn"],
                     "split": f"{c['split']}:{c['split_param']}", "frac": c["frac_train"],
                     "seeds": f"{c['init_seed']}/{c['split_seed']}", "steps": c["n_steps"],
                     "device": meta.get("device", "?"), "wall_s": meta.get("wall_time_s", "?")})
    print(_table(rows, ["key", "model", "p", "fn", "split", "frac", "seeds", "steps", "device", "wall_s"]))
    print(f"{len(rows)} run(s) in {store.runs_dir}")
    return 0


def cmd_show(args, store: RunStore) -> int:
    matches = [m for m in store.list() if m["key"].startswith(args.key)]
    if len(matches) != 1:
        print(f"{len(matches)} stored runs match {args.key!r}; give more of the key", file=sys.stderr)
        return 1
    run = store.get(RunConfig.from_dict(matches[0]["config"]))
    if run is None:
        print(f"run {args.key} was damaged and has been moved aside", file=sys.stderr)
        return 1
    print(json.dumps({"meta": run.meta, "summary": summarize(run.history)}, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="grok", description="Train and inspect grokking runs (grokbook).")
    ap.add_argument("--results", help="run store root (default: $GROKBOOK_RESULTS or <repo>/results)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train configs (stored runs are reused, interrupted ones resumed)")
    r.add_argument("files", nargs="*", help="YAML or JSON config files")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a RunConfig field")
    r.add_argument("--seeds", type=int, help="runs per config (init and split seeds step together from the config's)")
    r.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    r.add_argument("--max-batch", type=int, default=64, help="most runs trained in one batch")
    r.add_argument("--ckpt-every", type=int, default=1000, help="steps between checkpoints")
    r.add_argument("--save-weights", action="store_true", help="also store the final weights of new runs")
    sub.add_parser("list", help="list stored runs")
    s = sub.add_parser("show", help="show one stored run")
    s.add_argument("key", help="a run key or a unique prefix of one")
    args = ap.parse_args(argv)
    store = RunStore(args.results)
    try:
        return {"run": cmd_run, "list": cmd_list, "show": cmd_show}[args.cmd](args, store)
    except (ValueError, LookupError, OSError) as err:
        print(f"grok: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
