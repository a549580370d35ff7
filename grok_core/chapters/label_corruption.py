"""Doshi, Das, He and Gromov (ICLR 2024), "To grok or not to grok": with a share ξ of the training labels corrupted,
the x² MLP can memorise the corrupted labels and still generalise; weight decay moves it through partial and full
inversion (corrupted pairs predicted by the rule) to forgetting; the memorising neurons are the low-IPR ones, and
pruning them removes memorisation while generalisation stays.

Their setting (neighbours notes, from their code): the bias-free 2p → 500 → p MLP with activation x² on the 2-hot
input (models/quadratic.py), (x + y) mod 97, MSE on one-hot targets, AdamW lr 1e-2, betas (0.9, 0.98), no warm-up,
full batch; label corruption as tasks.corrupt_labels (uniform over all p classes); a run's seed k sets its init
seed k, its split seed split_seed + k and its corruption seed corrupt_seed + k, so no two runs share any draw.
"""
from __future__ import annotations

import numpy as np
import torch

from ..analysis import group_runs
from ..plotting import fmt_pm
from ..pruning import final_neuron_ipr, ipr_order, pruning_curve
from ..runner import load_or_train
from ..store import RunStore
from ..verdicts import ResultBox, by_share, holding
from .claims import late_mean
from .settings import as_float_list, as_int_list, count, flag, require, run_config

CORRUPTION_MEASURES = "corrupted_acc,corrupted_rule_acc,clean_acc"
LOSSES = ("mse", "ce")

PROFILES = {
    # (a) the four regimes of their notebook at f = 0.5, ξ = 0.35, each for the notebook's epochs; (b) the phase
    # diagram of their wd script on a 9 x 9 grid (theirs: 17 x 17, one seed), wd 0 and 5, two seeds, 2,000 epochs;
    # (c) pruning three of the wd-0 (coexistence) runs, whose final weights are kept as float16 snapshots (0.58 MB a
    # run: the chapter's store budget, about 6 MB, allows three). The long check: the cells (long_fracs[i], long_xis[i])
    # of the wd-0 diagram whose test accuracy was still between 0.1 and 0.9 after 2,000 steps (chosen after seeing
    # it; f 0.8, ξ 0.6 left out for its cost on the CPU they were trained on), trained 3x longer.
    "paper": dict(p=97, d_mlp=500, loss="mse", lr=0.01, regime_frac=0.5, regime_xi=0.35, regime_wds=[0.0, 5.0, 15.0, 20.0],
                  regime_steps=[1000, 500, 500, 5000], regime_every=10, n_seeds=4,
                  phase_fracs=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                  phase_xis=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], phase_wds=[0.0, 5.0], phase_steps=2000,
                  phase_every=100, phase_seeds=2, prune_wd=0.0, prune_seeds=3, split_seed=0, corrupt_seed=0,
                  long_fracs=[0.3, 0.4, 0.6], long_xis=[0.1, 0.3, 0.5], long_wd=0.0, long_steps=6000),
    # p = 53 and 160 neurons for 500 steps, every step recorded: the regimes in seconds on a CPU (their order, not
    # their sharpness); a 2 x 2 corner of the diagram.
    "quick": dict(p=53, d_mlp=160, loss="mse", lr=0.01, regime_frac=0.6, regime_xi=0.35, regime_wds=[0.0, 5.0, 15.0, 20.0],
                  regime_steps=[500, 500, 500, 500], regime_every=1, n_seeds=1, phase_fracs=[0.4, 0.7],
                  phase_xis=[0.2, 0.5], phase_wds=[0.0, 5.0], phase_steps=300, phase_every=1, phase_seeds=1,
                  prune_wd=0.0, prune_seeds=1, split_seed=0, corrupt_seed=0,
                  long_fracs=[0.4], long_xis=[0.5], long_wd=0.0, long_steps=900),
}

