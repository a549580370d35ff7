"""Time to grok: what a grokked seed costs on one device, with each run stopping once it has grokked.

Usage (from the repository root):
    python bench/time_to_grok.py                                # on one GPU: both settings, 64 seeds each
    python bench/time_to_grok.py --ref .ref/Grokking-Insight    # also the released code's step, for its ratio
    python bench/time_to_grok.py --compile                      # the step through torch.compile
    python bench/time_to_grok.py --device cpu --quick           # smoke test

Settings (--only): p97 (x+y mod 97, random split, frac 0.3) and p47 (mod 47, frac 0.6), the paper's 1-layer
transformer, AdamW lr 1e-3, wd 1, strict fp32; p97_tuned, p97 with the race chapter's cheapest method per grokked
seed (AdamW lr 3e-3, wd 3); --seeds runs each (init and split seed r), every one a run of
the batched engine with a stop rule (RunConfig.stop_acc, stop_hold, stop_after; grok_core.stopping): it stops
once its test accuracy has stayed >= --stop-acc at every recorded step for --stop-hold steps (recorded every
--record-every steps), or at the --budget of steps. Stopped runs leave the batch once a quarter of its rows have
stopped (each compaction captures the CUDA graphs again; compiled: half, since each compiles the step again; on a
CPU at once; --compact-share sets the share).

GPU-seconds are the wall-clock seconds of the one device from building the batch to its last run's end:
set-up, graph capture (and compilation) and every compaction included. Per grokked seed: those seconds over
the seeds whose hold was met within the budget. Beside it, on the same device:
- the fixed budget: the same batch without stop rules, its step timed (recorded and train-only steps, weighed by
  the share recorded) times the budget: what training every run to the budget costs per grokked seed;
- with --ref, the released code (github.com/Qihuai27/Grokking-Insight, imported and driven through its own
  do_a_training_step, as bench/headline.py does): its step timed on one seed, times each seed's steps to grok
  (the first recorded step at stop_acc, as if stopped by hand there, which favours it; the budget for a seed that
  does not grok) over the grokked seeds.
Printed and written under --out as time_to_grok[_compiled]_<device>.txt / .json.

--quick is a smoke test on a CPU (p=23 and p=11, small models, 4 seeds, 300 steps, lr 1e-2, stop at 0.5);
its numbers are not comparable.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import arguments, chosen_parts, configs_for, Report, sync, time_recorded_and_train_only  # noqa: E402
from bench.headline import released_step_seconds                                         # noqa: E402
from grok_core.config import RunConfig                                                   # noqa: E402
from grok_core.train import Trainer                                                      # noqa: E402

# p97_tuned: the race chapter's cheapest row per grokked seed on the paper's setting, AdamW at lr 3e-3 and wd 3
SETTINGS = {"p97": dict(p=97, frac_train=0.3), "p47": dict(p=47, frac_train=0.6),
            "p97_tuned": dict(p=97, frac_train=0.3, lr=3e-3, wd=3.0)}
QUICK_SETTINGS = {"p97": dict(p=23, frac_train=0.5, d_model=32, lr=1e-2),
                  "p47": dict(p=11, frac_train=0.6, d_model=16, n_heads=2, d_mlp=32, lr=1e-2),
                  "p97_tuned": dict(p=23, frac_train=0.5, d_model=32, lr=3e-2, wd=3.0)}
QUICK_RUN = dict(seeds=4, budget=300, stop_acc=0.5, stop_hold=20)


def quantiles(xs: list[int]) -> dict | None:
    """Median, quartiles and largest of a list of steps (None when empty)."""
    if not xs:
        return None
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return {"median": statistics.median(xs), "q1": q[0], "q3": q[2], "max": max(xs)}


def train_until_grokked(configs: list[RunConfig], dev, compile: bool, compact_share: float | None) -> dict:
    """The batch trained to its end with its stop rules, timed whole; each run's outcome and the batch's sizes."""
    sync(dev)
    t0 = time.perf_counter()
    tr = Trainer(configs, dev, compile=compile, compact_share=compact_share)
    sizes = [(0, len(tr.rows))]
    while not tr.done:
        tr.train_step()
        if len(tr.rows) != sizes[-1][1]:
            sizes.append((tr.step, len(tr.rows)))
    sync(dev)
    wall = time.perf_counter() - t0
    runs = {r.config.key(): r for r in tr.stopped + tr.results()}
    out = []
    for c in configs:
        r = runs[c.key()]
        held = r.stop["stop_held"]
        out.append({"init_seed": c.init_seed, "grokked": held is not None, "reached_at": held and held[0],
                    "held_at": held and held[1], "stopped_at": r.stop["stopped_at"],
                    "steps_trained": r.stop["stopped_at"] or c.n_steps})
    return {"wall_s": wall, "runs": out, "batch_sizes": sizes, "last_step": tr.step}


def time_released(ref: Path, cfg: RunConfig, dev, n_steps: int = 20) -> float:
    """Seconds per step of one run of the released code at cfg's p and train share."""
    return released_step_seconds(ref, "transformer/base.py", dev, cfg.p, cfg.frac_train, 1, n_steps)


