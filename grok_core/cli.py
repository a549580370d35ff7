"""Command line: `grok run|list|show|gc|resnet` (also `python -m grok_core`).

  grok run --set p=47 --set frac_train=0.6 --seeds 4      one config, four seeds
  grok run sweep.yaml                                    configs from a YAML/JSON file
  grok list                                              what the run store holds
  grok show KEY                                          one stored run: config, metadata, summary
  grok list --all; grok gc [--yes]                       leftovers (temporary files, damaged copies, done checkpoints)
  grok resnet --n-epochs 4000 --time-limit 540           one ResNet-18 run (Figs. 6-7), in resumable segments
Ctrl-C (or SIGTERM) during `grok run` writes a checkpoint and exits with one line; the same command resumes.
Under torchrun (`torchrun --nproc-per-node=N -m grok_core run sweep.yaml`) the processes share the batches.

A config file holds one mapping of RunConfig fields, a list of them, or
{base: {...}, grid: {field: [values, ...]}, seeds: N}: the grid's product, each with N seeds.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
from pathlib import Path

import yaml

from .analysis import steps_to_threshold
from .config import RunConfig, positive_int
from .resnet.config import ResNetConfig
from .store import RunStore


def with_seeds(cfg: RunConfig, n) -> list[RunConfig]:
    """n runs whose init and split seeds both step from the config's own (independent generators);
    n is an integer >= 1 wherever it comes from (--seeds, a file's seeds)."""
    n = positive_int("seeds", n)
    return [cfg.replace(init_seed=cfg.init_seed + s, split_seed=cfg.split_seed + s) for s in range(n)]


def configs_from_spec(spec, overrides: dict | None = None, seeds=None) -> list[RunConfig]:
    """Expand a parsed config file (mapping, list, or base/grid/seeds) into RunConfigs; seeds, when
    given, replaces the file's."""
    overrides = overrides or {}
    if isinstance(spec, list):
        return [c for item in spec for c in configs_from_spec(item, overrides, seeds)]
    if not isinstance(spec, dict):
        raise ValueError(f"a config file must hold a mapping or a list of mappings, not {type(spec).__name__}")
    if {"base", "grid", "seeds"} & set(spec):
        extra = set(spec) - {"base", "grid", "seeds"}
        if extra:
            raise ValueError(f"unknown key(s) {sorted(extra, key=str)} beside base/grid/seeds")
        base = {} if spec.get("base") is None else spec["base"]
        grid = {} if spec.get("grid") is None else spec["grid"]
        if not isinstance(base, dict):
            raise ValueError(f"base={base!r} is not allowed; it must be a mapping of RunConfig fields")
        if not isinstance(grid, dict):
            raise ValueError(f"grid={grid!r} is not allowed; it must map RunConfig fields to lists of values")
        axes = {k: v if isinstance(v, list) else [v] for k, v in grid.items()}
        for k, v in axes.items():
            if not v:
                raise ValueError(f"grid {k}=[] is not allowed; give at least one value")
        n = spec.get("seeds", 1) if seeds is None else seeds
        return [c for values in itertools.product(*axes.values())
                for c in with_seeds(RunConfig.from_dict({**base, **dict(zip(axes, values)), **overrides}), n)]
    return with_seeds(RunConfig.from_dict({**spec, **overrides}), 1 if seeds is None else seeds)


def _yaml(text: str, what: str):
    """yaml.safe_load, with a parse error as one line naming `what` and the place (PyYAML's spans several)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{what} is not valid YAML{at}: {getattr(err, 'problem', None) or err}") from err


def _read_spec(path: str):
    """A config file's contents, parsed as JSON (.json) or YAML."""
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text file ({err.reason})") from err
    if not path.endswith(".json"):
        return _yaml(text, path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _parse_set(items: list[str]) -> dict:
    """--set field=value pairs; each value is read as YAML (47, 0.3, true, mul)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected field=value, e.g. --set p=47")
        k, v = item.split("=", 1)
        out[k.strip()] = _yaml(v, f"--set {item!r}")
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


def _count(option: str, value) -> int:
    """A count option (an int default, or the user's text, read as YAML like a --set value)."""
    return positive_int(option, _yaml(value, option) if isinstance(value, str) else value)


def cmd_run(args, store: RunStore) -> int:
    """Every input is checked, and new runs are sized against the device, before anything trains."""
    from . import budget, distributed
    from .runner import load_or_train
    overrides = _parse_set(args.set)
    seeds = None if args.seeds is None else _yaml(args.seeds, "--seeds")
    max_batch, ckpt_every = _count("--max-batch", args.max_batch), _count("--ckpt-every", args.ckpt_every)
    launch = distributed.join()
    device = distributed.device(launch, args.device)
    if args.files:
        configs = []
        for f in args.files:
            configs += configs_from_spec(_read_spec(f), overrides, seeds)
        if not configs:
            raise ValueError(f"{', '.join(args.files)}: no configs to run")
    else:
        configs = configs_from_spec(overrides, None, seeds)
    if not args.force:
        budget.check([c for c in configs if not store.entry(c.key()).exists()], device, max_batch,
                     budget.MAX_HOURS * launch.world_size)    # the estimate is for one device
    if launch.torchrun:                 # the batches are shared by torchrun's processes; rank 0 shows the runs
        store.check_writable()
        distributed.train_shared(launch, configs, store, device, max_batch=max_batch, ckpt_every=ckpt_every,
                                 save_weights=args.save_weights, gather=args.gather)
        if launch.rank != 0:
            return 0
    runs = load_or_train(configs, store=store, device=device, max_batch=max_batch,
                         ckpt_every=ckpt_every, save_weights=args.save_weights, train=not launch.torchrun)
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
    for key, reason in store.damaged():
        print(f"damaged entry {key}: {reason} (moved aside when next asked for)")
    if args.all:
        leftovers = store.leftovers()
        garbage = {item.path for item in leftovers}
        for ck in store.checkpoints():
            if ck.error is None and ck.path not in garbage:
                print(f"checkpoint {ck.path}: {len(ck.configs)} run(s) at step {ck.step} of {ck.configs[0].n_steps}")
        for item in leftovers:
            print(f"leftover {item.path}: {item.what}, {item.size} bytes")
        print(f"{len(leftovers)} leftover(s), {sum(i.size for i in leftovers)} bytes; grok gc removes them")
    return 0


def cmd_gc(args, store: RunStore) -> int:
    """Leftovers only cost space (nothing reads them), so they go on request: --yes removes, else a dry run."""
    items = store.leftovers()
    for item in items:
        if args.yes:
            store.remove(item)
        print(f"{'removed' if args.yes else 'would remove'} {item.path} ({item.what}, {item.size} bytes)")
    total = f"{len(items)} item(s), {sum(i.size for i in items)} bytes"
    print(f"removed {total}" if args.yes else f"{total}; grok gc --yes removes them" if items
          else f"nothing to remove in {store.root}")
    return 0


def cmd_show(args, store: RunStore) -> int:
    matches = [m for m in store.list() if m["key"].startswith(args.key)]
    damaged = [(k, why) for k, why in store.damaged() if k.startswith(args.key)] if not matches else []
    if len(damaged) == 1:
        print(f"run {damaged[0][0]} is damaged: {damaged[0][1]}", file=sys.stderr)
        return 1
    if len(matches) != 1:
        print(f"{len(matches)} stored runs match {args.key!r}; give more of the key", file=sys.stderr)
        return 1
    run = store.get(RunConfig.from_dict(matches[0]["config"]))
    if run is None:
        print(f"run {args.key} was damaged and has been moved aside", file=sys.stderr)
        return 1
    print(json.dumps({"meta": run.meta, "summary": summarize(run.history)}, indent=1))
    return 0


def add_resnet_options(ap: argparse.ArgumentParser):
    """Every ResNetConfig field as an option (--n-epochs, --amp-bf16, ...), then how to train and carry the run."""
    for f in dataclasses.fields(ResNetConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(flag, action="store_true")
        else:
            ap.add_argument(flag, type={"int": int, "float": float, "str": str}[f.type], default=f.default)
    ap.add_argument("--time-limit", type=float, default=None, help="seconds; stop and checkpoint after this")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    ap.add_argument("--import-from", nargs="*", default=(), help="folders holding checkpoint shards from "
                    "--export-to; reassembled into the checkpoint folder when no local checkpoint exists")
    ap.add_argument("--export-to", default=None, help="after training, write the checkpoint as shards (and the "
                    "store entry, when finished) into this folder")
    ap.add_argument("--export-parts", default=None, help="shard numbers to write, e.g. 0-3 (default: all)")
    ap.add_argument("--export-only", action="store_true", help="train nothing: only export the existing checkpoint "
                    "(so that shards written by several calls come from one and the same checkpoint)")


def resnet_config_from_args(args: argparse.Namespace) -> ResNetConfig:
    return ResNetConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ResNetConfig)})


def resnet_command(cfg: ResNetConfig) -> str:
    """The command line that trains cfg: the mode and every setting that differs from its default."""
    default = ResNetConfig(mode=cfg.mode)
    parts = ["grok resnet", f"--mode {cfg.mode}"]
    for f in dataclasses.fields(ResNetConfig):
        value = getattr(cfg, f.name)
        if f.name == "mode" or value == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        parts.append(flag if value is True else f"{flag} {value}")
    return " ".join(parts)


def _parts(text: str | None):
    """'0-3' -> range(0, 4); '8' -> range(8, 9); None -> None (all)."""
    if not text:
        return None
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def cmd_resnet(args, store: RunStore) -> int:
    """Train one ResNet-18 run, resuming its checkpoint, into <results root>/resnet-runs; 3 when the time limit
    stopped it first (the same command continues)."""
    import torch
    from .resnet.shards import export_checkpoint, import_checkpoint
    from .resnet.train import ResNetStore, train_resnet
    cfg = resnet_config_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    store = ResNetStore(store.root)
    ckpt = store.resnet_checkpoint(cfg)
    if args.import_from and not ckpt.exists():
        got = import_checkpoint(args.import_from, ckpt.parent)
        print(f"imported checkpoint {got}" if got else "no complete checkpoint among the shards given")
    if args.export_only:
        run = store.get(cfg)
    else:
        run = train_resnet(cfg, store, device=args.device, time_limit=args.time_limit, ckpt_every=args.ckpt_every,
                           log_every=args.log_every)
    if args.export_to:
        out = Path(args.export_to)
        if ckpt.exists():
            written = export_checkpoint(ckpt, out, parts=_parts(args.export_parts))
            print("exported", ", ".join(p.name for p in written))
        if run is not None:
            entry = out / f"run-{run.key}"
            entry.mkdir(parents=True, exist_ok=True)
            for f in store.entry(run.key).iterdir():
                (entry / f.name).write_bytes(f.read_bytes())
            print(f"exported the store entry to {entry}")
    if run is None:
        print(f"not finished (epoch < {cfg.n_epochs}); checkpoint kept, run the same command again to continue")
        return 3
    print(json.dumps({"key": run.key, **{k: run.meta.get(k) for k in ("epochs_per_s", "train_s", "eval_s",
                                                                         "grok_epoch_95", "grok_wall_s", "device")}}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="grok", description="Train and inspect grokking runs (grokbook).")
    ap.add_argument("--results", help="run store root (default: $GROKBOOK_RESULTS or <repo>/results)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train configs (stored runs are reused, interrupted ones resumed)")
    r.add_argument("files", nargs="*", help="YAML or JSON config files")
    r.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a RunConfig field")
    r.add_argument("--seeds", help="runs per config (init and split seeds step together from the config's)")
    r.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when present)")
    r.add_argument("--max-batch", default=64, help="most runs trained in one batch")
    r.add_argument("--ckpt-every", default=1000, help="steps between checkpoints")
    r.add_argument("--save-weights", action="store_true", help="also store the final weights of new runs")
    r.add_argument("--gather", action="store_true", help="under torchrun, for hosts that share no filesystem: every "
                   "process trains into its own run store and sends each finished run to rank 0, which writes it "
                   "into its store")
    r.add_argument("--force", action="store_true", help="train even what the estimate of memory and time "
                   "(grok_core.budget) refuses: runs that do not fit in memory or train for over a day")
    ls = sub.add_parser("list", help="list stored runs (and damaged entries)")
    ls.add_argument("--all", action="store_true", help="also checkpoints in progress and leftovers (what gc removes)")
    s = sub.add_parser("show", help="show one stored run")
    s.add_argument("key", help="a run key or a unique prefix of one")
    g = sub.add_parser("gc", help="remove leftovers: temporary files of ended writers, entries and checkpoints "
                       "moved aside, checkpoints whose runs are all stored (a dry run unless --yes)")
    g.add_argument("--yes", action="store_true", help="remove them (default: only print what would go)")
    add_resnet_options(sub.add_parser(
        "resnet", help="train one ResNet-18 run on the polygon-sum images (Figs. 6-7), resuming where the last call "
        "stopped", description="Train ResNet-18 on the polygon-sum images, resuming where the last call stopped; the "
        "finished run goes into the run store (<results root>/resnet-runs)."))
    args = ap.parse_args(argv)
    store = RunStore(args.results)
    try:
        return {"run": cmd_run, "list": cmd_list, "show": cmd_show, "gc": cmd_gc,
                "resnet": cmd_resnet}[args.cmd](args, store)
    except (ValueError, LookupError, OSError) as err:
        print("grok: error:", " ".join(str(err).split()), file=sys.stderr)      # always one line
        return 2
    except KeyboardInterrupt as err:    # Ctrl-C or SIGTERM: one line (training wrote its checkpoint), no traceback
        print(f"grok: {str(err) or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(err, "signum", 2)                      # 130 for SIGINT, 143 for SIGTERM


if __name__ == "__main__":
    sys.exit(main())
