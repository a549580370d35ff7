"""What the accuracy ceiling is made of: every chapter's rows, their measured ceiling beside what symmetry predicts.

Nothing is trained here: the chapter reads the runs of the chapters in `chapters` (their own profile of the same
name) and groups them into rows, one per setting (a run config without its two seeds). Per run:

* the measured ceiling is U-Acc by Table 1's rules (`analysis.Table1Rules`: the highest smoothed test accuracy
  from memorisation on; None if the run never memorises), and the late test accuracy (mean over the last 10 % of
  the steps) is shown beside it;
* the predicted ceilings are shares of the run's test pairs (`symmetry.split_shares`): the mirror share (the
  mirror (j, i) is a training pair; for functions with f(i, j) = f(j, i)), the orbit share (some image under the
  group of the function's named symmetries is a training pair) and the full-orbit share (the same with every linear
  symmetry mod p added).
"""
from __future__ import annotations

import numpy as np

from .. import symmetry
from ..analysis import Table1Rules, table1_metrics
from ..plotting import fmt_pm
from ..tasks import FUNCTION_LABELS
from ..verdicts import ResultBox
from . import find, setup
from .claims import run_facts
from .settings import require

SOURCES = ["table1_square_strip", "fig4_x2xyy2_frac", "fig5_med_primes", "figs12_19_functions", "fig20_toeplitz",
           "fig2_layers"]

PROFILES = {
    # Every chapter that trains runs for the paper's figures, read from the run store (nothing is trained).
    "paper": dict(chapters=list(SOURCES)),
    # Two chapters whose quick runs take well under a minute on two CPU cores: x + y with squares and strips
    # dug out, and the appendix functions (i² + ij + j² and i³ + ij + j³ among them) under random splits.
    "quick": dict(chapters=["table1_square_strip", "figs12_19_functions"]),
}


def check(S: dict):
    if isinstance(S["chapters"], str):
        S["chapters"] = [c.strip() for c in S["chapters"].split(",") if c.strip()]
    require(isinstance(S["chapters"], list) and len(S["chapters"]) > 0 and all(c in SOURCES for c in S["chapters"]),
            "chapters", S["chapters"], f"give a non-empty list from {', '.join(SOURCES)}")


def source_configs(S: dict, profile: str) -> dict[str, list]:
    """Each read chapter's run configs under the same profile, by chapter."""
    return {c: setup(c, profile, {})[1] for c in S["chapters"]}


def runs_by_chapter(sources: dict[str, list], runs: list) -> dict[str, list]:
    """The loaded runs (all chapters' configs in order, as load_runs returns them) back per chapter."""
    out, k = {}, 0
    for c, configs in sources.items():
        out[c], k = runs[k:k + len(configs)], k + len(configs)
    return out


SEEDS = ("init_seed", "split_seed")


def setting_key(cfg) -> tuple:
    """A run's setting: its config without the two seeds."""
    return tuple(sorted((k, v) for k, v in cfg.to_dict().items() if k not in SEEDS))


def row_label(cfg, varying: set[str]) -> str:
    """The row's name from the config fields that vary among its chapter's rows."""
    parts = []
    if "split" in varying or "split_param" in varying:
        parts.append(cfg.split if cfg.split == "random" else
                     f"{cfg.split} {'k' if cfg.split == 'square' else 't'}={cfg.split_param}")
    if "operand_offset" in varying and cfg.operand_offset:
        parts.append(f"offset {cfg.operand_offset}")
    names = {"p": lambda c: f"p={c.p}", "fn": lambda c: FUNCTION_LABELS[c.fn], "frac_train": lambda c: f"frac {c.frac_train:g}",
             "d_model": lambda c: f"d_model {c.d_model}", "n_layers": lambda c: f"{c.n_layers} layer{'s' if c.n_layers > 1 else ''}",
             "embed_init": lambda c: f"{c.embed_init} init"}
    parts += [f(cfg) for k, f in names.items() if k in varying]
    return ", ".join(parts) or FUNCTION_LABELS[cfg.fn]


def rows_of(chapter_runs: list) -> list[list]:
    """A chapter's runs grouped by setting, in first-seen order."""
    groups: dict[tuple, list] = {}
    for r in chapter_runs:
        groups.setdefault(setting_key(r.config), []).append(r)
    return list(groups.values())


