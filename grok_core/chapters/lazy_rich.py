"""Kumar et al. (ICLR 2024): grokking as the transition from lazy to rich training dynamics.

Setting A is the paper's own: polynomial regression with a one-hidden-layer network whose output is scaled by
alpha (and its loss by 1/alpha^2), trained by full-batch GD without weight decay (grok_core.lazy_rich). Setting B
carries the alpha knob to the book's transformer on x + y mod p, with the centred output alpha (f - f_0), wd 0 and
AdamW. Adam's step does not change when the loss is multiplied by a constant, so dividing the loss by alpha^2
would do nothing there; instead the learning rate is lr0 / alpha, which keeps the step in function space
(alpha times the parameter step, which Adam keeps near lr) at lr0 for every alpha ("matched" arm). A second arm
keeps lr0 at every alpha ("fixed"), where alpha also multiplies the function-space step.
"""
from __future__ import annotations

import numpy as np

from ..analysis import steps_to_threshold
from ..lazy_rich.config import LazyRichConfig
from ..lazy_rich.train import LazyRichStore
from ..lazy_rich.train import load_or_train as load_or_train_a
from ..plotting import fmt_pm
from ..runner import load_or_train as load_or_train_b
from ..store import RunStore
from ..verdicts import ResultBox
from .claims import reached_text, run_facts
from .settings import FULL_RECORD, as_float_list, count, flag, require, run_config

# Setting B's paper runs record every step below 1,000 and every 50th after it (1,580 entries, about 45 kB a run),
# coarser than the other chapters' PAPER_RECORD: their 104 runs then fit the store's 50 MB budget beside the rest.
B_RECORD = dict(record_dense=1000, record_every=50)

PROFILES = {
    # A: the paper's sizes, alpha = 2^-5 ... 2^4 at eps = 1/4, and eps = 2^-2 ... 2^2 at alpha = 1, 100,000 GD steps
    # at the step 0.5 N; B: the main chapters' transformer at p = 97 with half of the table for training, wd 0.
    "paper": dict(d=100, n_train=550, n_test=1000, width=500, alphas=[2.0 ** k for k in range(-5, 5)],
                  sweep_eps=0.25, eps_values=[0.25, 0.5, 1.0, 2.0, 4.0], eps_alpha=1.0, a_lr=0.5, a_steps=100000,
                  n_records=160, n_seeds=8, p=97, frac_train=0.5, b_alphas=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
                  b_fixed_alphas=[0.25, 0.5, 2.0, 4.0, 8.0, 16.0], b_lr=1e-3, b_steps=30000, **B_RECORD),
    # A at D = 30, P = 120, N = 100 for 5,000 steps (the phenomenon in seconds); B at p = 23, a few hundred steps.
    "quick": dict(d=30, n_train=120, n_test=200, width=100, alphas=[0.125, 1.0, 8.0], sweep_eps=0.25,
                  eps_values=[0.25, 1.0, 4.0], eps_alpha=1.0, a_lr=0.5, a_steps=5000, n_records=40, n_seeds=2,
                  p=23, frac_train=0.6, b_alphas=[0.5, 4.0], b_fixed_alphas=[], b_lr=1e-2, b_steps=200, **FULL_RECORD),
}

FIT = 0.01          # train loss (over the mean square target) that counts as fitted
GEN_SHARE = 0.5     # a run generalises when its test loss falls below this share of its kernel-regression level
RICH_DELAY = 2.0    # at the smallest alpha, generalising within this factor of the fitting step is "no delay"
GROK_DELAY = 3.0    # generalising this many times later than fitting is grokking (Kumar's Fig. 1: train falls at
                    # about 5,000 steps, test at 15,000 or later)
LAZY_BAND = 0.2     # lazy: the final test loss within 20 % of the linearised model's at the same step ...
LAZY_MOVE = 0.1     # ... and the kernel moving at most a tenth of what it moves at the smallest alpha


