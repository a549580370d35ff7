"""Same device, same numbers: the same runs trained twice in one process, bitwise, and what torch's
deterministic mode (the Trainer's default) costs on the programme's batches.

Usage (from the repository root):
    python bench/determinism.py                      # both parts, on a CUDA machine
    python bench/determinism.py --only determinism   # the cost alone

Parts (--only): repeat (8 runs, p=47, frac 0.6, lr 1e-3, trained twice each way: eager / compiled,
deterministic mode on / off), determinism (the programme's two most expensive batches and its largest,
compiled, mode on and off). Printed and written under --out as <parts>_<device>.txt / .json (the
determinism part as determinism_cost).

--quick is a smoke test on a CPU (30 steps, eager only; the quick profiles' batches); its numbers are not
comparable.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (arguments, chosen_parts, configs_for, Report, test95,        # noqa: E402
                          time_recorded_and_train_only)
from bench.programme import programme_batches                                          # noqa: E402
from grok_core.config import RunConfig                                                 # noqa: E402
from grok_core.runner import batch_label                                               # noqa: E402
from grok_core.train import Trainer                                                    # noqa: E402


def repeat_check(dev, steps: int = 2500, compile_too: bool = True) -> dict:
    """The same 8 runs (the TF32 check's setting) trained twice in one process: are the histories bitwise equal?

    Each way of training (eager / compiled, torch's deterministic mode on as the Trainer has it, or off):
    without it, atomic adds in a backward pass (the scatter-add behind a gather) and compiled code's
    autotuning make GPU runs differ from run to run."""
    cfgs = configs_for(RunConfig(p=47, frac_train=0.6, lr=1e-3, n_steps=steps), 8)
    out = {}
    for compiled, det in [(c, d) for c in ((False, True) if compile_too else (False,)) for d in (True, False)]:
        hs = []
        for _ in range(2):
            tr = Trainer(cfgs, dev, compile=compiled, deterministic=det)
            tr.run(progress=False)
            hs.append(tr.histories())
        metrics = [m for m in hs[0][0] if m != "step"]
        first = []                                        # per run: the first recorded step that differs, or None
        for a, b in zip(*hs):
            diff = np.zeros(len(a["step"]), dtype=bool)
            for m in metrics:
                diff |= ~((a[m] == b[m]) | (np.isnan(a[m]) & np.isnan(b[m])))
            first.append(int(a["step"][diff.argmax()]) if diff.any() else None)
        out[("compiled" if compiled else "eager") + ("" if det else ", deterministic mode off")] = {
            "bitwise_equal_runs": first.count(None), "runs": len(cfgs), "first_differing_step": first,
            "max_abs_diff": {m: float(max(np.abs(np.nan_to_num(a[m]) - np.nan_to_num(b[m])).max() for a, b in zip(*hs)))
                             for m in metrics},                   # NaN (no block) counts as 0; bitwise check sees it
            "test95_step": [[test95(h) for h in run] for run in hs]}
    return out


def determinism_cost(dev, max_batch: int = 128, quick: bool = False) -> list[dict]:
    """What torch's deterministic mode costs, compiled as the runner trains: the programme's two most
    expensive batches and its largest, each timed with the mode on (the Trainer's default) and off."""
    batches, _ = programme_batches(max_batch, dev, quick)
    picked = list(dict.fromkeys([0, 1, max(range(len(batches)), key=lambda k: len(batches[k]))]))
    rows = []
    for k in picked:
        b = batches[k]
        row = {"batch": batch_label(b), "runs": len(b)}
        for det in (True, False):
            row["on" if det else "off"] = time_recorded_and_train_only(
                b, dev, n_steps=2 if quick else 10, repeats=1 if quick else 3, compile=True, deterministic=det
            )["ms_per_run_step_mixed"]
        row["ratio"] = row["on"] / row["off"]
        rows.append(row)
    return rows


def part_repeat(report: Report):
    if not report.runs_here("repeat", quick_too=True):
        return
    report.say("the same 8 runs trained twice in one process (p=47, frac 0.6, lr 1e-3): bitwise equal histories?")
    report.res["repeat"] = repeat_check(report.dev, steps=30 if report.quick else 2500, compile_too=report.cuda)
    for k, d in report.res["repeat"].items():
        report.say(f"  {k}: {d['bitwise_equal_runs']}/{d['runs']} runs bitwise equal; first differing step per run "
                   f"{d['first_differing_step']}; largest differences: "
                   + ", ".join(f"{m} {v:.1e}" for m, v in d["max_abs_diff"].items())
                   + f"; steps to test acc 0.95, first vs second: {d['test95_step'][0]} / {d['test95_step'][1]}")


def part_determinism(report: Report):
    if not report.runs_here("determinism", quick_too=True):
        return
    report.say("torch's deterministic mode (the Trainer's default), compiled, on vs off; ms per run-step, "
               "mixed as in the programme:")
    report.res["determinism_cost"] = determinism_cost(report.dev, report.args.max_batch, report.quick)
    for row in report.res["determinism_cost"]:
        report.say(f"  {row['batch']:<48} {row['runs']:3d} runs: on {row['on']:.4f} / off {row['off']:.4f} = "
                   f"{row['ratio']:.3f}x")


PARTS = {"repeat": part_repeat, "determinism": part_determinism}
FILE_NAMES = {"repeat": "repeat", "determinism": "determinism_cost"}   # as the parts' JSON keys name them


def main():
    ap = arguments(__doc__, "smoke test on a CPU: 30 steps, eager only; the quick profiles' batches (numbers not "
                   "comparable)", list(PARTS), max_batch=True)
    args = ap.parse_args()
    chosen = chosen_parts(ap, args, list(PARTS))
    Report(args, "_".join(FILE_NAMES[p] for p in chosen)).run(PARTS, chosen)


if __name__ == "__main__":
    main()