def claims(S: dict, runs: dict[str, list], rules: Table1Rules = Table1Rules()) -> list[dict]:
    """Per row (chapter and setting): the runs' measured ceiling (U-Acc by Table 1's rules) and late test accuracy,
    and their predicted ceilings: the mirror share, the orbit share, the full-orbit share and the share per named
    map; plus the group's order and how much of the table its orbits, or the full orbits, make whole classes. A row
    whose runs another chapter's row already holds names that chapter in `same_runs_as`."""
    out, seen = [], {}
    for chapter in S["chapters"]:
        groups = rows_of(runs[chapter])
        varying = {k for k in dict(setting_key(groups[0][0].config))
                   if len({dict(setting_key(g[0].config))[k] for g in groups}) > 1}
        for rs in groups:
            cfg, keys = rs[0].config, tuple(sorted(r.key for r in rs))
            shares = [symmetry.split_shares(r.config) for r in rs]
            res = [table1_metrics(r.history["test_acc"], r.history["train_acc"], rules, steps=r.history["step"]) for r in rs]
            out.append({"chapter": chapter, "row": row_label(cfg, varying), "fn": cfg.fn, "p": cfg.p, "split": cfg.split,
                        "split_param": cfg.split_param, "frac": cfg.frac_train, "offset": cfg.operand_offset,
                        "same_runs_as": seen.get(keys), "u_acc": [x.u_acc for x in res],
                        "late_test_acc": [run_facts(r)["late_test_acc"] for r in rs],
                        "mirror_share": [s["mirror"] for s in shares], "orbit_share": [s["orbit"] for s in shares],
                        "full_orbit_share": [s["full_orbit"] for s in shares],
                        "map_shares": {m: [s["maps"][m] for s in shares] for m in symmetry.SYMMETRIES[cfg.fn]},
                        "group_order": symmetry.group_order(cfg.fn, cfg.p),
                        "orbits_are_classes": shares[0]["orbits_are_classes"],
                        "full_orbits_are_classes": shares[0]["full_orbits_are_classes"]})
            seen.setdefault(keys, f"{chapter}: {out[-1]['row']}")
    return out


# -- reading the rows ----------------------------------------------------------------------------------------
def mean(values) -> float:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else float("nan")


def unique_rows(settings: list[dict]) -> list[dict]:
    """The rows whose runs no earlier row holds."""
    return [s for s in settings if s["same_runs_as"] is None]


TOL = 3.0   # points: the seed-to-seed sd of U-Acc in the rows at their mirror share is 1-2 points, and guessing on the
            # remaining test pairs adds about 1/p of them (0.5 points at p = 97)


def place(s: dict, tol: float = TOL) -> str | None:
    """Where the row's mean measured ceiling lies against its mean mirror share: "at" (within tol points),
    "above" or "below"; None where the mirror is no symmetry of f or no run memorised."""
    u, m = mean(s["u_acc"]), mean(s["mirror_share"])
    if np.isnan(u) or np.isnan(m):
        return None
    d = 100 * (u - m)
    return "at" if abs(d) <= tol else "above" if d > 0 else "below"


ROW_HEADERS = ["chapter", "row", "f", "p", "runs", "U-Acc %", "late test acc %", "mirror share %", "orbit share %",
               "full-orbit share %", "U-Acc − mirror (points)"]


def table_rows(settings: list[dict]) -> list[list]:
    """One line per row: its measured ceilings and predicted ceilings (mean ± sd over runs, in %)."""
    out = []
    for s in settings:
        d = 100 * (mean(s["u_acc"]) - mean(s["mirror_share"]))
        memorised = sum(u is not None for u in s["u_acc"])
        runs = f"{len(s['u_acc'])}" + ("" if memorised == len(s["u_acc"]) else f" ({memorised} memorised)")
        name = s["row"] + (f" (the runs of {s['same_runs_as']})" if s["same_runs_as"] else "")
        out.append([s["chapter"], name, FUNCTION_LABELS[s["fn"]], s["p"], runs, fmt_pm(s["u_acc"], 1, 100),
                    fmt_pm(s["late_test_acc"], 1, 100), fmt_pm(s["mirror_share"], 1, 100), fmt_pm(s["orbit_share"], 1, 100),
                    fmt_pm(s["full_orbit_share"], 1, 100), "–" if np.isnan(d) else f"{d:+.1f}"])
    return out


def by_function(settings: list[dict], tol: float = TOL) -> dict[str, dict]:
    """Per function, over its unique rows: how many rows, and how many lie at, above and below the mirror share."""
    out: dict[str, dict] = {}
    for s in unique_rows(settings):
        d = out.setdefault(s["fn"], {"rows": 0, "at": 0, "above": 0, "below": 0, "none": 0})
        d["rows"] += 1
        d[place(s, tol) or "none"] += 1
    return out


FUNCTION_HEADERS = ["f", "rows", "at the mirror share (± 3 points)", "above", "below", "mirror no symmetry / no run memorised"]