def check(S: dict):
    S["alphas"], S["eps_values"], S["b_alphas"] = (as_float_list(k, S[k]) for k in ("alphas", "eps_values", "b_alphas"))
    S["b_fixed_alphas"] = [] if S["b_fixed_alphas"] in ([], "") else as_float_list("b_fixed_alphas", S["b_fixed_alphas"])
    for k in ("alphas", "b_alphas", "b_fixed_alphas"):
        require(all(a > 0 for a in S[k]), k, S[k], "output scales must be > 0")
    require(all(e >= 0 for e in S["eps_values"]), "eps_values", S["eps_values"], "eps must be >= 0")
    for k in ("sweep_eps", "eps_alpha", "a_lr", "b_lr"):
        require(isinstance(S[k], (int, float)) and not isinstance(S[k], bool), k, S[k], "it must be a number")
        S[k] = float(S[k])
    require(S["eps_alpha"] in S["alphas"], "eps_alpha", S["eps_alpha"], "it must be one of alphas, the runs the "
            "eps sweep shares with the alpha sweep")
    count("n_seeds", S["n_seeds"], 1)
    a_configs(S), run_configs(S)          # every remaining value is checked by the configs themselves


def a_config(S: dict, alpha: float, eps: float, seed: int) -> LazyRichConfig:
    return LazyRichConfig(d=S["d"], n_train=S["n_train"], n_test=S["n_test"], width=S["width"], alpha=alpha, eps=eps,
                          lr=S["a_lr"], n_steps=S["a_steps"], n_records=S["n_records"], seed=seed, data_seed=seed)


def a_settings(S: dict) -> list[tuple[str, float, float]]:
    """(sweep, alpha, eps) of Setting A: the alpha sweep at sweep_eps, then the eps sweep at eps_alpha."""
    return ([("alpha", a, S["sweep_eps"]) for a in S["alphas"]] + [("eps", S["eps_alpha"], e) for e in S["eps_values"]])


def a_configs(S: dict) -> list[LazyRichConfig]:
    """Setting A's runs, setting by setting, seeds 0..n_seeds-1 (init and data seed alike); runs shared by both
    sweeps appear twice and train once."""
    return [a_config(S, a, e, s) for _, a, e in a_settings(S) for s in range(S["n_seeds"])]


def b_settings(S: dict) -> list[tuple[str, float, float]]:
    """(arm, alpha, lr) of Setting B: lr0/alpha at every alpha of b_alphas (matched), then lr0 at those of b_fixed_alphas
    (fixed; alpha = 1 is the matched arm's run)."""
    return ([("matched", a, S["b_lr"] / a) for a in S["b_alphas"]]
            + [("fixed", a, S["b_lr"]) for a in S["b_fixed_alphas"] if a != 1])


def run_configs(S: dict):
    """Setting B's transformer runs (the programme trains them): init and split seed i for i < n_seeds."""
    return [run_config(S, fn="add", split="random", wd=0.0, n_steps=S["b_steps"], lr=lr, output_scale=a,
                       output_centre=True, measures="param_move", init_seed=s, split_seed=s)
            for _, a, lr in b_settings(S) for s in range(S["n_seeds"])]


# -- the runs, and what is missing ------------------------------------------------------------------------------
def missing_runs(S: dict, configs) -> str | None:
    """None when the store holds every run of both settings; else one line naming what is missing and how to train it."""
    a_store, b_store = LazyRichStore(), RunStore()
    a_miss = len({c.key() for c in a_configs(S) if not a_store.entry(c.key()).exists()})
    b_miss = len({c.key() for c in configs if not b_store.entry(c.key()).exists()})
    if not a_miss and not b_miss:
        return None
    parts = ([f"{a_miss} of Setting A's {len({c.key() for c in a_configs(S)})} polynomial-regression runs"] if a_miss else []) + \
            ([f"{b_miss} of Setting B's {len({c.key() for c in configs})} transformer runs"] if b_miss else [])
    return (" and ".join(parts) + f" are not in the store ({a_store.runs_dir.parent}); train them on a GPU with "
            "`python -m grok_core.programme run --chapters lazy_rich`")


def load(S: dict, configs, train: bool) -> tuple[list, list]:
    """(Setting A's runs, Setting B's runs), trained where missing when train; else LookupError naming what is missing."""
    flag("train", train)
    if not train:
        missing = missing_runs(S, configs)
        if missing:
            raise LookupError(missing)
    return load_or_train_a(a_configs(S), train=train), load_or_train_b(configs, progress=False, train=train)


# -- Setting A: per run and per setting ---------------------------------------------------------------------------
def _first_below(curve, level, steps) -> int | None:
    return steps_to_threshold(-np.asarray(curve, dtype=np.float64), -level, steps)