# The paper's regime at each weight decay of Fig. (a) (their notebook, f = 0.5, ξ = 0.35)
PAPER_REGIMES = {0.0: "coexistence", 5.0: "partial inversion", 15.0: "full inversion", 20.0: "forgetting"}
REGIMES = ("coexistence", "partial inversion", "full inversion", "memorisation", "forgetting", "confusion")
GEN = 0.9     # test accuracy that counts as generalising; clean train accuracy that counts as fitted
HIGH = 0.9    # share of the corrupted pairs memorised (coexistence, memorisation) or predicted by the rule (full inversion)
LOW = 0.1     # corrupted accuracy that counts as memorisation removed by pruning


def check(S: dict):
    for k in ("regime_wds", "phase_fracs", "phase_xis", "phase_wds", "long_fracs", "long_xis"):
        S[k] = as_float_list(k, S[k])
    S["regime_steps"] = as_int_list("regime_steps", S["regime_steps"])
    require(len(S["regime_steps"]) == len(S["regime_wds"]), "regime_steps", S["regime_steps"],
            f"give one step count per weight decay of regime_wds ({len(S['regime_wds'])})")
    require(S["loss"] in LOSSES, "loss", S["loss"], "use 'mse' (the paper's) or 'ce'")
    require(len(S["long_fracs"]) == len(S["long_xis"]), "long_xis", S["long_xis"],
            f"give one corrupted share per train share of long_fracs ({len(S['long_fracs'])})")
    for k in ("regime_frac", "lr", "prune_wd", "regime_xi", "long_wd"):
        require(isinstance(S[k], (int, float)) and not isinstance(S[k], bool), k, S[k], "it must be a number")
        S[k] = float(S[k])
    require(0 < S["regime_frac"] < 1, "regime_frac", S["regime_frac"], "a train share lies in (0, 1)")
    for k in ("phase_fracs", "long_fracs"):
        require(all(0 < f < 1 for f in S[k]), k, S[k], "train shares lie in (0, 1)")
    require(0 <= S["regime_xi"] <= 1, "regime_xi", S["regime_xi"], "a corrupted share lies in [0, 1]")
    for k in ("phase_xis", "long_xis"):
        require(all(0 <= x <= 1 for x in S[k]), k, S[k], "corrupted shares lie in [0, 1]")
    require(all(w >= 0 for w in S["regime_wds"] + S["phase_wds"]), "regime_wds", S["regime_wds"] + S["phase_wds"],
            "weight decays must be >= 0")
    require(S["long_wd"] >= 0, "long_wd", S["long_wd"], "a weight decay must be >= 0")
    require(S["prune_wd"] in S["regime_wds"], "prune_wd", S["prune_wd"], "it must be one of regime_wds (the runs pruned)")
    for k in ("d_mlp", "n_seeds", "phase_seeds", "phase_steps", "regime_every", "phase_every", "p", "prune_seeds",
              "long_steps"):
        count(k, S[k], 1)
    require(S["prune_seeds"] <= S["n_seeds"], "prune_seeds", S["prune_seeds"], f"at most n_seeds ({S['n_seeds']}) runs are pruned")
    require(all(s >= 1 for s in S["regime_steps"]), "regime_steps", S["regime_steps"], "step counts must be >= 1")
    for k in ("split_seed", "corrupt_seed"):
        count(k, S[k], 0)


def _run(S: dict, k: int, **fields):
    """Seed k of a setting: init seed k, split seed split_seed + k, corruption seed corrupt_seed + k."""
    return run_config(S, model="quadratic", act="square", fn="add", split="random", warmup_steps=0, record_dense=0,
                      label_transform="corrupt", measures=CORRUPTION_MEASURES, init_seed=k,
                      split_seed=S["split_seed"] + k, corrupt_seed=S["corrupt_seed"] + k, **fields)


