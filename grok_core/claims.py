"""The numbers that carry each chapter's claims, per setting and per run, computed from its runs.

A chapter notebook prints its tables from them and exports them (`export`: one JSON file per chapter
and profile), so tests can assert them: exactly on the stored paper runs, within bands on quick runs.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .analysis import (Table1Rules, correlation, group_runs, on_grid, peak_and_fall, steps_to_threshold,
                       table1_metrics)
from .programme import appendix_setting
from .store import REPO_ROOT

EXPORTS_VAR = "GROKBOOK_EXPORTS"


def exports_dir() -> Path:
    """Where notebooks write their claims: $GROKBOOK_EXPORTS, else _build/exports/ of the checkout."""
    return Path(os.environ.get(EXPORTS_VAR) or REPO_ROOT / "_build" / "exports")


def json_safe(x):
    """JSON-safe: numpy scalars to Python numbers, NaN to None."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    return x


def export(chapter: str, profile: str, claims: dict):
    """Write the chapter's claims to <exports_dir>/<chapter>.<profile>.json (nothing shown in the notebook)."""
    path = exports_dir() / f"{chapter}.{profile}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe({"chapter": chapter, "profile": profile, **claims}), indent=1))


def run_facts(run) -> dict:
    """What every chapter can say of one run: when train accuracy reaches 1.0 and test accuracy 0.95,
    and both accuracies averaged over the last 10 % of the steps."""
    h, n = run.history, run.config.n_steps
    late = h["step"] >= 0.9 * n
    return {"key": run.key, "train_acc_1_at": steps_to_threshold(h["train_acc"], 1.0, h["step"]),
            "test_acc_95_at": steps_to_threshold(h["test_acc"], 0.95, h["step"]),
            "late_train_acc": float(np.mean(h["train_acc"][late])), "late_test_acc": float(np.mean(h["test_acc"][late]))}


def _mean(values) -> float:
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else math.nan


def fig20(S: dict, runs) -> list[dict]:
    """Per train share and initialisation: steps to 95 % test accuracy, and their mean over the normal one's."""
    groups = group_runs(runs, lambda c: (c.frac_train, c.embed_init))
    out = []
    for frac in S["fracs"]:
        normal = _mean(run_facts(r)["test_acc_95_at"] for r in groups.get((frac, "normal"), []))
        for e in S["embed_inits"]:
            steps = [run_facts(r)["test_acc_95_at"] for r in groups[(frac, e)]]
            ratio = _mean(steps) / normal if e != "normal" and normal > 0 else math.nan
            out.append({"frac": frac, "init": e, "steps_to_95": steps, "ratio_to_normal": ratio})
    return out


def fig2(S: dict, runs) -> list[dict]:
    """Per depth: fluctuation of the test accuracy after memorisation (accuracy points per grid step, on a
    uniform grid of record_every steps), steps to 95 % test accuracy, final MED over initial MED."""
    out = []
    for d, rs in group_runs(runs, lambda c: c.n_layers).items():
        flucts = []
        for r in rs:
            h = on_grid(r.history, S["record_every"])
            mem = steps_to_threshold(h["train_acc"], 0.99)
            acc = h["test_acc"][mem:] if mem is not None else np.array([])
            flucts.append(float(np.mean(np.abs(np.diff(acc)))) * 100 if len(acc) > 1 else None)
        out.append({"layers": d, "fluctuation": flucts, "steps_to_95": [run_facts(r)["test_acc_95_at"] for r in rs],
                    "med_final_over_initial": [float(r.history["med"][-1] / r.history["med"][0]) for r in rs]})
    return out


def fig4(S: dict, runs) -> list[dict]:
    """Per train share: test accuracy over the last 10 % of the steps, and the test pairs it answers."""
    out = []
    for frac, rs in group_runs(runs, lambda c: c.frac_train).items():
        p = rs[0].config.p
        n_test = p * p - int(frac * p * p)
        acc = [run_facts(r)["late_test_acc"] for r in rs]
        out.append({"frac": frac, "test_pairs": n_test, "late_test_acc": acc, "correct_test_pairs": [a * n_test for a in acc]})
    return out