def a_facts(run) -> dict:
    """One regression run: when it fits (train loss <= FIT) and generalises (test loss <= GEN_SHARE of its K_0 level),
    the ratio of the two steps, and its final losses and kernel and weight measures."""
    h, k0 = run.history, run.meta["k0_test_loss"]
    fit = _first_below(h["train_loss"], FIT, h["step"])
    gen = _first_below(h["test_loss"], GEN_SHARE * k0, h["step"])
    return {"fit_step": fit, "gen_step": gen, "delay": None if fit is None or gen is None else gen / max(fit, 1),
            "k0_test_loss": k0, "test_loss_at_fit": None if fit is None else float(h["test_loss"][list(h["step"]).index(fit)]),
            **{f"{m}_end": float(h[m][-1]) for m in ("train_loss", "test_loss", "lin_test_loss", "alignment",
                                                       "kernel_move", "param_move", "weight_norm")},
            "alignment_start": float(h["alignment"][0]), "weight_norm_start": float(h["weight_norm"][0])}


def a_claims(S: dict, runs) -> list[dict]:
    """Per Setting A setting (sweep, alpha, eps): every run's facts, as lists over seeds."""
    by_key = {r.key: r for r in runs}
    out = []
    for sweep, a, e in a_settings(S):
        facts = [a_facts(by_key[a_config(S, a, e, s).key()]) for s in range(S["n_seeds"])]
        out.append({"setting": "A", "sweep": sweep, "alpha": a, "eps": e,
                    **{k: [f[k] for f in facts] for k in facts[0]}})
    return out


def b_claims(S: dict, runs) -> list[dict]:
    """Per Setting B arm and alpha: the steps to train accuracy 1 and test accuracy 0.95, the delay between them,
    the late test accuracy and the parameter movement at the end, per seed."""
    out = []
    for arm, a, lr in b_settings(S):
        rs = [r for r in runs if r.config.output_scale == a and r.config.lr == lr]
        facts = [run_facts(r) for r in rs]
        out.append({"setting": "B", "arm": arm, "alpha": a, "lr": lr, "fit_step": [f["train_acc_1_at"] for f in facts],
                    "grok_step": [f["test_acc_95_at"] for f in facts], "late_test_acc": [f["late_test_acc"] for f in facts],
                    "param_move_end": [float(r.history["param_move"][-1]) for r in rs]})
    return out


def claims(S: dict, runs) -> list[dict]:
    """Setting A's settings (read from their store: the notebook has loaded or trained them), then Setting B's."""
    return a_claims(S, load_or_train_a(a_configs(S), train=False)) + b_claims(S, runs)


# -- tables ------------------------------------------------------------------------------------------------------
A_HEADERS = ["sweep", "α", "ε", "fit (step)", "generalise (step)", "delay", "test loss", "linearised, test",
             "K₀ level", "kernel movement", "weight movement", "alignment start → end", "‖W‖ start → end"]


def _counted(xs, digits: int) -> str:
    got = [x for x in xs if x is not None]
    return f"{fmt_pm(got, digits)} ({len(got)}/{len(xs)})" if got else f"never (0/{len(xs)})"


def a_rows(settings: list[dict]) -> list[list[str]]:
    """One row per Setting A setting, mean ± sd over seeds."""
    return [[s["sweep"], f"{s['alpha']:g}", f"{s['eps']:g}", reached_text(s["fit_step"]), reached_text(s["gen_step"]),
             _counted(s["delay"], 1), fmt_pm(s["test_loss_end"], 3), fmt_pm(s["lin_test_loss_end"], 3),
             fmt_pm(s["k0_test_loss"], 3), fmt_pm(s["kernel_move_end"], 3), fmt_pm(s["param_move_end"], 3),
             f"{fmt_pm(s['alignment_start'], 2)} → {fmt_pm(s['alignment_end'], 2)}",
             f"{fmt_pm(s['weight_norm_start'], 0)} → {fmt_pm(s['weight_norm_end'], 0)}"]
            for s in settings if s["setting"] == "A"]


B_HEADERS = ["arm", "α", "lr", "train acc 1 (step)", "test acc 95 % (step)", "late test acc", "‖θ − θ₀‖/‖θ₀‖ at the end"]


