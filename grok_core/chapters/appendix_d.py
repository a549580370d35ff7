"""Appendix D, as far as it is known (a paraphrase): embedding width against grokking speed and the accuracy
ceiling, and the 2-layer DNN against the transformer on f = i² + ij + j².

The settings are a reading of that paraphrase; the chapter says which and why.
"""
from __future__ import annotations

import numpy as np

from ..analysis import group_runs, table1_metrics
from ..survival import steps_restricted_mean
from ..verdicts import ResultBox
from ..plotting import fmt_pm
from .claims import reached_text, run_facts
from .settings import FULL_RECORD, PAPER_RECORD, as_float_list, as_int_list, count, run_config, seed_pairs

DESIGN_WIDTHS = [64, 128, 256, 512]   # the widths the paper profile is to cover in (a) and (b)

PROFILES = {
    # (a) p = 97, square split k = 85 (2,013 train pairs), widths 64..512 with the released d_mlp of 512;
    # (b) p = 43, f = i + j, a 30 % random train set, the same widths;
    # (c) the released 2-layer DNN against the 1-layer transformer on i² + ij + j² at two train shares
    # (the transformer runs are those of Figs. 16 and 4).
    "paper": dict(p=97, widths=list(DESIGN_WIDTHS), width_mlp=512, k=85, width_steps=40000, small_p=43,
                  small_widths=list(DESIGN_WIDTHS), small_frac=0.3, small_steps=20000, dnn_fracs=[0.3, 0.5], n_seeds=4,
                  n_split_seeds=2, split_seed=0, n_steps=30000, lr=1e-3, **PAPER_RECORD),
    "quick": dict(p=23, widths=[16, 64], width_mlp=64, k=17, width_steps=300, small_p=13, small_widths=[16, 64],
                  small_frac=0.5, small_steps=300, dnn_fracs=[0.5], n_seeds=2, n_split_seeds=1, split_seed=0,
                  n_steps=300, lr=1e-2, **FULL_RECORD),
}


def check(S: dict):
    S["widths"] = as_int_list("widths", S["widths"])
    S["small_widths"] = as_int_list("small_widths", S["small_widths"])
    S["dnn_fracs"] = as_float_list("dnn_fracs", S["dnn_fracs"])
    for name in ("width_mlp", "k", "width_steps", "small_p", "small_steps"):
        count(name, S[name], 1)


def width_configs(S: dict):
    """(a): the square split's train set is the whole remainder (2,013 < 0.3 p²), so only the init seed varies."""
    n = len(seed_pairs(S))
    return [run_config(S, fn="add", split="square", split_param=S["k"], d_model=w, d_mlp=S["width_mlp"],
                       n_steps=S["width_steps"], init_seed=i, split_seed=S["split_seed"])
            for w in S["widths"] for i in range(n)]


def ceiling_configs(S: dict):
    """(b): the widths at the small prime, on a random split."""
    return [run_config(S, p=S["small_p"], fn="add", split="random", frac_train=S["small_frac"], d_model=w,
                       d_mlp=S["width_mlp"], n_steps=S["small_steps"], init_seed=i, split_seed=s)
            for w in S["small_widths"] for i, s in seed_pairs(S)]


def dnn_configs(S: dict):
    """(c): per train share, the transformer's runs, then the DNN's."""
    return [run_config(S, fn="x2_xy_y2", split="random", frac_train=f, model=m, init_seed=i, split_seed=s)
            for f in S["dnn_fracs"] for m in ("transformer", "mlp") for i, s in seed_pairs(S)]


def run_configs(S: dict):
    return width_configs(S) + ceiling_configs(S) + dnn_configs(S)


# -- the numbers per part, and a verdict for each ------------------------------------------------------------------
PARTS = {"width": width_configs, "ceiling": ceiling_configs, "dnn": dnn_configs}


def _setting(rs) -> dict:
    facts = [run_facts(r) for r in rs]
    u = [table1_metrics(r.history["test_acc"], r.history["train_acc"], steps=r.history["step"]).u_acc for r in rs]
    return {"runs": len(rs), "n_steps": rs[0].config.n_steps, "late_test_acc": [f["late_test_acc"] for f in facts],
            "u_acc": u, "test_acc_95_at": [f["test_acc_95_at"] for f in facts],
            "train_acc_1_at": [f["train_acc_1_at"] for f in facts], "split_seed": [r.config.split_seed for r in rs]}


