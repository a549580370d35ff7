"""The paper's modular programme as the runner trains it: every batch grok_core.runner.plan forms, timed on
recorded and on train-only steps and weighed by the share of recorded steps, in minutes per batch and in all.

Usage (from the repository root):
    python bench/programme.py --compile --ahead                    # on a CUDA machine, as the runner trains
    python bench/programme.py --compile --ahead --precision tf32   # the TF32 option
    python bench/programme.py --compile --ahead --resume           # go on with an interrupted estimate

The runs are those of grok_core.programme.paper_configs() (thinned histories), deduplicated by key. Printed
and written under --out as programme[_compiled][_tf32]_<device>.txt / .json. What the stored runs took when
they were trained is bench/programme_as_trained.py.

The result files are rewritten after each batch; --resume continues an interrupted estimate from them, timing
only the batches they lack (so that the programme can be timed in several shorter calls).

--quick is a smoke test on a CPU: the chapters' quick profiles with a thinned history, and only the three
cheapest batches; its numbers are not comparable.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.arithmetic import recorded_fraction, step_flops                             # noqa: E402
from bench.common import arguments, Report, time_recorded_and_train_only               # noqa: E402
from grok_core.budget import bytes_per_run                                             # noqa: E402
from grok_core.config import PRECISIONS, RunConfig                                     # noqa: E402
from grok_core.programme import paper_configs, setup                                   # noqa: E402
from grok_core.runner import batch_label, plan, precompiled                            # noqa: E402


def programme_batches(max_batch: int, dev, quick: bool = False) -> tuple[list[list[RunConfig]], dict[str, str]]:
    """The programme's batches as grok_core.runner.plan forms them, and each run's chapter (by key).

    The paper profile of every chapter (grok_core.programme.paper_configs), deduplicated by key.
    quick: the chapters' quick profiles instead, with a thinned history (record_dense 100, every
    20th step), so that a CPU can exercise the estimate."""
    per_chapter = paper_configs()
    if quick:
        per_chapter = {c: [r.replace(record_dense=100, record_every=20) for r in setup(c, "quick", {})[1]]
                       for c in per_chapter}
    chapter = {}
    for name, cs in per_chapter.items():
        for c in cs:
            chapter.setdefault(c.key(), name)
    unique = {c.key(): c for cs in per_chapter.values() for c in cs}
    return plan(list(unique.values()), max_batch, dev), chapter


def programme_settings(dev, max_batch: int, quick: bool, compile: bool, precision: str, ahead: bool) -> dict:
    """What an estimate was taken with (a resumed estimate must match it); ahead only where it applies."""
    return {"max_batch": max_batch, "quick": quick, "compiled": compile, "precision": precision,
            "compiled_ahead": ahead and compile and torch.device(dev).type == "cuda"}


def estimate_programme(dev, max_batch: int = 128, quick: bool = False, rate: float | None = None,
                       compile: bool = False, precision: str = "fp32", ahead: bool = False,
                       on_row=None, done: list[dict] = ()) -> dict:
    """Time every batch of the programme on recorded and on train-only steps and weigh the two by
    the share of recorded steps: minutes per batch and in all.

    rate: the fp32 FLOP/s ceiling, for the thinned-programme bound (None: no bound).
    precision: every run's RunConfig.precision for the timing (the book's runs are fp32).
    ahead (with compile, on CUDA): the batches come through grok_core.runner.precompiled, as the runner
    trains them: a helper process compiles the next batch while this one is timed (so the timing includes
    its interference), and the next batch's setup is timed here. A helper that takes longer than the batch
    before it would train adds the difference to setup.
    on_row: called with each batch's row once it is complete (a long measurement shows its progress).
    done: the rows of an interrupted estimate of the same programme, its first batches in order; they are kept
    and the rest timed (the first batch timed here is compiled in this process, not ahead)."""
    batches, chapter = programme_batches(max_batch, dev, quick)
    if quick:
        batches = batches[-3:]                            # plan puts the most expensive batches first
    planned = [(batch_label(b), len(b)) for b in batches]
    if [(r["batch"], r["runs"]) for r in done] != planned[:len(done)]:
        raise ValueError(f"resume: the {len(done)} stored batch rows are not the first batches of this programme "
                         "(the plan changed, or other options): start afresh without --resume")
    start = len(done)
    chapters = [sorted({chapter[c.key()] for c in b}) for b in batches]   # keyed by the fp32 configs
    batches = [[c.replace(precision=precision) for c in b] for b in batches]
    settings = programme_settings(dev, max_batch, quick, compile, precision, ahead)
    ahead = settings["compiled_ahead"]
    rows = list(done)
    late = 0.0                                            # seconds the helper of this batch ran past the last batch
    for k, b in enumerate(precompiled(batches[start:], dev, ahead), start=start):   # padded to its own largest split
        handed = time.perf_counter()
        if ahead and k > start:
            # this batch's helper started when the last batch was handed out and was awaited before this one
            # (an upper bound: it is awaited after the last batch's timing)
            rows[-1]["next_compiled_ahead_s"] = helper_s = handed - last_handed
            late = max(0.0, helper_s - rows[-1]["minutes"] * 60)
        if on_row and k > start:                          # the previous batch's row is complete once this one is handed
            on_row(rows[-1])
        last_handed = handed
        cfg, R = b[0], len(b)
        frac = recorded_fraction(cfg)
        r = time_recorded_and_train_only(b, dev, n_steps=2 if quick else 10, repeats=1 if quick else 3, compile=compile)
        secs = cfg.n_steps * r["ms_per_step_mixed"] / 1e3
        row = {"batch": batch_label(b), "runs": R, "n_steps": cfg.n_steps, "recorded_fraction": frac,
               "ms_per_run_step_recorded": r["ms_per_run_step_recorded"],
               "ms_per_run_step_train_only": r["ms_per_run_step_train_only"],
               "ms_per_run_step_mixed": r["ms_per_run_step_mixed"],
               "mem_per_run_MB": r.get("mem_per_run_MB"),
               "mem_estimate_per_run_MB": bytes_per_run(max(b, key=lambda c: c.frac_train)) / 2 ** 20,
               "minutes": secs / 60, "setup_s": r["warmup_s"], "late_s": late, "next_compiled_ahead_s": None,
               "resumed": k == start > 0,                # compiled here, not ahead, after an interruption
               "chapters": chapters[k]}
        if rate:
            row["bound_minutes"] = sum(c.n_steps * step_flops(c, recorded_fraction(c)) for c in b) / rate / 60
        rows.append(row)
    if on_row and len(rows) > start:
        on_row(rows[-1])
    out = {"rows": rows, "total_minutes": sum(r["minutes"] for r in rows),
           "setup_minutes": sum(r["setup_s"] + r.get("late_s", 0.0) for r in rows) / 60,
           "n_runs": sum(r["runs"] for r in rows), "resumed_at": [k for k, r in enumerate(rows) if r.get("resumed")],
           **settings}
    if rate:
        out["bound_total_minutes"] = sum(r["bound_minutes"] for r in rows)
    return out


def fmt(x, nd=3):
    return "-" if x is None else (f"{x:,.{nd}f}" if isinstance(x, float) else str(x))


def part_programme(report: Report):
    if not report.runs_here("programme", quick_too=True):
        return
    args = report.args
    which = "QUICK profiles, the three cheapest batches" if args.quick else "paper profiles"
    report.say(f"the paper's modular programme (grok_core.programme, {which}), "
               f"batched by grok_core.runner.plan (max batch {args.max_batch}); each batch timed on recorded "
               f"and train-only steps ({'torch.compile' if args.compile else 'eager'}, CUDA graphs on CUDA, "
               f"precision {args.precision}), "
               "mixed by the share of recorded steps:")

    def show(row):
        report.say(f"  {row['batch']:<48} {row['runs']:3d} runs: ms/run-step "
                   f"{row['ms_per_run_step_recorded']:.4f} recorded / {row['ms_per_run_step_train_only']:.4f} "
                   f"train-only / {row['ms_per_run_step_mixed']:.4f} mixed ({row['recorded_fraction']:.1%} recorded), "
                   f"{fmt(row['mem_per_run_MB'], 0)} MB/run (est. {fmt(row['mem_estimate_per_run_MB'], 0)}) "
                   f"-> {row['minutes']:.1f} min"
                   + (f" (bound {row['bound_minutes']:.1f})" if "bound_minutes" in row else "")
                   + f", setup {row['setup_s']:.0f} s"
                   + (f", next batch compiled ahead in {row['next_compiled_ahead_s']:.0f} s"
                      if row["next_compiled_ahead_s"] is not None else "")
                   + f"  [{', '.join(row['chapters'])}]")

    settings = programme_settings(report.dev, args.max_batch, args.quick, args.compile, args.precision, args.ahead)
    done = resumed_rows(report, settings) if args.resume else []
    for row in done:
        show(row)
    partial = report.res["programme"] = {"rows": list(done), "complete": False, **settings}   # kept on a failure

    def keep(row):                                        # the files hold every finished batch: --resume goes on
        show(row)
        partial["rows"].append(row)
        report.dump()

    est = estimate_programme(report.dev, args.max_batch, args.quick, report.res.get("fp32_matmul_flop_per_s"),
                             compile=args.compile, precision=args.precision, ahead=args.ahead, on_row=keep,
                             done=done)
    report.res["programme"] = est | {"complete": True}
    report.say(f"  total for {est['n_runs']} runs: {est['total_minutes']:.1f} minutes of training"
               + (f" (thinned-programme bound {est['bound_total_minutes']:.1f})"
                  if "bound_total_minutes" in est else "")
               + f" + {est['setup_minutes']:.1f} minutes of setup (compilation, graph capture) = "
                 f"{est['total_minutes'] + est['setup_minutes']:.1f} minutes")


def resumed_rows(report: Report, settings: dict) -> list[dict]:
    """The batch rows of this device's result file, for --resume (none without one); its options must be these."""
    path = report.path(".json")
    if not path.exists():
        report.say(f"  resume: no {path.name} yet, starting afresh")
        return []
    try:
        stored = json.loads(path.read_text())["programme"]
    except (ValueError, KeyError) as err:
        raise SystemExit(f"resume: {path} is not a programme estimate ({type(err).__name__}: {err})") from None
    differ = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
    if differ:
        raise SystemExit(f"resume: {path.name} was taken with other options (stored, now): {differ}")
    report.say(f"  resume: {len(stored['rows'])} batch(es) from {path.name}"
               + (" (complete)" if stored.get("complete") else ""))
    return stored["rows"]


def file_stem(args) -> str:
    """programme, with _compiled and the precision when not fp32: one file per way of training."""
    precision = "" if args.precision == "fp32" else f"_{args.precision}"
    return "programme" + ("_compiled" if args.compile else "") + precision


def main():
    ap = arguments(__doc__, "smoke test on a CPU: the quick profiles, the three cheapest batches (numbers not "
                   "comparable)", max_batch=True)
    ap.add_argument("--compile", action="store_true", help="time the batches with torch.compile, as the programme "
                    "runner trains them (about 40 s of compilation per batch on an H100)")
    ap.add_argument("--ahead", action="store_true", help="with --compile: each batch compiled ahead in a helper "
                    "process while the one before it is timed, as the programme runner does")
    ap.add_argument("--precision", choices=PRECISIONS, default="fp32",
                    help="RunConfig.precision of the programme's runs (tf32 needs CUDA)")
    ap.add_argument("--resume", action="store_true", help="keep the batches the result file already has (an "
                    "interrupted estimate with the same options) and time only the rest")
    args = ap.parse_args()
    Report(args, file_stem(args)).run({"programme": part_programme}, ["programme"])


if __name__ == "__main__":
    main()