def b_rows(settings: list[dict]) -> list[list[str]]:
    """One row per Setting B arm and alpha, mean ± sd over seeds."""
    return [[s["arm"], f"{s['alpha']:g}", f"{s['lr']:.3g}", reached_text(s["fit_step"]), reached_text(s["grok_step"]),
             fmt_pm(s["late_test_acc"], 3), fmt_pm(s["param_move_end"], 3)] for s in settings if s["setting"] == "B"]


def a_provenance(runs) -> str:
    """Where Setting A's runs were trained: one sentence per (device, torch, commit, batch)."""
    batches: dict[tuple, int] = {}
    for r in {r.key: r for r in runs}.values():
        m = r.meta
        where = (m["device"], m["torch"], m["code_commit"], m["wall_time_s"], m["batch_size"])
        batches[where] = batches.get(where, 0) + 1
    return "Setting A: " + "; ".join(f"{n} run(s) trained on {d} (torch {t}, code {c}) in a batch of {b}, {w:.0f} s"
                                     for (d, t, c, w, b), n in batches.items()) + "."


# -- the verdict --------------------------------------------------------------------------------------------------
def _median(xs, never=np.inf) -> float:
    """Median over seeds, a run that never got there counting as `never`."""
    return float(np.median([never if x is None else x for x in xs]))


def findings(settings: list[dict]) -> dict:
    """The four tests of the rule, on Setting A's medians over seeds:
    rich: at the smallest alpha every median run generalises within RICH_DELAY times its fitting step;
    lazy: at the largest alpha the median final test loss lies within LAZY_BAND of the linearised model's, and the median
    kernel movement is at most LAZY_MOVE of the smallest alpha's;
    grokking: some alpha of the sweep has a median delay >= GROK_DELAY, generalising within the run;
    eps: in the eps sweep the median delay at the largest eps is below the one at the smallest (never = infinite)."""
    sweep = sorted((s for s in settings if s["setting"] == "A" and s["sweep"] == "alpha"), key=lambda s: s["alpha"])
    eps = sorted((s for s in settings if s["setting"] == "A" and s["sweep"] == "eps"), key=lambda s: s["eps"])
    small, large = sweep[0], sweep[-1]
    delays = {s["alpha"]: _median(s["delay"]) for s in sweep}
    lazy_ratio = _median(large["test_loss_end"]) / _median(large["lin_test_loss_end"])
    move_ratio = _median(large["kernel_move_end"]) / _median(small["kernel_move_end"])
    grokked = [a for a, d in delays.items() if GROK_DELAY <= d < np.inf]
    eps_delays = [_median(s["delay"]) for s in eps]
    return {"delays": delays, "lazy_ratio": lazy_ratio, "move_ratio": move_ratio, "grok_alphas": grokked,
            "eps_delays": eps_delays, "eps": [s["eps"] for s in eps],
            "rich": delays[small["alpha"]] <= RICH_DELAY,
            "lazy": abs(lazy_ratio - 1) <= LAZY_BAND and move_ratio <= LAZY_MOVE,
            "grokking": bool(grokked),
            "eps_shrinks": len(eps) > 1 and eps_delays[-1] < eps_delays[0]}


TESTS = ("rich", "lazy", "grokking", "eps_shrinks")


def verdict(F: dict) -> str:
    """Reproduced if all four tests hold; partly if grokking appears and one more test holds; not reproduced otherwise."""
    held = sum(bool(F[t]) for t in TESTS)
    if held == len(TESTS):
        return "reproduced"
    return "partly reproduced" if F["grokking"] and held >= 2 else "not reproduced"


def _fmt_delay(d: float) -> str:
    return "never" if d == np.inf else f"{d:.1f}×"


def b_summary(settings: list[dict]) -> str:
    """Setting B in one sentence per arm: runs that reached 95 % test accuracy, per alpha."""
    out = []
    for arm in ("matched", "fixed"):
        rows = [s for s in settings if s["setting"] == "B" and s["arm"] == arm]
        if rows:
            out.append(f"{arm} arm: " + ", ".join(
                f"α={s['alpha']:g} {sum(g is not None for g in s['grok_step'])}/{len(s['grok_step'])}" for s in rows))
    return "; ".join(out)


