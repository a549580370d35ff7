"""Figs. 12-19 (appendix): other polynomials f(i, j) mod p; does MED track the test loss for each?

Each figure has its own function, width and train share (APPENDIX, from the recovered captions); a profile's
d_model or frac_train of 0 means "each figure's own".
"""
from __future__ import annotations

import numpy as np

from ..analysis import correlation, group_runs, on_grid
from ..plotting import fmt_pm
from ..tasks import FUNCTION_LABELS
from ..verdicts import ResultBox
from .claims import run_facts
from .settings import FULL_RECORD, PAPER_RECORD, as_int_list, require, runs_per_seed_pairs

# The recovered captions of Figs. 12-19: figure -> (function, d_model, train share).
APPENDIX = {12: ("subtract", 128, 0.3), 13: ("mul", 128, 0.3), 14: ("x2_y2", 256, 0.2), 15: ("x3_y3", 128, 0.2),
            16: ("x2_xy_y2", 128, 0.3), 17: ("x2_xy_y2", 256, 0.3), 18: ("x2_xy_y2", 256, 0.4),
            19: ("x3_xy_y3", 256, 0.5)}

PROFILES = {
    "paper": dict(figures=list(APPENDIX), p=97, d_model=0, frac_train=0, n_seeds=4, n_split_seeds=2,
                  split_seed=0, n_steps=30000, lr=1e-3, **PAPER_RECORD),
    # p = 23, one width and a larger train share for all, a few hundred steps; one figure per function
    # (Figs. 17 and 18 differ from 16 only in width and train share, which the quick profile fixes).
    "quick": dict(figures=[12, 13, 14, 15, 16, 19], p=23, d_model=64, frac_train=0.5, n_seeds=1, n_split_seeds=1,
                  split_seed=0, n_steps=400, lr=1e-2, **FULL_RECORD),
}


def check(S: dict):
    S["figures"] = as_int_list("figures", S["figures"])
    require(all(f in APPENDIX for f in S["figures"]), "figures", S["figures"], f"choose from {sorted(APPENDIX)}")
    require(S["d_model"] == 0 or (isinstance(S["d_model"], int) and S["d_model"] > 0), "d_model", S["d_model"],
            "use 0 (each figure's own width) or a positive integer")
    require(S["frac_train"] == 0 or 0 < S["frac_train"] < 1, "frac_train", S["frac_train"],
            "use 0 (each figure's own share) or a number in (0, 1)")


def appendix_setting(S: dict, fig: int) -> tuple[str, int, float]:
    """(function, d_model, train share) of an appendix figure under the settings S (0 = the figure's own)."""
    fn, width, frac = APPENDIX[fig]
    return fn, S["d_model"] or width, S["frac_train"] or frac


def run_configs(S: dict):
    return runs_per_seed_pairs(S, [dict(fn=fn, d_model=width, frac_train=frac, split="random")
                                   for fn, width, frac in (appendix_setting(S, f) for f in S["figures"])])


def claims(S: dict, runs) -> list[dict]:
    """Per appendix figure: MED's Pearson correlation with the test loss, late train and test accuracy, and
    the steps to train accuracy 1 and to 95 % test accuracy."""
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
                    "late_test_acc": [x["late_test_acc"] for x in facts],
                    "train_acc_1_at": [x["train_acc_1_at"] for x in facts],
                    "steps_to_95": [x["test_acc_95_at"] for x in facts]})
    return out


def runs_by_figure(S: dict, runs) -> dict[int, list]:
    """The runs of each figure, in seed-pair order (figures may share runs)."""
    by_setting = group_runs(runs, lambda c: (c.fn, c.d_model, c.frac_train))
    return {f: by_setting[appendix_setting(S, f)] for f in S["figures"]}


def label(S: dict, fig: int) -> str:
    fn, width, frac = appendix_setting(S, fig)
    return f"Fig. {fig}: {FUNCTION_LABELS[fn]}, d_model {width}, frac {frac}"


TABLE_HEADERS = ["setting", "MED vs test loss (Pearson)", "final train acc", "final test acc"]