def fig5(S: dict, runs) -> list[dict]:
    """Per prime: MED's correlation with the test and train loss (uniform step grid), steps to 95 % test
    accuracy, and where MED and log10 test loss peak and come half way down (peak_and_fall)."""
    out = []
    window = max(1, min(500, S["n_steps"] // 20))
    for q, rs in group_runs(runs, lambda c: c.p).items():
        grids = [on_grid(r.history, S["record_every"]) for r in rs]
        c_test = [correlation(h["med"], h["test_loss"]) for h in grids]
        c_train = [correlation(h["med"], h["train_loss"]) for h in grids]
        med_pf = [peak_and_fall(h["med"], h["step"], window) for h in grids]
        loss_pf = [peak_and_fall(np.log10(h["test_loss"]), h["step"], window) for h in grids]
        out.append({"p": q, "steps_to_95": [run_facts(r)["test_acc_95_at"] for r in rs],
                    "pearson_test_loss": [c["pearson"] for c in c_test], "spearman_test_loss": [c["spearman"] for c in c_test],
                    "pearson_train_loss": [c["pearson"] for c in c_train],
                    "spearman_train_loss": [c["spearman"] for c in c_train],
                    "med_peak": [m[0] for m in med_pf], "med_half": [m[1] for m in med_pf],
                    "test_loss_peak": [t[0] for t in loss_pf], "test_loss_half": [t[1] for t in loss_pf]})
    return out


def figs12_19(S: dict, runs) -> list[dict]:
    """Per appendix figure: MED's Pearson correlation with the test loss, late train and test accuracy."""
    by_setting = group_runs(runs, lambda c: (c.fn, c.d_model, c.frac_train))
    out = []
    for f in S["figures"]:
        fn, width, frac = appendix_setting(S, f)
        rs = by_setting[(fn, width, frac)]
        grids = [on_grid(r.history, S["record_every"]) for r in rs]
        facts = [run_facts(r) for r in rs]
        out.append({"figure": f, "fn": fn, "d_model": width, "frac": frac,
                    "pearson_test_loss": [correlation(h["med"], h["test_loss"])["pearson"] for h in grids],
                    "late_train_acc": [x["late_train_acc"] for x in facts],
                    "late_test_acc": [x["late_test_acc"] for x in facts]})
    return out


def table1(S: dict, runs, rules: Table1Rules = Table1Rules()) -> list[dict]:
    """Per split setting (and operand offset): U-Acc, L-Acc and GO-Epoch of every run by Table 1's rules."""
    out = []
    for (split, param, offset), rs in group_runs(runs, lambda c: (c.split, c.split_param, c.operand_offset)).items():
        res = [table1_metrics(r.history["test_acc"], r.history["train_acc"], rules, steps=r.history["step"]) for r in rs]
        out.append({"split": split, "param": param, "offset": offset, "u_acc": [x.u_acc for x in res],
                    "l_acc": [x.l_acc for x in res], "go_epoch": [x.go_epoch for x in res],
                    "block_acc_end": [float(r.history["block_acc"][-1]) for r in rs]})
    return out


CHAPTERS = {"fig20_toeplitz": fig20, "fig2_layers": fig2, "fig4_x2xyy2_frac": fig4, "fig5_med_primes": fig5,
            "figs12_19_functions": figs12_19, "table1_square_strip": table1}


def chapter_claims(chapter: str, S: dict, runs) -> dict:
    """{"settings": the chapter's per-setting numbers, "runs": run_facts of every run, in order}."""
    return {"settings": CHAPTERS[chapter](S, runs), "runs": [run_facts(r) for r in runs]}