def regime_configs(S: dict):
    """(a): each weight decay for its steps at regime_frac, regime_xi; the first prune_seeds runs at prune_wd keep 3
    float16 weight snapshots (step 0 and the final weights) for (c); keeping them changes nothing in training."""
    def kept(wd, k):
        return dict(snapshots=2, snapshot_dtype="float16") if wd == S["prune_wd"] and k < S["prune_seeds"] else {}
    return [_run(S, k, frac_train=S["regime_frac"], corrupt_share=S["regime_xi"], wd=wd, n_steps=n,
                 record_every=S["regime_every"], **kept(wd, k))
            for wd, n in zip(S["regime_wds"], S["regime_steps"]) for k in range(S["n_seeds"])]


def phase_configs(S: dict):
    """(b): every train share x corrupted share x weight decay of the grid, phase_seeds seeds each."""
    return [_run(S, k, frac_train=f, corrupt_share=x, wd=wd, n_steps=S["phase_steps"], record_every=S["phase_every"])
            for wd in S["phase_wds"] for f in S["phase_fracs"] for x in S["phase_xis"] for k in range(S["phase_seeds"])]


def long_configs(S: dict):
    """The long check: cells (long_fracs[i], long_xis[i]) at long_wd for long_steps, phase_seeds seeds each, recorded
    like the diagram's runs."""
    return [_run(S, k, frac_train=f, corrupt_share=x, wd=S["long_wd"], n_steps=S["long_steps"],
                 record_every=S["phase_every"])
            for f, x in zip(S["long_fracs"], S["long_xis"]) for k in range(S["phase_seeds"])]


PARTS = {"regime": regime_configs, "phase": phase_configs, "long": long_configs}


def run_configs(S: dict):
    return [c for make in PARTS.values() for c in make(S)]


def prune_configs(S: dict):
    """(c): the regime runs at prune_wd that keep their weights, which are pruned."""
    return [c for c in regime_configs(S) if c.snapshots]


# -- the runs, and what is missing ------------------------------------------------------------------------------
def missing_runs(configs) -> str | None:
    """None when the store holds every run; else one line naming how many are missing and how to train them."""
    store = RunStore()
    keys = {c.key() for c in configs}
    miss = sum(not store.entry(k).exists() for k in keys)
    if not miss:
        return None
    return (f"{miss} of the chapter's {len(keys)} runs are not in the store ({store.root}); train them on a GPU with "
            "`python -m grok_core.programme run --chapters label_corruption --compile`")


def load(S: dict, configs, train: bool) -> list:
    """The runs, trained where missing when train; else LookupError naming what is missing."""
    flag("train", train)
    if not train:
        missing = missing_runs(configs)
        if missing:
            raise LookupError(missing)
    return load_or_train(configs, progress=False, train=train)


# -- regimes ----------------------------------------------------------------------------------------------------
def regime(corrupted: float, clean: float, test: float, rule: float) -> str:
    """The rule, on end-of-training accuracies: generalising (test >= GEN) splits by the corrupted pairs into
    coexistence (memorised: corrupted >= HIGH), full inversion (predicted by the rule: rule >= HIGH) and partial
    inversion (between); not generalising splits into memorisation (corrupted and clean >= HIGH and GEN),
    forgetting (clean train pairs no longer fitted: clean < GEN) and confusion (the rest)."""
    if test >= GEN:
        return "coexistence" if corrupted >= HIGH else "full inversion" if rule >= HIGH else "partial inversion"
    if clean < GEN:
        return "forgetting"
    return "memorisation" if corrupted >= HIGH else "confusion"


def run_numbers(run) -> dict:
    """One run's late accuracies (the last 10 % of its steps), mean IPR and regime."""
    h, n = run.history, run.config.n_steps
    out = {"corrupted_acc": late_mean(h, "corrupted_acc", n), "clean_acc": late_mean(h, "clean_acc", n),
           "rule_acc": late_mean(h, "corrupted_rule_acc", n), "test_acc": late_mean(h, "test_acc", n),
           "mean_ipr": late_mean(h, "mean_ipr", n)}
    return out | {"regime": regime(out["corrupted_acc"], out["clean_acc"], out["test_acc"], out["rule_acc"])}


