"""Which progress measure announces grokking? The book's own comparison: every candidate measure on the same runs,
judged by rules fixed before any run was looked at (grok_core.transitions, grok_core.criteria).

The paper's transformer on x + y mod p, AdamW (0.9, 0.98), full batch, over a grid of p, train share and weight
decay with three seeds, plus slices on x - y and x² + xy + y² and without weight decay (softmax and StableMax).
Runs stop 3k steps after a sustained 99 % test accuracy. Measures are computed from weight snapshots on the
training machine (grok_core.progress) and only their histories are kept.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .. import criteria as cr
from .. import progress
from ..store import results_root
from ..verdicts import ResultBox, by_share, holding
from .settings import as_float_list, as_int_list, count, flag, require, run_config

PROFILES = {
    "paper": dict(primes=[47, 59, 71, 97], fracs=[0.3, 0.4, 0.5, 0.6], wds=[0.3, 1.0, 3.0], n_seeds=3, split_seed=100,
                  slice_fns="subtract,x2_xy_y2", slice_frac=0.5, nowd_p=59, nowd_frac=0.5, nowd_seeds=8,
                  d_model=128, lr=1e-3, n_steps=30000, stop_hold=1000, stop_after=3000, record_dense=100,
                  record_every=10, snapshots=60, snapshot_every=250, most_expensive=40, n_example_snapshots=2,
                  horizons=[500, 1000, 2000]),
    # 8 runs at p = 23 and 31 of a narrower model at a larger rate: grokking within the budget in some runs and not in
    # others, so that every criterion has something to rank. 2,500 steps, not 3,000: on the 2-core CPU 3,000 steps
    # trained in 85 s and measuring took 50 s more (bench/results/measures_cost.md); 2,500 fit in two minutes
    "quick": dict(primes=[23, 31], fracs=[0.5, 0.7], wds=[1.0, 3.0], n_seeds=1, split_seed=100, slice_fns="",
                  slice_frac=0.5, nowd_p=23, nowd_frac=0.5, nowd_seeds=0, d_model=32, lr=1e-2, n_steps=2500,
                  stop_hold=1000, stop_after=200, record_dense=100, record_every=10, snapshots=20, snapshot_every=250,
                  most_expensive=3, n_example_snapshots=0, horizons=[250, 500, 1000]),
}
GROK_SIGN = {"add": "x+y", "subtract": "x−y", "x2_xy_y2": "x²+xy+y²"}
LABELS = {"med": "MED (1/p)", "med_sum": "MED (sum)", "weight_norm": "weight norm", "weight_norm_embed": "‖embed‖",
          "weight_norm_attn": "‖attention‖", "weight_norm_mlp": "‖MLP‖", "weight_norm_unembed": "‖unembed‖",
          "restricted_loss": "restricted loss", "excluded_loss": "excluded loss", "key_frequencies": "key frequencies",
          "fourier_gini": "Fourier Gini of W_E", "fourier_ipr": "Fourier IPR of W_E", "circuit_share": "(k, k) logit share",
          "sc_fraction": "SC fraction", "zero_loss_fraction": "zero-loss fraction", "nlm_cosine": "NLM cosine",
          "local_complexity_train": "LC (train)", "local_complexity_test": "LC (held-out)", "llc": "LLC",
          "qk_eff_rank": "eff. rank W_Q W_Kᵀ", "train_loss": "train loss", "test_loss": "test loss (ceiling)",
          "restricted_loss_final": "restricted loss, final keys (ceiling)",
          "excluded_loss_final": "excluded loss, final keys (ceiling)", "clock": "clock (t_mem)"}
PREDICTS_POSITIVE = 0.8     # share of grokked runs whose lead is > 0
PREDICTS_C = 0.8            # concordance
ALPHA = 0.05                # permutation test level
EARLIER = ("weight_norm", "restricted_loss", "excluded_loss", "fourier_gini")   # the measures before MED


def check(S: dict):
    S["primes"], S["horizons"] = as_int_list("primes", S["primes"]), as_int_list("horizons", S["horizons"])
    S["fracs"], S["wds"] = as_float_list("fracs", S["fracs"]), as_float_list("wds", S["wds"])
    S["slice_fns"] = [f for f in str(S["slice_fns"]).replace(" ", "").split(",") if f]
    require(all(f in GROK_SIGN for f in S["slice_fns"]), "slice_fns", S["slice_fns"],
            f"choose among {', '.join(GROK_SIGN)}")
    require(all(h >= 1 for h in S["horizons"]), "horizons", S["horizons"], "horizons are steps >= 1")
    for name in ("n_seeds", "most_expensive"):
        count(name, S[name], 1)
    for name in ("nowd_seeds", "n_example_snapshots"):
        count(name, S[name], 0)
    configs(S)                                # every remaining value is checked by the configs themselves


def _run(S, p, frac, wd, seed, **fields):
    return run_config(S, p=p, frac_train=frac, wd=wd, init_seed=seed, split_seed=S["split_seed"] + seed, stop_acc=0.99,
                      **fields)


def grid_configs(S):
    return [_run(S, p, f, wd, s) for p in S["primes"] for f in S["fracs"] for wd in S["wds"] for s in range(S["n_seeds"])]


def slice_configs(S):
    return [_run(S, p, S["slice_frac"], wd, s, fn=fn) for fn in S["slice_fns"] for p in S["primes"] for wd in S["wds"]
            for s in range(S["n_seeds"])]


def nowd_configs(S):
    """Without weight decay, softmax and StableMax (Prieto et al.'s fix), so that the collapse measures can fire."""
    return [_run(S, S["nowd_p"], S["nowd_frac"], 0.0, s, loss=loss) for loss in ("ce", "stablemax")
            for s in range(S["nowd_seeds"])]


PARTS = {"grid": grid_configs, "slices": slice_configs, "no weight decay": nowd_configs}


def configs(S):
    return [c for make in PARTS.values() for c in make(S)]


def example_keys(S) -> tuple[str, ...]:
    """The runs whose snapshots are kept (a few steps each): the first grid run at the median train share."""
    if not S["n_example_snapshots"]:
        return ()
    grid = grid_configs(S)
    frac = S["fracs"][len(S["fracs"]) // 2]
    return tuple(c.key() for c in grid if c.frac_train == frac and c.init_seed == 0)[:1]


def transitions_path(S):
    """Where the pipeline writes the per-run transition times: named by the profile when S is one."""
    tag = next((name for name in PROFILES if _resolved(name) == _key(S)), None)
    if tag is None:
        tag = "custom-" + hashlib.sha256(" ".join(c.key() for c in configs(S)).encode()).hexdigest()[:12]
    return results_root() / "progress-measures" / f"transitions_{tag}.csv"


def _key(S):
    return tuple(c.key() for c in configs(S))


def _resolved(profile):
    from . import setup
    return _key(setup("progress_measures", profile, {})[0])


COMMAND = "python -m grok_core.programme run --chapters progress_measures"   # --compile changes nothing here


def missing_records(S) -> str | None:
    store = progress.store()
    cs = configs(S)
    miss = len({c.key() for c in cs if not store.entry(c.key()).exists()})
    if not miss:
        return None
    return (f"{miss} of the {len({c.key() for c in cs})} progress-measure runs are not in the store "
            f"({store.runs_dir}); train them on a GPU with `{COMMAND}`")


def _pipeline(S, device=None, progress_bar=False) -> str:
    store = progress.store()
    done = progress.train_and_measure(configs(S), store, device, examples=example_keys(S),
                                      n_example=S["n_example_snapshots"], most_expensive=S["most_expensive"],
                                      progress=progress_bar)
    progress.write_transitions(progress.load_records(configs(S), store), transitions_path(S))
    return done


def extra_training(S: dict, train: bool) -> str:
    """The programme's hook: train and measure the missing runs on the GPU, then write the transition CSV."""
    store = progress.store()
    cs = configs(S)
    have = sum(store.entry(c.key()).exists() for c in {c.key(): c for c in cs}.values())
    if not train:
        return f"progress_measures: {len(cs)} runs with measures from snapshots, {have} stored"
    return "progress_measures: " + _pipeline(S, progress_bar=True)


def load(S: dict, configs_given=(), train: bool = True) -> list:
    """The records of every run (trained and measured where missing when train; else LookupError naming what is
    missing and the command that trains it); the transition CSV is written when it is not there."""
    flag("train", train)
    if train:
        _pipeline(S)
    elif missing_records(S):
        raise LookupError(missing_records(S))
    runs = progress.load_records(configs(S), progress.store())
    if not transitions_path(S).exists():
        progress.write_transitions(runs, transitions_path(S))
    return runs


# -- the criteria, per measure ------------------------------------------------------------------------------------
def _series(run, name):
    steps, v = progress.measure_series(run, name)
    return steps, v


def _within(run, row, name) -> tuple[float, float]:
    """(C): Spearman of M and the test loss over the snapshots in [t_mem, t_grok + delay], levels and differences."""
    steps, v = _series(run, name)
    _, loss = _series(run, "test_loss")
    lo, hi = row["t_mem"], 2 * row["t_grok"] - row["t_mem"]
    keep = (steps >= lo) & (steps <= hi) & np.isfinite(v)
    a, b = v[keep], loss[keep]
    return cr.spearman(a, b), cr.spearman(np.diff(a), np.diff(b))


def _at(steps, v, t):
    """The last finite value at or before step t (causal), NaN if none."""
    keep = np.isfinite(v) & (steps <= t)
    return v[keep][-1] if keep.any() else np.nan


def _warning(runs, rows, name, h):
    """(D) at t_mem + h: the runs still undecided, their features (clock: log t_mem; a measure: also its value and its
    change since t_mem, both read at or before t_mem + h), the outcome and the remaining time."""
    X, grok, remain = [], [], []
    for run, row in zip(runs, rows):
        t0 = row["t_mem"]
        if t0 is None or t0 + h >= row["end"] or (row["t_grok"] is not None and row["t_grok"] <= t0 + h):
            continue
        x = [np.log(t0)]
        if name != "clock":
            steps, v = _series(run, name)
            now, then = _at(steps, v, t0 + h), _at(steps, v, t0)
            if not np.isfinite(now) or not np.isfinite(then):
                continue
            x += [now, now - then]
        X.append(x)
        grok.append(row["t_grok"] is not None)
        remain.append(np.log(row["t_grok"] - t0 - h) if row["t_grok"] is not None else np.nan)
    return np.array(X), np.array(grok), np.array(remain)


def early_warning(runs, rows, name, h) -> dict:
    X, y, remain = _warning(runs, rows, name, h)
    out = {"h": h, "runs": len(y), "auroc": None, "auroc_ci": [None, None], "remaining_error": None}
    if len(y) >= 4 and 0 < y.sum() < len(y) - 1 and y.sum() >= 2:
        score = cr.loo_scores(X, y.astype(float), "logistic")
        out["auroc"] = cr.auroc(score, y)
        out["auroc_ci"] = list(cr.interval(cr.bootstrap(lambda i: cr.auroc(score[i], y[i]), len(y))))
    g = np.isfinite(remain)
    if g.sum() >= 4:
        out["remaining_error"] = float(np.median(np.abs(cr.loo_scores(X[g], remain[g], "linear") - remain[g])))
    return out


def measure_claims(S, runs, rows, name, clock_pred=None) -> dict:
    """Every criterion for one measure (or the clock): on the runs that memorised and where the measure is defined."""
    keep = [i for i, r in enumerate(rows) if r["t_mem"] is not None and
            (name == "clock" or np.isfinite(_series(runs[i], name)[1]).any())]
    rs, ws = [rows[i] for i in keep], [runs[i] for i in keep]
    if name == "clock":
        pred = np.array([r["t_mem"] for r in rs], dtype=float)
    else:
        pred = np.array([r["end"] if r[f"t50.{name}"] is None else r[f"t50.{name}"] for r in rs], dtype=float)
    event = np.array([r["t_grok"] is not None for r in rs])
    time = np.array([r["t_grok"] if r["t_grok"] is not None else r["end"] for r in rs], dtype=float)
    out = {"kind": "measure", "measure": name, "label": LABELS[name], "runs": len(rs), "grokked": int(event.sum()),
           "admissible": name in progress.CANDIDATES or name == "clock"}
    leads = [r["t_grok"] - t for r, t in zip(rs, pred) if r["t_grok"] is not None] if name != "clock" else []
    out["lead"] = cr.lead_summary(leads)
    cps = [r["t_grok"] - r[f"cp.{name}"] for r in rs if name != "clock" and r["t_grok"] is not None
           and r[f"cp.{name}"] is not None]
    out["cp_lead_median"] = float(np.median(cps)) if cps else None
    out["concordance"] = cr.concordance(pred, time, event)
    out["concordance_ci"] = list(cr.interval(cr.bootstrap(lambda i: cr.concordance(pred[i], time[i], event[i]), len(rs))))
    out["permutation_p"] = cr.permutation_p(pred, time, event)
    if clock_pred is not None:
        cp = np.array([clock_pred[r["key"]] for r in rs], dtype=float)
        diff = cr.bootstrap(lambda i: cr.concordance(pred[i], time[i], event[i]) - cr.concordance(cp[i], time[i], event[i]),
                            len(rs))
        out["vs_clock_ci"] = list(cr.interval(diff))
    g = event
    out["spearman"] = cr.spearman(pred[g], time[g])
    out["lopo_error"] = cr.leave_one_group_out_error(np.log(np.maximum(pred[g], 1)), np.log(time[g]),
                                                      np.array([r["p"] for r in rs])[g])
    if name != "clock":
        within = np.abs([_within(w, r, name) for w, r in zip(ws, rs) if r["t_grok"] is not None]).reshape(-1, 2)
        out["tracking"], out["tracking_diff"] = (float(np.median(c[np.isfinite(c)])) if np.isfinite(c).any() else None
                                                 for c in within.T)
    out["warning"] = [early_warning(ws, rs, name, h) for h in S["horizons"]]
    out["predicts"] = predicts(out)
    return out


def rule_parts(m: dict) -> dict[str, bool]:
    """Each part of the rule, held or not: the median lead's 95 % interval lies above 0 with at least
    PREDICTS_POSITIVE of the grokked runs leading; concordance >= PREDICTS_C with permutation p < ALPHA; the paired
    interval of its concordance minus the clock's lies above 0. The clock itself holds none."""
    lead = m["lead"]
    ok = m["measure"] != "clock" and bool(lead["n"])
    vs_clock = (m.get("vs_clock_ci") or [None])[0]
    return {"median lead above 0": ok and lead["ci"][0] is not None and lead["ci"][0] > 0,
            f"≥ {PREDICTS_POSITIVE:.0%} of runs leading": ok and lead["positive"] >= PREDICTS_POSITIVE,
            f"concordance ≥ {PREDICTS_C}": ok and m["concordance"] >= PREDICTS_C,
            f"permutation p < {ALPHA}": ok and m["permutation_p"] < ALPHA,
            "beats the clock": ok and vs_clock is not None and vs_clock > 0}


def predicts(m: dict) -> bool:
    """The rule: every part of rule_parts holds."""
    return all(rule_parts(m).values())


def population(rows) -> dict:
    mem = [r for r in rows if r["t_mem"] is not None]
    return {"kind": "population", "runs": len(rows), "memorised": len(mem),
            "grokked": sum(r["t_grok"] is not None for r in rows),
            "median_delay": float(np.median([r["t_grok"] - r["t_mem"] for r in mem if r["t_grok"] is not None]))
            if any(r["t_grok"] is not None for r in mem) else None,
            "t_drop_before_grok": float(np.mean([r["t_drop"] <= r["t_grok"] for r in mem
                                                 if r["t_grok"] is not None and r["t_drop"] is not None]))
            if any(r["t_grok"] is not None and r["t_drop"] is not None for r in mem) else None}


def claims(S: dict, runs) -> list[dict]:
    """The population's ground truth, then every criterion for the clock, each candidate and each ceiling; runs are
    the records (load), the transition times are read from the pipeline's CSV."""
    rows = progress.read_transitions(transitions_path(S))
    by_key = {r.key: r for r in runs}
    runs = [by_key[r["key"]] for r in rows]
    clock = measure_claims(S, runs, rows, "clock")
    clock_pred = {r["key"]: r["t_mem"] for r in rows}
    return [population(rows), clock] + [measure_claims(S, runs, rows, n, clock_pred)
                                        for n in progress.CANDIDATES + progress.CEILINGS]


# -- the verdict ------------------------------------------------------------------------------------------------
def _measures(settings):
    return {s["measure"]: s for s in settings if s["kind"] == "measure"}


def _admissible(m: dict) -> list[dict]:
    """The admissible candidates with a concordance, most concordant first (the clock is the baseline, not one)."""
    return sorted((s for n, s in m.items() if s["admissible"] and n != "clock" and np.isfinite(s["concordance"])),
                  key=lambda s: -s["concordance"])


def findings(settings: list[dict]) -> dict:
    """The paper's claim about MED as three tests: predicts (MED meets the rule, `predicts`); tracks (MED's median
    |Spearman| with the test loss on first differences is at least each earlier measure's, EARLIER); ranks (no
    admissible candidate's concordance beats MED's by more than its bootstrap interval: the best one's interval
    reaches down to MED's value)."""
    m = _measures(settings)
    med = m["med"]
    earlier = [m[n]["tracking_diff"] for n in EARLIER if m[n].get("tracking_diff") is not None]
    best = _admissible(m)[0]
    return {"predicts": med["predicts"],
            "tracks": med.get("tracking_diff") is not None and all(med["tracking_diff"] >= e for e in earlier),
            "ranks": best["measure"] == "med" or (best["concordance_ci"][0] is not None
                                                  and best["concordance_ci"][0] <= med["concordance"])}


def verdict(found: dict) -> str:
    """reproduced if all three hold, partly reproduced if at least two do, else not reproduced."""
    return by_share(sum(found.values()), len(found), some_of=2 / 3)


def med_rank(settings) -> tuple[int, int]:
    """(MED's place by concordance among the admissible candidates, how many there are)."""
    cands = _admissible(_measures(settings))
    return [s["measure"] for s in cands].index("med") + 1, len(cands)


def _f(x, nd=2):
    return "–" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{nd}f}"


def result(S: dict, C: dict) -> ResultBox:
    st = C["settings"]
    pop, m = st[0], _measures(st)
    F = findings(st)
    rank, n = med_rank(st)
    med, clock = m["med"], m["clock"]
    winners = "; ".join(s["label"] for s in m.values() if s["predicts"] and s["admissible"]) or "none"
    ceilings = "; ".join(s["label"] for s in m.values() if s["predicts"] and not s["admissible"])
    return ResultBox(
        claim=("MED, the mean distance between consecutive operand embeddings, is a concise progress measure that "
               "traces the test loss more accurately than earlier ones (weight norm, Nanda et al.'s restricted and "
               "excluded loss, Fourier sparsity)."),
        measured=(f"{pop['runs']} runs, {pop['memorised']} memorised, {pop['grokked']} grokked. MED ranks {rank} of "
                  f"{n} admissible measures by concordance with the grokking step ({_f(med['concordance'])}, 95 % CI "
                  f"{_f(med['concordance_ci'][0])}–{_f(med['concordance_ci'][1])}; the clock {_f(clock['concordance'])}); "
                  f"its median lead is {_f(med['lead']['median'], 0)} steps with "
                  f"{_f(100 * med['lead']['positive'] if med['lead']['positive'] is not None else None, 0)} % of "
                  f"runs leading; it tracks the test loss's steps with median |ρ| {_f(med.get('tracking_diff'))}. "
                  f"Admissible measures that predict grokking by the rule: {winners}"
                  + (f" (and, not admissible: {ceilings})" if ceilings else "") + ". Tests holding: "
                  + holding(F) + "."),
        verdict=verdict(F),
        rule=(f"A measure predicts grokking if its median lead (t_grok − its 50 % transition) has a 95 % bootstrap "
              f"interval above 0 with at least {PREDICTS_POSITIVE:.0%} of grokked runs leading, its Harrell "
              f"concordance with t_grok is at least {PREDICTS_C} with permutation p < {ALPHA}, and the paired bootstrap "
              "interval of its concordance minus the clock's lies above 0. Three tests of the paper's claim: MED predicts "
              "grokking; MED's median |Spearman| with the test loss on first differences is at least that of weight "
              "norm, restricted loss, excluded loss and Fourier Gini; no candidate's concordance beats MED's beyond "
              "its interval. Reproduced if all three hold, partly if two do, else not reproduced."))


APART_HEADERS = ["measure", "median lead (IQR)", "lead > 0", "C-index (95 % CI)", "Spearman t_M, t_grok",
                 "track |ρ|", "track Δ |ρ|"]


def apart(C: dict) -> tuple[str, list[list[str]]]:
    """Where the paper's claim and these runs part: the parts of the rule MED misses and its numbers beside the
    earlier measures the paper compares it with and the best admissible measure by concordance (text, table rows)."""
    m = _measures(C["settings"])
    med = m["med"]
    parts = rule_parts(med)
    missed = [part for part, held in parts.items() if not held]
    best = _admissible(m)[0]
    earlier = [m[n] for n in EARLIER]
    top = max((s for s in earlier if s.get("tracking_diff") is not None), key=lambda s: s["tracking_diff"])
    text = (f"MED misses {len(missed)} of the rule's {len(parts)} parts"
            + (f" ({'; '.join(missed)})" if missed else "") + f". Over the {C['settings'][0]['grokked']} grokked runs "
            f"its transition comes a median {_f(med['lead']['median'], 0)} steps before t_grok, interquartile range "
            f"{_f(med['lead']['q1'], 0)} to {_f(med['lead']['q3'], 0)}, and orders the runs' grokking steps with "
            f"Spearman {_f(med.get('spearman'))}, against {_f(best.get('spearman'))} for {best['label']}, the most "
            f"concordant admissible measure. On first differences MED follows the test loss with median |ρ| "
            f"{_f(med.get('tracking_diff'))}; the best of the earlier measures, {top['label']}, "
            f"{_f(top.get('tracking_diff'))}. The paper shows MED beside the test loss in single runs; over many "
            "runs and by the rule above, MED's transition " + ("is a loose clock for grokking." if missed
                                                              else "announces grokking."))
    rows = [[s["label"], _lead_cell(s["lead"]), _f(s["lead"]["positive"]), _concordance_cell(s), _f(s.get("spearman")),
             _f(s.get("tracking")), _f(s.get("tracking_diff"))]
            for s in [med] + earlier + ([best] if best["measure"] not in ("med", *EARLIER) else [])]
    return text, rows


TABLE_HEADERS = ["measure", "runs", "median lead (IQR)", "lead > 0", "C-index (95 % CI)", "perm. p", "C − clock (CI)",
                 "Spearman", "LOPO |err|", "track |ρ|", "track Δ |ρ|", "AUROC at h", "remain |err| at h", "predicts"]


def _lead_cell(lead: dict) -> str:
    return f"{_f(lead['median'], 0)} ({_f(lead['q1'], 0)}, {_f(lead['q3'], 0)})"


def _concordance_cell(s: dict) -> str:
    ci = s["concordance_ci"]
    return f"{_f(s['concordance'])} ({_f(ci[0])}, {_f(ci[1])})"


def table_rows(settings: list[dict]) -> list[list[str]]:
    rows = []
    for s in (s for s in settings if s["kind"] == "measure"):
        lead = s["lead"]
        vs = s.get("vs_clock_ci")
        rows.append([s["label"], f"{s['runs']} ({s['grokked']})", _lead_cell(lead), _f(lead["positive"]),
                     _concordance_cell(s), _f(s["permutation_p"], 3),
                     "–" if vs is None else f"{_f(vs[0])}, {_f(vs[1])}", _f(s["spearman"]), _f(s["lopo_error"]),
                     _f(s.get("tracking")), _f(s.get("tracking_diff")),
                     " / ".join(_f(w["auroc"]) for w in s["warning"]),
                     " / ".join(_f(w["remaining_error"]) for w in s["warning"]), "yes" if s["predicts"] else "no"])
    return rows


# -- what the figures show ------------------------------------------------------------------------------------
FIGURE_MEASURES = ("med", "weight_norm", "restricted_loss", "circuit_share", "fourier_gini", "local_complexity_train",
                   "llc")


NOWD_HEADERS = ["loss", "runs", "grokked", "final test acc. (min–max)", "collapsed share at the end (min–max)",
                "first step with ≥ 0.99 collapsed (median)"]
NOWD_LOSSES = {"ce": "softmax (fp32)", "stablemax": "StableMax"}


def nowd_rows(S: dict, runs, rows: list[dict]) -> list[list[str]]:
    """The runs without weight decay, one row per loss: how many grok, where their test accuracy ends, and what the
    collapse measure (share of train rows whose normalised output, softmax or StableMax, rounds to one) reads."""
    recs, by = {r.key: r for r in runs}, {r["key"]: r for r in rows}
    out = []
    for loss, label in NOWD_LOSSES.items():
        cs = [c for c in nowd_configs(S) if c.loss == loss]
        if not cs:
            continue
        acc = [float(recs[c.key()].history["test_acc"][-1]) for c in cs]
        series = [progress.measure_series(recs[c.key()], "sc_fraction") for c in cs]
        first = [int(steps[np.argmax(v >= 0.99)]) for steps, v in series if (v >= 0.99).any()]
        end = [v[-1] for _, v in series]
        out.append([label, str(len(cs)), str(sum(by[c.key()]["t_grok"] is not None for c in cs)),
                    f"{min(acc):.2f}–{max(acc):.2f}", f"{min(end):.3f}–{max(end):.3f}",
                    f"{np.median(first):,.0f} ({len(first)} of {len(cs)} runs)" if first else "never"])
    return out


def example_rows(rows: list[dict], n: int = 4) -> list[dict]:
    """n grokked runs for Figure A: one per p where there are enough, the median delay of each p's grokked runs."""
    grokked = [r for r in rows if r["t_grok"] is not None and r["t_mem"] is not None]
    out = []
    for p in sorted({r["p"] for r in grokked}):
        rs = sorted((r for r in grokked if r["p"] == p), key=lambda r: r["t_grok"] - r["t_mem"])
        out.append(rs[len(rs) // 2])
    rest = [r for r in grokked if r not in out]
    return (out + rest)[:n]


def aligned(run, row: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(step - t_grok, the measure z-scored over the run's snapshots) for Figure A."""
    steps, v = progress.measure_series(run, name)
    keep = np.isfinite(v)
    s, v = steps[keep], v[keep]
    sd = v.std()
    return s - row["t_grok"], (v - v.mean()) / (sd if sd > 0 else 1.0)