def b_text(settings: list[dict]) -> str:
    """What Setting B shows, per arm: how many runs reach 95 % test accuracy and their median step, and how the
    parameter movement (the measured laziness) and the late test accuracy change from the smallest to the largest alpha."""
    out = []
    for arm, how in (("matched", "at lr₀/α, the function-space step matched"), ("fixed", "at lr₀ for every α")):
        rows = sorted((s for s in settings if s["setting"] == "B" and s["arm"] == arm), key=lambda s: s["alpha"])
        if not rows:
            continue
        lo, hi = rows[0], rows[-1]
        grok = [(s["alpha"], [g for g in s["grok_step"] if g is not None]) for s in rows]
        reached = "; ".join(f"α = {a:g}: {len(g)}/{len(s['grok_step'])}" + (f" (median step {int(np.median(g)):,})" if g else "")
                            for (a, g), s in zip(grok, rows))
        out.append(f"{how.capitalize()}, runs reaching 95 % test accuracy: {reached}. From α = {lo['alpha']:g} to "
                   f"α = {hi['alpha']:g} the median parameter movement goes from {np.median(lo['param_move_end']):.3f} to "
                   f"{np.median(hi['param_move_end']):.3f} and the median late test accuracy from "
                   f"{np.median(lo['late_test_acc']):.3f} to {np.median(hi['late_test_acc']):.3f}.")
    return " ".join(out)


def result(S: dict, C: dict) -> ResultBox:
    F = findings(C["settings"])
    d = F["delays"]
    return ResultBox(
        claim="Scaling the output by α (the loss by 1/α²) moves training from rich (features learn, no delay) to lazy "
              "(a kernel fit, the test loss at the initial-NTK level); grokking without weight decay is the late "
              "transition from lazy to rich, and it shrinks when the initial features align with the target (ε).",
        measured=(f"Setting A, {S['n_seeds']} seeds per setting, D={S['d']}, P={S['n_train']}, N={S['width']}, "
                  f"{S['a_steps']:,} GD steps: median test-after-fit delay (steps to test loss ≤ {GEN_SHARE} × K₀ level "
                  f"over steps to train loss ≤ {FIT}) " + ", ".join(f"{_fmt_delay(v)} at α={a:g}" for a, v in d.items())
                  + f"; at α={max(d):g} the final test loss is {F['lazy_ratio']:.2f} × the linearised model's and the kernel moves "
                  f"{F['move_ratio']:.3f} × as far as at α={min(d):g}; over ε={', '.join(f'{e:g}' for e in F['eps'])} at "
                  f"α={S['eps_alpha']:g} the delay is " + ", ".join(map(_fmt_delay, F["eps_delays"]))
                  + f". Setting B (transformer, p={S['p']}, wd 0, {S['b_steps']:,} steps), runs reaching 95 % test "
                  f"accuracy: {b_summary(C['settings'])}."),
        verdict=verdict(F),
        rule=(f"Four tests on Setting A's medians over seeds: rich (smallest α: delay ≤ {RICH_DELAY:g}×), lazy (largest α: "
              f"final test loss within {LAZY_BAND:.0%} of the linearised model's, kernel movement ≤ {LAZY_MOVE:g} × the smallest "
              f"α's), grokking (some α: delay ≥ {GROK_DELAY:g}×, reached within the run), ε (the delay at the largest ε "
              "below the one at the smallest; never counts as infinite). Reproduced if all four hold, partly if grokking "
              "and at least one other hold, else not reproduced. Setting B is reported beside it, not counted."))


# -- Setting A in the GPU programme ------------------------------------------------------------------------------
def extra_training(S: dict, train: bool) -> str:
    """The programme's hook for runs that are not RunConfig runs: Setting A's missing runs, trained in batches when
    train (in about two minutes on one H200 for the paper profile); returns one line saying what was (to be) done."""
    store = LazyRichStore()
    configs = list({c.key(): c for c in a_configs(S)}.values())
    missing = [c for c in configs if not store.entry(c.key()).exists()]
    if not train or not missing:
        return f"lazy_rich Setting A: {len(configs)} polynomial-regression runs, {len(configs) - len(missing)} stored"
    import time
    t0 = time.time()
    load_or_train_a(missing, store=store, train=True)
    return f"lazy_rich Setting A: trained {len(missing)} polynomial-regression runs in {time.time() - t0:.0f} s"