def claims(S: dict, runs) -> list[dict]:
    """Per part and setting (a width, or a model and train share): the runs' late test accuracy, U-Acc (Table 1's
    rules), steps to 95 % test accuracy and to train accuracy 1."""
    by_key = {r.key: r for r in runs}
    out = []
    for part, make in PARTS.items():
        cfgs = make(S)
        groups = group_runs([by_key[c.key()] for c in cfgs],
                            (lambda c: (c.model, c.frac_train)) if part == "dnn" else (lambda c: c.d_model))
        for g, rs in groups.items():
            label = {"model": g[0], "frac": g[1]} if part == "dnn" else {"width": g}
            out.append({"part": part, **label, **_setting(rs)})
    return out


SPEEDUP = 10_000     # "about 20k epochs earlier": at least half of it
CEILING_LOW, CEILING_HIGH = 0.8, 0.95     # "from about 0.7 to 0.99"
DNN_AT_MOST = 0.05   # "about 0.01": at most five chance levels at p = 97
KEEPS = 0.05         # the transformer's "some generalisation": this much above the DNN


def part_verdicts(settings: list[dict]) -> dict:
    """One verdict per part, by its rule:
    width: reproduced if the largest width reaches 95 % in at least half its runs and its restricted mean step to
    95 % (runs that never get there counted at n_steps) is at least SPEEDUP below the smallest width's;
    contradicted if it is SPEEDUP above; not reproduced otherwise.
    ceiling: reproduced if the mean late test accuracy is at most CEILING_LOW at the smallest width and at least
    CEILING_HIGH at the largest; partly reproduced if it rises by at least 0.1; contradicted if it falls by 0.1;
    not reproduced otherwise.
    dnn: reproduced if at every train share the DNN's mean late test accuracy is at most DNN_AT_MOST and the
    transformer's is at least KEEPS above it; partly reproduced if one of the two holds at every share."""
    out = {}
    width = sorted((s for s in settings if s["part"] == "width"), key=lambda s: s["width"])
    if len(width) > 1:
        small, large = width[0], width[-1]
        gain = (steps_restricted_mean(small["test_acc_95_at"], small["n_steps"])
                - steps_restricted_mean(large["test_acc_95_at"], large["n_steps"]))
        half = sum(x is not None for x in large["test_acc_95_at"]) >= large["runs"] / 2
        out["width"] = ("reproduced" if half and gain >= SPEEDUP else "contradicted" if gain <= -SPEEDUP
                        else "not reproduced")
    ceiling = sorted((s for s in settings if s["part"] == "ceiling"), key=lambda s: s["width"])
    if len(ceiling) > 1:
        lo, hi = (float(np.mean(s["late_test_acc"])) for s in (ceiling[0], ceiling[-1]))
        out["ceiling"] = ("reproduced" if lo <= CEILING_LOW and hi >= CEILING_HIGH else "partly reproduced"
                          if hi - lo >= 0.1 else "contradicted" if lo - hi >= 0.1 else "not reproduced")
    fracs = sorted({s["frac"] for s in settings if s["part"] == "dnn"})
    if fracs:
        acc = {(s["model"], s["frac"]): float(np.mean(s["late_test_acc"])) for s in settings if s["part"] == "dnn"}
        low = all(acc[("mlp", f)] <= DNN_AT_MOST for f in fracs)
        keeps = all(acc[("transformer", f)] >= acc[("mlp", f)] + KEEPS for f in fracs)
        out["dnn"] = "reproduced" if low and keeps else "partly reproduced" if low or keeps else "not reproduced"
    return out


def verdict(parts: dict) -> str:
    """The chapter's verdict: reproduced if every part is; contradicted if one is and none is reproduced; partly
    reproduced if some part is reproduced or partly; not reproduced otherwise."""
    v = list(parts.values())
    if v and all(x == "reproduced" for x in v):
        return "reproduced"
    if any(x in ("reproduced", "partly reproduced") for x in v):
        return "partly reproduced"
    return "contradicted" if "contradicted" in v else "not reproduced"