def function_rows(settings: list[dict]) -> list[list]:
    return [[FUNCTION_LABELS[fn], d["rows"], d["at"], d["above"], d["below"], d["none"]]
            for fn, d in by_function(settings).items()]


# -- the result box ------------------------------------------------------------------------------------------
CAPPED = "x2_xy_y2"     # the function of Section 6.2's claim: a random split does not reach 100 %


def capped_rows(settings: list[dict]) -> list[dict]:
    """The unique random-split rows of i² + ij + j² (Fig. 4 and Figs. 16-18)."""
    return [s for s in unique_rows(settings) if s["fn"] == CAPPED and s["split"] == "random"]


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def result(S: dict, C: dict) -> ResultBox:
    rows = capped_rows(C["settings"])
    places = [place(s) for s in rows]
    at, above, below = (places.count(k) for k in ("at", "above", "below"))
    if not rows or any(p is None for p in places):
        verdict = "not reproduced"
    elif above:
        verdict = "contradicted"
    elif at == len(rows):
        verdict = "reproduced"
    else:
        verdict = "partly reproduced"
    each = "; ".join(f"{s['chapter']} {s['row']}: U-Acc {pct(mean(s['u_acc']))} % against a mirror share of "
                     f"{pct(mean(s['mirror_share']))} % ({100 * (mean(s['u_acc']) - mean(s['mirror_share'])):+.1f} points; "
                     f"orbit share {pct(mean(s['orbit_share']))} %)" for s in rows)
    others = by_function([s for s in C["settings"] if s["fn"] != CAPPED])
    other_text = "; ".join(f"{FUNCTION_LABELS[fn]}: {d['at']} at, {d['above']} above, {d['below']} below"
                           + (f", {d['none']} without a mirror share" if d["none"] else "") for fn, d in others.items())
    return ResultBox(
        claim=("Section 6.2 (Fig. 4): for f = i² + ij + j² the training set caps the test accuracy below 100 % even "
               "under a random split. The paper does not say what sets the cap; read against the split, the candidate "
               "tested here is the mirror share, the share of test pairs whose mirror (j, i) is a training pair: what a "
               "model that has learned f(i, j) = f(j, i) and nothing else answers."),
        measured=(f"Chapters read: {', '.join(S['chapters'])}; {len(unique_rows(C['settings']))} rows with runs of their "
                  f"own. Random-split rows of i² + ij + j²: {len(rows)}, of which {at} lie within ±{TOL:g} points of "
                  f"the mirror share, {above} above and {below} below" + (f" ({each})" if rows else "") + ". "
                  f"Rows of the other functions at / above / below their mirror share: {other_text or 'none'}."),
        verdict=verdict,
        rule=(f"Over the random-split rows of i² + ij + j² (mean U-Acc over a row's runs against its mean mirror "
              f"share): reproduced if every row lies within ±{TOL:g} points of it; partly reproduced if none lies more "
              f"than {TOL:g} points above it but some lie further below (the mirror share bounds the ceiling without "
              "always being reached); contradicted if some row lies more than "
              f"{TOL:g} points above it (the model answers more than mirroring allows); not reproduced if there is no "
              "such row, or one whose runs never memorise."))


# -- what the rows say, as sentences --------------------------------------------------------------------------
def expected_mirror_share(p: int, n_train: int) -> float:
    """The mirror share a random split gives on average: a test pair off the diagonal has its mirror among the
    other p² − 1 pairs, trained with chance n_train / (p² − 1); the p diagonal pairs are their own mirrors, so
    never (they are a share 1/p of the test set on average)."""
    return (1 - 1 / p) * n_train / (p * p - 1)


MAP_HEADERS = ["chapter", "row", "f", "group order", "share per named map %", "orbit share %", "U-Acc %"]


def map_rows(settings: list[dict], fns=("x2_xy_y2", "x3_xy_y3")) -> list[list]:
    """For the unique rows of the given functions: each named map's share beside the orbit share and U-Acc."""
    return [[s["chapter"], s["row"], FUNCTION_LABELS[s["fn"]], s["group_order"],
             "; ".join(f"{symmetry.MAP_LABELS[m]} {'–' if all(v is None for v in vs) else pct(mean(vs))}"
                       for m, vs in s["map_shares"].items()),
             pct(mean(s["orbit_share"])), pct(mean(s["u_acc"]))] for s in unique_rows(settings) if s["fn"] in fns]