def measure(report: Report, name: str):
    args = report.args
    run = QUICK_RUN if report.quick else dict(seeds=args.seeds, budget=args.budget, stop_acc=args.stop_acc,
                                              stop_hold=args.stop_hold)
    setting = (QUICK_SETTINGS if report.quick else SETTINGS)[name]
    cfg = RunConfig(**setting, n_steps=run["budget"], record_dense=0, record_every=args.record_every,
                    stop_acc=run["stop_acc"], stop_hold=run["stop_hold"], stop_after=args.stop_after)
    seeds = run["seeds"]
    unit = "GPU-s" if report.cuda else "CPU-s"
    rule = (f"test_acc >= {cfg.stop_acc:g} at every recorded step for {cfg.stop_hold} steps, then {cfg.stop_after} "
            f"more; recorded every {cfg.record_every} steps; budget {cfg.n_steps} steps")
    report.say(f"{name}: p={cfg.p}, frac {cfg.frac_train}, d_model {cfg.d_model}, lr {cfg.lr:g}, wd {cfg.wd:g}, {seeds} seeds; "
               f"stop: {rule}" + ("; compiled" if args.compile else ""))
    got = train_until_grokked(configs_for(cfg, seeds), report.dev, args.compile, args.compact_share)
    grokked = [r for r in got["runs"] if r["grokked"]]
    n = len(grokked)
    res = {"setting": setting, "seeds": seeds, "rule": rule, "compiled": args.compile, **got,
           "grokked": n, "share_grokked": n / seeds,
           "reached_at": quantiles([r["reached_at"] for r in grokked]),
           "stopped_at": quantiles([r["stopped_at"] for r in grokked if r["stopped_at"] is not None]),
           "run_steps": sum(r["steps_trained"] for r in got["runs"])}
    per = res["gpu_s_per_grokked_seed"] = got["wall_s"] / n if n else None
    report.say(f"  grokked {n}/{seeds} ({n / seeds:.0%}) within {cfg.n_steps} steps; first at stop_acc: "
               + (f"median {res['reached_at']['median']:g}, IQR {res['reached_at']['q1']:g}-{res['reached_at']['q3']:g}, "
                  f"max {res['reached_at']['max']}" if n else "none"))
    report.say(f"  with per-run stopping: {got['wall_s']:.2f} {unit} for the batch ({res['run_steps']:,} run-steps, the "
               f"last run ending at step {got['last_step']}; batch sizes {' '.join(f'{r}@{s}' for s, r in got['batch_sizes'])})"
               + (f" = {per:.3f} {unit} per grokked seed" if n else ""))

    plain = [c.replace(stop_acc=0, stop_hold=0, stop_after=0) for c in configs_for(cfg, seeds)]
    step = time_recorded_and_train_only(plain, report.dev, n_steps=5 if report.quick else 20, compile=args.compile)
    fixed = step["ms_per_step_mixed"] / 1e3 * cfg.n_steps
    res["fixed_budget"] = {**step, "gpu_s": fixed, "gpu_s_per_grokked_seed": fixed / n if n else None}
    if n:
        res["fixed_budget"]["ratio_to_stopping"] = fixed / got["wall_s"]
    report.say(f"  fixed budget, no stopping: {step['ms_per_step_mixed']:.3f} ms per step of {seeds} runs x "
               f"{cfg.n_steps} steps = {fixed:.1f} {unit}" + (f" = {fixed / n:.3f} per grokked seed: x{fixed / got['wall_s']:.1f} "
                                                              "the cost with stopping" if n else ""))

    if args.ref:
        s = time_released(args.ref, cfg, report.dev)
        paid = sum(r["reached_at"] if r["grokked"] else cfg.n_steps for r in got["runs"])
        res["released"] = {"ms_per_step": s * 1e3, "steps_paid": paid,
                           "gpu_s_per_grokked_seed": s * paid / n if n else None}
        if n:
            res["released"]["ratio_to_ours"] = s * paid / got["wall_s"]
        report.say(f"  released code: {s * 1e3:.1f} ms per step x {paid:,} steps (each seed to its first step at "
                   f"stop_acc, or the budget)" + (f" = {s * paid / n:.1f} {unit} per grokked seed: x{s * paid / got['wall_s']:,.0f} "
                                                  "ours with stopping" if n else ""))
    report.res.setdefault("settings", {})[name] = res
    report.table.append({"setting": name, "grokked": n, "seeds": seeds, "gpu_s": got["wall_s"],
                         "gpu_s_per_grokked_seed": per,
                         "fixed_budget_gpu_s_per_grokked_seed": res["fixed_budget"]["gpu_s_per_grokked_seed"],
                         "released_gpu_s_per_grokked_seed": res.get("released", {}).get("gpu_s_per_grokked_seed")})