def _pct(xs) -> str:
    return " / ".join(f"{100 * float(np.mean(x)):.1f}" for x in xs)


def result(S: dict, C: dict) -> ResultBox:
    st = C["settings"]
    pv = part_verdicts(st)
    width = sorted((s for s in st if s["part"] == "width"), key=lambda s: s["width"])
    ceiling = sorted((s for s in st if s["part"] == "ceiling"), key=lambda s: s["width"])
    dnn = sorted((s for s in st if s["part"] == "dnn"), key=lambda s: (s["frac"], s["model"] != "transformer"))
    n = len(seed_pairs(S))
    per_width = "; ".join(f"d = {s['width']}: {sum(x is not None for x in s['test_acc_95_at'])} of {s['runs']} runs "
                          f"reach 95 % test accuracy, late test accuracy {_pct([s['late_test_acc']])} %" for s in width)
    return ResultBox(
        claim=("Appendix D, known only from a paraphrase (Figs. 8–11): a larger embedding dimension makes grokking "
               f"about 20k epochs earlier at p = {S['p']} under the square split k = {S['k']}, and raises the accuracy "
               f"ceiling from about 0.7 to 0.99 at p = {S['small_p']}; a 2-layer DNN stays near 0.01 test accuracy on "
               "i² + ij + j² where the transformer keeps some generalisation."),
        measured=(f"{n} runs per setting. (a) k = {S['k']}, {S['width_steps']} steps: {per_width} "
                  f"({pv.get('width', 'not measured')}). (b) p = "
                  f"{S['small_p']}, widths {' / '.join(str(s['width']) for s in ceiling)}: late test accuracy "
                  f"{_pct(s['late_test_acc'] for s in ceiling)} % ({pv.get('ceiling', 'not measured')}). (c) late "
                  "test accuracy, transformer / DNN, at train share "
                  + "; ".join(f"{f:g}: {_pct(s['late_test_acc'] for s in dnn if s['frac'] == f)} %"
                              for f in sorted({s['frac'] for s in dnn}))
                  + f" ({pv.get('dnn', 'not measured')})."),
        verdict=verdict(pv),
        rule=(f"(a) reproduced if the largest width reaches 95 % in at least half its runs and its restricted mean "
              f"step to 95 % (never = the run's length) is at least {SPEEDUP:,} steps below the smallest width's; "
              f"contradicted if {SPEEDUP:,} above; else not reproduced. (b) reproduced if the mean late test accuracy "
              f"is at most {CEILING_LOW} at the smallest width and at least {CEILING_HIGH} at the largest; partly if it "
              f"rises by 0.1; contradicted if it falls by 0.1. (c) reproduced if the DNN stays at most "
              f"{DNN_AT_MOST} and the transformer at least {KEEPS} above it at every share; partly if one of the two "
              "holds. The chapter: reproduced if every part is; partly if any part is reproduced or partly; "
              "contradicted if a part is and none better; else not reproduced."))


TABLE_HEADERS = ["part", "setting", "runs", "late test acc", "U-Acc", "reach 95 % (step)", "train acc 1 at (step)"]


def table_rows(settings: list[dict]) -> list[list]:
    """One row per setting of each part: accuracies mean ± sd, steps mean ± sd over the runs that got there."""
    names = {"width": "(a) width, square k", "ceiling": "(b) width, small prime", "dnn": "(c) model"}
    rows = []
    for s in settings:
        what = f"{s['model']}, frac {s['frac']:g}" if s["part"] == "dnn" else f"d = {s['width']}"
        u = [x for x in s["u_acc"] if x is not None]
        rows.append([names[s["part"]], what, s["runs"], fmt_pm(s["late_test_acc"], 3), fmt_pm(u, 3) if u else "–",
                     reached_text(s["test_acc_95_at"]), reached_text(s["train_acc_1_at"])])
    return rows


def by_split_seed(s: dict) -> dict[int, list[float]]:
    """A setting's late test accuracies per split seed (the drawn training set)."""
    out: dict[int, list[float]] = {}
    for seed, acc in zip(s["split_seed"], s["late_test_acc"]):
        out.setdefault(seed, []).append(acc)
    return out