def product_line(settings: list[dict]) -> str | None:
    """Fig. 4's rows: the correct test pairs as a share of the table, acc × (1 − frac), measured and as the mirror
    share predicts, per train share (None without the chapter's rows)."""
    st = sorted((s for s in settings if s["chapter"] == "fig4_x2xyy2_frac"), key=lambda s: s["frac"])
    if not st:
        return None
    acc = " → ".join(f"{100 * mean(s['late_test_acc']) * (1 - s['frac']):.1f}" for s in st)
    mir = " → ".join(f"{100 * mean(s['mirror_share']) * (1 - s['frac']):.1f}" for s in st)
    exp = " / ".join(f"{100 * expected_mirror_share(s['p'], int(s['frac'] * s['p'] ** 2)):.1f}" for s in st)
    fr = " / ".join(f"{s['frac']:g}" for s in st)
    got = " / ".join(pct(mean(s["mirror_share"])) for s in st)
    return (f"Fig. 4 (train shares {fr}): the late test accuracy times the test share, acc × (1 − frac), goes "
            f"{acc} %; the mirror share times the test share goes {mir} %. For a random split the mirror share is "
            f"about the train share itself: (1 − 1/p) · n_train / (p² − 1) = {exp} %, against {got} % measured on "
            "these splits. So the falling product is what a model that answers exactly the mirrored test pairs scores.")


def excess(s: dict, key: str) -> float:
    """The row's mean U-Acc minus its mean predicted share `key`, in points."""
    return 100 * (mean(s["u_acc"]) - mean(s[key]))


def finding_lines(settings: list[dict], tol: float = TOL) -> list[str]:
    """The rows' story in numbers, one markdown bullet per finding (only findings whose rows are present)."""
    rows, out = unique_rows(settings), []
    add = [s for s in rows if s["fn"] == "add"]
    if add:
        whole, low = min(s["orbits_are_classes"] for s in add), min(mean(s["orbit_share"]) for s in add)
        u = [100 * mean(s["u_acc"]) for s in add if not np.isnan(mean(s["u_acc"]))]
        out.append(f"* **x + y** ({len(add)} rows): the shift (i+1, j−1) reaches a pair's whole class "
                   f"(orbit = class for {100 * whole:.0f} % of the pairs), so the orbit share is "
                   f"{'' if low >= 0.9995 else 'at least '}{pct(low)} % in every row and symmetry caps nothing; "
                   f"U-Acc still ranges from {min(u):.1f} to {max(u):.1f} %, so what caps these rows is not what symmetry "
                   f"leaves out. {sum(place(s, tol) == 'above' for s in add)} of them lie more than {tol:g} points above "
                   f"the mirror share, {sum(place(s, tol) == 'at' for s in add)} within {tol:g} points of it and "
                   f"{sum(place(s, tol) == 'below' for s in add)} below it.")
    strip = sorted((s for s in add if s["split"] == "strip" and s["offset"] == 0), key=lambda s: s["split_param"])
    if strip:
        s = strip[-1]
        out.append(f"* The largest strip, t = {s['split_param']} at p = {s['p']}: the mirrors allow "
                   f"{pct(mean(s['mirror_share']))} % of the test pairs; U-Acc is {fmt_pm(s['u_acc'], 1, 100)} % "
                   f"({excess(s, 'mirror_share'):+.1f} points).")
    offset = [s for s in add if s["offset"]]
    if offset:
        below = sum(place(s, tol) == "below" for s in offset)
        out.append(f"* With the second operand fed as token j + {offset[0]['offset']}, the mirrored pair (j, i) is "
                   f"another pair of tokens, not the same two swapped: {below} of the {len(offset)} offset strip rows lie "
                   f"more than {tol:g} points below their mirror share (U-Acc − mirror: "
                   + ", ".join(f"{excess(s, 'mirror_share'):+.1f}" for s in offset) + " points).")
    beyond = [s for s in rows if s["fn"] not in ("add", "x2_xy_y2", "x3_xy_y3") and place(s, tol) == "above"]
    if beyond:
        out.append("* " + "; ".join(
            f"**{FUNCTION_LABELS[s['fn']]}** ({s['row']}): U-Acc {pct(mean(s['u_acc']))} % against a mirror share "
            f"of {pct(mean(s['mirror_share']))} %, an orbit share of {pct(mean(s['orbit_share']))} % (group of order "
            f"{s['group_order']}) and a full-orbit share of {pct(mean(s['full_orbit_share']))} %" for s in beyond)
            + ". These models answer more test pairs than mirroring alone allows.")
    over = [s for s in rows if excess(s, "full_orbit_share") > tol]
    out.append(f"* U-Acc exceeds the full-orbit share by more than {tol:g} points in {len(over)} of the {len(rows)} "
               "rows" + (": " + ", ".join(f"{s['chapter']} {s['row']}" for s in over) if over else "")
               + "; the largest difference, U-Acc minus the full-orbit share, is "
               + f"{max(excess(s, 'full_orbit_share') for s in rows):+.1f} points.")
    return out