PARTS = {name: (lambda report, name=name: measure(report, name)) for name in SETTINGS}


def main():
    ap = arguments(__doc__, "smoke test on a CPU: p=23 and p=11, 4 seeds, 300 steps (numbers not comparable)",
                   list(PARTS))
    ap.add_argument("--seeds", type=int, default=64, help="runs per setting (default 64)")
    ap.add_argument("--budget", type=int, default=30000, help="most steps a run trains (default 30000)")
    ap.add_argument("--stop-acc", type=float, default=0.95, help="test accuracy that counts as grokked (default 0.95)")
    ap.add_argument("--stop-hold", type=int, default=200, help="steps it must hold at every recorded step (default 200)")
    ap.add_argument("--stop-after", type=int, default=0, help="steps trained after the hold is met (default 0)")
    ap.add_argument("--record-every", type=int, default=10, help="steps between recorded steps (default 10)")
    ap.add_argument("--compile", action="store_true", help="run the step through torch.compile")
    ap.add_argument("--compact-share", type=float, default=None, help="stopped runs leave the batch once they are this "
                    "share of its rows (default: 0.25 with CUDA graphs; compiled, 0.5; on a CPU at once)")
    ap.add_argument("--ref", type=Path, default=None, help="checkout of the released code, for its ratio")
    args = ap.parse_args()
    report = Report(args, "time_to_grok_compiled" if args.compile else "time_to_grok")
    report.res["setting"] = ("1-layer transformer, d_model 128, 4 heads, d_mlp 512, x+y, random split, AdamW lr 1e-3 "
                             "wd 1 (p97_tuned: lr 3e-3, wd 3), full batch, per-run stopping")
    report.run(PARTS, chosen_parts(ap, args, list(PARTS)))


if __name__ == "__main__":
    main()
