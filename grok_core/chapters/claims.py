"""The numbers that carry a chapter's claims, per setting and per run, and their export as JSON.

A chapter notebook prints its tables from them and exports them (`export`: one JSON file per chapter
and profile), so tests can assert them: exactly on the stored paper runs, within bands on quick runs.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..analysis import steps_to_threshold
from ..plotting import fmt_pm
from ..store import REPO_ROOT
from ..verdicts import ResultBox
from . import find

EXPORTS_VAR = "GROKBOOK_EXPORTS"


def late_mean(history: dict, key: str, n_steps: int) -> float:
    """A recorded measure averaged over the last 10 % of a run's steps ("late"), its NaN entries left out (a
    measure undefined at some steps; train and test accuracy never are)."""
    return float(np.nanmean(np.asarray(history[key])[history["step"] >= 0.9 * n_steps]))


def run_facts(run) -> dict:
    """What every chapter can say of one run: when train accuracy reaches 1.0 and test accuracy 0.95,
    and both accuracies averaged over the last 10 % of the steps it trained (to its stop, if it stopped early)."""
    h, n = run.history, run.meta.get("stopped_at") or run.config.n_steps
    return {"key": run.key, "train_acc_1_at": steps_to_threshold(h["train_acc"], 1.0, h["step"]),
            "test_acc_95_at": steps_to_threshold(h["test_acc"], 0.95, h["step"]),
            "late_train_acc": late_mean(h, "train_acc", n), "late_test_acc": late_mean(h, "test_acc", n)}


def reached_text(steps: list) -> str:
    """Steps to a threshold as a table cell: mean ± sd over the runs that got there, and how many they are."""
    got = [x for x in steps if x is not None]
    return (fmt_pm(got, 0) + f" ({len(got)}/{len(steps)})") if got else f"never (0/{len(steps)})"


def chapter_claims(chapter: str, S: dict, runs) -> dict:
    """{"settings": the chapter's per-setting numbers, "runs": run_facts of every run, in order (for chapters whose
    runs are RunConfig runs, the ones with `run_configs`), and "result": its result box where the chapter module
    has a `result(S, C)` (claim, measured, verdict, rule)}."""
    module = find(chapter)
    C = {"settings": module.claims(S, runs)}
    if hasattr(module, "run_configs"):
        C["runs"] = [run_facts(r) for r in runs]
    if hasattr(module, "result"):
        C["result"] = module.result(S, C).to_dict()
    return C


def show_result(C: dict, chapter: str):
    """Glue the result box for the chapter's first screen (its top cell shows it with {glue:md}`result`), with the
    line saying what re-running the chapter takes (grok_core.chapters.cost)."""
    from IPython.display import Markdown
    from myst_nb import glue

    from .cost import rerun_line
    glue("result", Markdown(ResultBox(**C["result"]).markdown(rerun=rerun_line(chapter))), display=False)


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