def table_rows(S: dict, settings: list[dict]) -> list[list]:
    """Per figure: MED's Pearson correlation with the test loss, late train and test accuracy (mean ± sd)."""
    return [[label(S, s["figure"]), fmt_pm(s["pearson_test_loss"], 3), fmt_pm(s["late_train_acc"], 3),
             fmt_pm(s["late_test_acc"], 3)] for s in settings]


def mean_pearson(settings: list[dict]) -> dict[int, float]:
    """Per figure: the mean Pearson correlation between MED and the test loss over its runs (NaNs left out)."""
    return {s["figure"]: float(np.nanmean(s["pearson_test_loss"])) for s in settings}


TRACKS = 0.5       # a mean Pearson correlation of at least this: MED clearly follows the test loss
GROKS = 0.5        # a figure groks when at least this share of its runs reaches 95 % test accuracy ...
MIN_DELAY = 1000   # ... at least this many steps (a 30th of the paper's run) after train accuracy reaches 1


def delays(s: dict) -> list[int]:
    """Per run that fits and reaches 95 % test accuracy: steps from train accuracy 1 to 95 % test accuracy."""
    return [t - f for f, t in zip(s["train_acc_1_at"], s["steps_to_95"]) if f is not None and t is not None]


def groks(s: dict) -> bool:
    """Grokking as the paper shows it: most runs reach 95 % test accuracy, with a median delay of MIN_DELAY."""
    d = delays(s)
    return len(d) >= GROKS * len(s["steps_to_95"]) and len(d) > 0 and float(np.median(d)) >= MIN_DELAY


def verdict(settings: list[dict]) -> str:
    """Support counts only among figures that grok: MED cannot track a grokking that does not happen.
    Reproduced if every figure groks and MED tracks in each; partly if MED tracks in half of those that grok
    or more; contradicted if its mean Pearson is negative in most of them; else not reproduced."""
    corr = mean_pearson(settings)
    grokking = [s["figure"] for s in settings if groks(s)]
    tracked = [f for f in grokking if corr[f] >= TRACKS]
    if settings and len(tracked) == len(settings):
        return "reproduced"
    if sum(corr[f] < 0 for f in grokking) > len(grokking) / 2:
        return "contradicted"
    return "partly reproduced" if grokking and len(tracked) >= len(grokking) / 2 else "not reproduced"


def figure_text(s: dict, corr: dict[int, float], extra: str = "") -> str:
    """One figure's numbers for the result box: its correlation, how many runs reach 95 %, their delay."""
    d = delays(s)
    return (f"Fig. {s['figure']} (Pearson {corr[s['figure']]:+.2f}, {len(d)}/{len(s['steps_to_95'])} runs reach 95 %"
            + (f", median delay {np.median(d):,.0f} steps" if d else "") + extra + ")")


def result(S: dict, C: dict) -> ResultBox:
    """The appendix's claim against MED's correlation with the test loss, counted among the figures that grok."""
    st = C["settings"]
    corr = mean_pearson(st)
    grokking = [s for s in st if groks(s)]
    others = [s for s in st if not groks(s)]
    return ResultBox(
        claim="MED keeps tracking the test loss for the other polynomials of Figs. 12–19 (appendix).",
        measured=(f"p = {S['p']}, {S['n_steps']:,} steps, {len(st[0]['steps_to_95']) if st else 0} runs per figure "
                  f"({len(C['runs'])} in all). Grokking in {len(grokking)} of {len(st)} figures: "
                  + ("; ".join(figure_text(s, corr) for s in grokking) or "none") + ". Not grokking: "
                  + ("; ".join(figure_text(s, corr, f", late test accuracy {np.mean(s['late_test_acc']):.2f}")
                               for s in others) or "none") + "."),
        verdict=verdict(st),
        rule=(f"A figure groks when at least {GROKS:.0%} of its runs reach 95 % test accuracy with a median delay "
              f"of {MIN_DELAY:,} steps after train accuracy 1; reproduced if all figures grok with a mean Pearson "
              f"of at least {TRACKS}, partly if at least half of the grokking ones have it, contradicted if most "
              "grokking ones have a negative one, else not reproduced."))