def majority(regimes: list[str]) -> str:
    """The regime most runs of a setting are in (ties: the first in REGIMES)."""
    return max(REGIMES, key=lambda r: (regimes.count(r), -REGIMES.index(r)))


# -- pruning ----------------------------------------------------------------------------------------------------
def first_and_final_weights(cfg, store: RunStore | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's initial and final flat weights, from its stored snapshots (steps 0 and n_steps); LookupError if
    they are not there."""
    snaps = (store or RunStore()).snapshots(cfg)
    if snaps is None or int(snaps["step"][0]) != 0 or int(snaps["step"][-1]) != cfg.n_steps:
        raise LookupError(f"run {cfg.key()} has no snapshots of its initial and final weights in the store")
    return snaps["weights"][0].to(torch.float32), snaps["weights"][-1].to(torch.float32)


def separated_at(curve: dict) -> int | None:
    """The fewest neurons removed with the corrupted accuracy at most LOW while the clean train and the test
    accuracy are both at least GEN (memorisation gone, generalisation kept); None if no count gets there."""
    ok = (curve["corrupted_acc"] <= LOW) & (curve["clean_acc"] >= GEN) & (curve["test_acc"] >= GEN)
    return int(curve["removed"][np.argmax(ok)]) if ok.any() else None


def first_below(curve: dict, key: str, level: float) -> int | None:
    below = curve[key] < level
    return int(curve["removed"][np.argmax(below)]) if below.any() else None


def prune_run(cfg, store: RunStore | None = None) -> dict:
    """One run pruned in increasing IPR order and, as a control, in a random order (seeded by its init seed): the
    two curves, the neuron IPRs (also at initialisation), and the neurons kept at the separation point (all, if
    never separated)."""
    first, flat = first_and_final_weights(cfg, store)
    ipr = final_neuron_ipr(cfg, flat)
    order = ipr_order(ipr)
    random = torch.randperm(cfg.d_mlp, generator=torch.Generator().manual_seed(cfg.init_seed))
    curve, control = pruning_curve(cfg, flat, order), pruning_curve(cfg, flat, random)
    k = separated_at(curve)
    kept = order[(k or 0):]
    return {"config": cfg, "ipr": ipr.numpy(), "ipr_init": final_neuron_ipr(cfg, first).numpy(), "order": order.numpy(),
            "curve": curve, "control": control,
            "separated_at": k, "kept": kept.numpy()}


def prune_numbers(P: dict) -> dict:
    """What a pruned run says: where IPR-order and random-order pruning separate memorisation from generalisation,
    the accuracies before and there, where test accuracy first falls below GEN, and median IPRs removed and kept."""
    c, k = P["curve"], P["separated_at"]
    at = k if k is not None else 0
    removed = P["ipr"][P["order"][:at]]
    return {"separated_at": k, "random_separated_at": separated_at(P["control"]),
            "test_broken_at": first_below(c, "test_acc", GEN),
            "random_test_broken_at": first_below(P["control"], "test_acc", GEN),
            **{f"{key}_0": float(c[key][0]) for key in ("corrupted_acc", "clean_acc", "test_acc")},
            **{f"{key}_sep": float(c[key][at]) for key in ("corrupted_acc", "clean_acc", "test_acc")},
            "ipr_removed_median": float(np.nanmedian(removed)) if len(removed) else None,
            "ipr_kept_median": float(np.nanmedian(P["ipr"][P["kept"]]))}


# -- the numbers per setting ------------------------------------------------------------------------------------
def _lists(rows: list[dict]) -> dict:
    return {k: [r[k] for r in rows] for k in rows[0]}


def claims(S: dict, runs) -> list[dict]:
    """Per regime weight decay, per phase-diagram cell, per cell of the long check, and for the pruned runs: per-run
    numbers (run_numbers, prune_numbers) and the setting's majority regime."""
    by_key = {r.key: r for r in runs}
    out = []
    for wd, rs in group_runs([by_key[c.key()] for c in regime_configs(S)], lambda c: c.wd).items():
        nums = _lists([run_numbers(r) for r in rs])
        out.append({"part": "regime", "wd": wd, "lr_wd": S["lr"] * wd, "frac": S["regime_frac"], "xi": S["regime_xi"],
                    "n_steps": rs[0].config.n_steps, "runs": len(rs), **nums, "majority": majority(nums["regime"])})
    for part, make in (("phase", phase_configs), ("long", long_configs)):
        cells = group_runs([by_key[c.key()] for c in make(S)], lambda c: (c.wd, c.frac_train, c.corrupt_share))
        for (wd, f, x), rs in cells.items():
            nums = _lists([run_numbers(r) for r in rs])
            out.append({"part": part, "wd": wd, "lr_wd": S["lr"] * wd, "frac": f, "xi": x,
                        "n_steps": rs[0].config.n_steps, "runs": len(rs), **nums, "majority": majority(nums["regime"])})
    pruned = [prune_numbers(prune_run(c)) for c in prune_configs(S)]
    out.append({"part": "prune", "wd": S["prune_wd"], "lr_wd": S["lr"] * S["prune_wd"], "frac": S["regime_frac"],
                "xi": S["regime_xi"], "runs": len(pruned), **_lists(pruned)})
    return out


# -- the verdict ------------------------------------------------------------------------------------------------
def _never(xs: list, n: float) -> float:
    """The median of counts where None (never) counts as n."""
    return float(np.median([n if x is None else x for x in xs]))


def findings(settings: list[dict], d_mlp: int) -> dict:
    """Each claim as a test of the exported settings (left out where its runs are missing):
    one per regime weight decay in PAPER_REGIMES ("coexistence", "partial inversion", ...): at least half that
    setting's runs are in the paper's regime;
    periodic: the mean late IPR at wd 5 and at wd 15 (those present) each exceeds that at wd 0;
    pruning: IPR-order pruning separates (separated_at) in at least half the pruned runs;
    specific: its median separation count is lower than random-order pruning's (never counts as d_mlp + 1);
    diagram: with wd 0 and a larger wd in the diagram, the largest has fewer coexistence cells and more inversion
    cells (partial or full, by majority) than wd 0."""
    out = {}
    reg = {s["wd"]: s for s in settings if s["part"] == "regime"}
    for wd, name in PAPER_REGIMES.items():
        if wd in reg:
            out[name] = reg[wd]["regime"].count(name) >= reg[wd]["runs"] / 2
    shown = [w for w in (5.0, 15.0) if w in reg]
    if 0.0 in reg and shown:
        base = np.mean(reg[0.0]["mean_ipr"])
        out["periodic"] = all(np.mean(reg[w]["mean_ipr"]) > base for w in shown)
    prune = [s for s in settings if s["part"] == "prune" and s["runs"]]
    if prune:
        P = prune[0]
        out["pruning"] = sum(x is not None for x in P["separated_at"]) >= P["runs"] / 2
        out["specific"] = _never(P["separated_at"], d_mlp + 1) < _never(P["random_separated_at"], d_mlp + 1)
    phase = [s for s in settings if s["part"] == "phase"]
    wds = sorted({s["wd"] for s in phase})
    if len(wds) > 1 and wds[0] == 0.0:
        def n_cells(wd, names):
            return sum(s["majority"] in names for s in phase if s["wd"] == wd)
        inv = ("partial inversion", "full inversion")
        out["diagram"] = (n_cells(wds[-1], ("coexistence",)) < n_cells(0.0, ("coexistence",))
                          and n_cells(wds[-1], inv) > n_cells(0.0, inv))
    return out


def verdict(found: dict) -> str:
    """reproduced if every tested claim holds; partly reproduced if at least half do; else not reproduced."""
    return by_share(sum(found.values()), len(found))


def _count_text(regimes: list[str]) -> str:
    return ", ".join(f"{regimes.count(r)} {r}" for r in REGIMES if regimes.count(r))


def result(S: dict, C: dict) -> ResultBox:
    st = C["settings"]
    F = findings(st, S["d_mlp"])
    parts = []
    for s in (s for s in st if s["part"] == "regime"):
        parts.append(f"wd {s['wd']:g} (lr·wd {s['lr_wd']:g}), {s['n_steps']:,} steps: {_count_text(s['regime'])}; "
                     f"corrupted {fmt_pm(s['corrupted_acc'], 2)}, clean {fmt_pm(s['clean_acc'], 2)}, "
                     f"test {fmt_pm(s['test_acc'], 2)}, by the rule {fmt_pm(s['rule_acc'], 2)}, "
                     f"IPR {fmt_pm(s['mean_ipr'], 2)}")
    prune = [s for s in st if s["part"] == "prune" and s["runs"]]
    if prune:
        P = prune[0]
        hit = [x for x in P["separated_at"] if x is not None]
        parts.append(f"pruning the wd {P['wd']:g} runs in increasing IPR order: corrupted accuracy ≤ {LOW:g} with clean "
                     f"and test ≥ {GEN:g} in {len(hit)} of {P['runs']} runs"
                     + (f" (after {fmt_pm(hit, 0)} of {S['d_mlp']} neurons)" if hit else "")
                     + f"; in a random order in {sum(x is not None for x in P['random_separated_at'])} of {P['runs']}")
    phase = [s for s in st if s["part"] == "phase"]
    for wd in sorted({s["wd"] for s in phase}):
        cells = [s["majority"] for s in phase if s["wd"] == wd]
        parts.append(f"phase diagram at wd {wd:g}, {len(cells)} cells by majority: {_count_text(cells)}")
    return ResultBox(
        claim=("Doshi et al. (ICLR 2024): with a share ξ of training labels corrupted, the x² MLP on modular addition "
               "memorises the corrupted labels and still generalises (coexistence); weight decay moves it through "
               "partial and full inversion (corrupted pairs predicted by the rule) to forgetting; memorising neurons "
               "are the low-IPR (non-periodic) ones, and pruning them removes memorisation while generalisation stays."),
        measured=(f"{S['loss'].upper()} loss, p={S['p']}, {S['d_mlp']} neurons, f={S['regime_frac']:g}, ξ={S['regime_xi']:g}, "
                  f"{S['n_seeds']} seeds per weight decay. " + "; ".join(parts) + ". Claims tested and holding: "
                  + holding(F) + "."),
        verdict=verdict(F),
        rule=(f"A run's regime from its late accuracies (the last 10 % of its steps): test ≥ {GEN:g} is generalising, and "
              f"then coexistence if ≥ {HIGH:g} of the corrupted pairs keep their corrupted label, full inversion if ≥ "
              f"{HIGH:g} of them get the rule's label, partial inversion otherwise; below {GEN:g} test, forgetting if "
              f"clean train accuracy < {GEN:g}, memorisation if ≥ {HIGH:g} of the corrupted pairs are memorised, "
              "confusion otherwise. Claims: at each weight decay of the paper's regimes (0 coexistence, 5 partial "
              "inversion, 15 full inversion, 20 forgetting) at least half the runs are in that regime; periodic (mean IPR "
              "at wd 5 and 15 above wd 0); pruning (in at least half the pruned runs, removing neurons in increasing IPR "
              f"order reaches corrupted accuracy ≤ {LOW:g} with clean and test ≥ {GEN:g}); specific (that takes fewer "
              "neurons, as a median, than in a random order; never counts as all of them plus one); diagram (the "
              "largest weight decay of the diagram has fewer coexistence and more inversion cells than wd 0). A claim "
              "whose runs are missing is not tested. Reproduced if all tested claims hold, partly if at least half "
              "do, else not reproduced. The diagram is read at its own steps; the long check (a few of its cells "
              "trained longer, section (b)) is shown beside it, not counted."))


REGIME_HEADERS = ["wd", "lr·wd", "steps", "runs", "regimes", "corrupted acc", "clean acc", "test acc",
                  "corrupted → rule", "mean IPR"]


def regime_rows(settings: list[dict]) -> list[list]:
    return [[f"{s['wd']:g}", f"{s['lr_wd']:g}", s["n_steps"], s["runs"], _count_text(s["regime"]),
             fmt_pm(s["corrupted_acc"], 3), fmt_pm(s["clean_acc"], 3), fmt_pm(s["test_acc"], 3),
             fmt_pm(s["rule_acc"], 3), fmt_pm(s["mean_ipr"], 3)] for s in settings if s["part"] == "regime"]


LONG_HEADERS = ["f", "ξ", "wd", "runs", "steps", "regimes", "corrupted", "clean", "test", "→ rule"]


def _diagram_cell(settings: list[dict], L: dict) -> dict | None:
    """The diagram's setting of the long check's cell L (the same wd, f and ξ), None if the diagram lacks it."""
    cell = (L["wd"], L["frac"], L["xi"])
    return next((s for s in settings if s["part"] == "phase" and (s["wd"], s["frac"], s["xi"]) == cell), None)


def long_rows(settings: list[dict]) -> list[list]:
    """Per cell of the long check, its diagram runs (if the diagram has the cell) and then its long runs."""
    rows = []
    for L in (s for s in settings if s["part"] == "long"):
        for s in [c for c in (_diagram_cell(settings, L), L) if c is not None]:
            rows.append([f"{s['frac']:g}", f"{s['xi']:g}", f"{s['wd']:g}", s["runs"], f"{s['n_steps']:,}",
                         _count_text(s["regime"]), fmt_pm(s["corrupted_acc"], 2), fmt_pm(s["clean_acc"], 2),
                         fmt_pm(s["test_acc"], 2), fmt_pm(s["rule_acc"], 2)])
    return rows


def long_changes(settings: list[dict]) -> list[tuple[float, float, str, str]]:
    """(f, ξ, the diagram cell's majority regime, the long runs') for every cell of the long check the diagram has."""
    pairs = [(L, _diagram_cell(settings, L)) for L in settings if L["part"] == "long"]
    return [(L["frac"], L["xi"], short["majority"], L["majority"]) for L, short in pairs if short is not None]


PRUNE_HEADERS = ["run", "separated at (IPR order)", "separated at (random order)", "test < 0.9 at (IPR / random)",
                 "corrupted / clean / test before", "corrupted / clean / test there", "median IPR removed / kept"]


def prune_rows(settings: list[dict]) -> list[list]:
    rows = []
    for P in (s for s in settings if s["part"] == "prune"):
        for k in range(P["runs"]):
            rows.append([k, _or_never(P["separated_at"][k]), _or_never(P["random_separated_at"][k]),
                         f"{_or_never(P['test_broken_at'][k])} / {_or_never(P['random_test_broken_at'][k])}",
                         " / ".join(f"{P[f'{a}_0'][k]:.3f}" for a in ("corrupted_acc", "clean_acc", "test_acc")),
                         " / ".join(f"{P[f'{a}_sep'][k]:.3f}" for a in ("corrupted_acc", "clean_acc", "test_acc")),
                         f"{_fmt(P['ipr_removed_median'][k])} / {_fmt(P['ipr_kept_median'][k])}"])
    return rows


def _or_never(x) -> str:
    return "never" if x is None else str(x)


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def phase_grid(settings: list[dict], wd: float) -> tuple[list, list, np.ndarray]:
    """(train shares, corrupted shares, [xi, frac] index into REGIMES of each cell's majority) at one weight decay."""
    cells = {(s["frac"], s["xi"]): s["majority"] for s in settings if s["part"] == "phase" and s["wd"] == wd}
    fracs, xis = sorted({f for f, _ in cells}), sorted({x for _, x in cells})
    grid = np.array([[REGIMES.index(cells[(f, x)]) for f in fracs] for x in xis])
    return fracs, xis, grid
