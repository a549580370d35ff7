"""Minegishi et al., "Grokking Tickets": a sparse subnetwork found by magnitude pruning of a generalised model and
rewound to its initial weights generalises much faster than the dense model, even without weight decay; a random
mask of the same sparsity, a ticket taken during memorisation, and the dense init scaled to the ticket's norm do not.

Their setting (neighbours notes, from their configs): the "OnlyMLP" (models/onlymlp.py) on (i + j) mod 67 with the
symmetric split (unordered pairs i <= j, 40 % train), AdamW lr 1e-3, betas (0.9, 0.98), wd 1, full batch; the
book's 1-layer transformer is the second model. Two stages: the dense bases (run_configs, trained by the programme's
batches), then the tickets and controls that read the bases' stored snapshots (ticket_configs, trained by
extra_training after them; grok_core.tickets).
"""
from __future__ import annotations

import numpy as np

from ..analysis import steps_to_threshold
from ..plotting import fmt_pm
from ..runner import load_or_train
from ..store import RunStore
from ..verdicts import ResultBox, holding
from .claims import late_mean, reached_text
from .settings import FULL_RECORD, as_float_list, count, flag, require, run_config

PROFILES = {
    # The paper's sizes and optimiser; bases of 50,000 steps (their Fig. 1) with weights kept at the memorisation
    # (2,000) and transition (15,000) steps and at the end; tickets and controls for 30,000 steps.
    "paper": dict(p=67, d_model=500, d_mlp=48, frac_train=0.4, lr=1e-3, wd=1.0, base_steps=50000, ticket_steps=30000,
                  mem_step=2000, trans_step=15000, keep=0.4, sweep_keep=[0.1, 0.2, 0.3, 0.4, 0.6, 0.8],
                  n_seeds=8, transformer=True, tf_d_model=128, tf_n_heads=4, full_split=True,
                  snapshot_dtype="float16", record_dense=500, record_every=100),
    # p = 23, a narrower OnlyMLP at lr 3e-2 and wd 3, 60 % train, a few thousand steps, on a CPU.
    "quick": dict(p=23, d_model=128, d_mlp=32, frac_train=0.6, lr=3e-2, wd=3.0, base_steps=1500, ticket_steps=1000,
                  mem_step=50, trans_step=400, keep=0.4, sweep_keep=[0.1, 0.4], n_seeds=2, transformer=False,
                  tf_d_model=64, tf_n_heads=4, full_split=True, snapshot_dtype="float16", **FULL_RECORD),
}

FACTOR = 2.0        # a ticket is "faster" when the dense base takes at least this many times its steps to 95 % test
SHARE = 0.75        # ... in at least this share of the seeds (and a control "is not" when it falls short as often)
GROKS = 0.95        # the test accuracy that counts as generalised


def check(S: dict):
    S["sweep_keep"] = as_float_list("sweep_keep", S["sweep_keep"])
    require(isinstance(S["keep"], float) and 0 < S["keep"] <= 1, "keep", S["keep"],
            "the kept fraction of the weights (keep_fraction of the ticket runs) lies in (0, 1]")
    require(all(0 < k <= 1 for k in S["sweep_keep"]), "sweep_keep", S["sweep_keep"], "kept fractions lie in (0, 1]")
    for name in ("base_steps", "ticket_steps", "mem_step", "trans_step"):
        count(name, S[name], 1)
    require(S["mem_step"] < S["trans_step"] < S["base_steps"], "trans_step", S["trans_step"],
            "the snapshot steps must satisfy mem_step < trans_step < base_steps")
    for name in ("transformer", "full_split"):
        flag(name, S[name])
    count("n_seeds", S["n_seeds"], 1)
    run_configs(S), ticket_configs(S)           # every remaining value is checked by the configs themselves


# -- the runs ------------------------------------------------------------------------------------------------
def _mlp(S: dict, seed: int, **fields):
    return run_config(S, model="onlymlp", fn="add", split="symmetric", init_seed=seed, split_seed=seed, **fields)


def _tf(S: dict, seed: int, **fields):
    return run_config(S, model="transformer", fn="add", split="symmetric", d_model=S["tf_d_model"], d_mlp=0,
                      n_heads=S["tf_n_heads"], init_seed=seed, split_seed=seed, **fields)


def base(S: dict, seed: int, model: str = "onlymlp"):
    """The dense base of one seed, keeping its weights at the memorisation and transition steps and at the end
    (the transformer's at the end only)."""
    if model == "onlymlp":
        return _mlp(S, seed, n_steps=S["base_steps"],
                    snapshot_at=f"{S['mem_step']},{S['trans_step']},{S['base_steps']}")
    return _tf(S, seed, n_steps=S["base_steps"], snapshot_at=str(S["base_steps"]))


# arm -> (model, how its run differs from the dense base: a ticket of the base at a step, a mask, an init, a wd)
def _arms(S: dict) -> dict:
    end, k = S["base_steps"], S["keep"]
    arms = {
        "ticket": ("onlymlp", dict(param_mask="magnitude", ticket_step=end, keep_fraction=k,
                                   snapshot_at=str(S["ticket_steps"]))),
        "ticket, wd 0": ("onlymlp", dict(param_mask="magnitude", ticket_step=end, keep_fraction=k, wd=0.0)),
        "transition ticket": ("onlymlp", dict(param_mask="magnitude", ticket_step=S["trans_step"], keep_fraction=k)),
        "memorisation ticket": ("onlymlp", dict(param_mask="magnitude", ticket_step=S["mem_step"], keep_fraction=k)),
        "random mask": ("onlymlp", dict(param_mask="random", keep_fraction=k)),
        "dense, L1-matched": ("onlymlp", dict(init_rescale="l1", ticket_step=end, keep_fraction=k)),
        "dense, L2-matched": ("onlymlp", dict(init_rescale="l2", ticket_step=end, keep_fraction=k)),
    }
    arms |= {f"ticket k={x:g}": ("onlymlp", dict(param_mask="magnitude", ticket_step=end, keep_fraction=x))
             for x in S["sweep_keep"] if x != k}
    if S["transformer"]:
        arms |= {"transformer ticket": ("transformer", dict(param_mask="magnitude", ticket_step=end, keep_fraction=k)),
                 "transformer random mask": ("transformer", dict(param_mask="random", keep_fraction=k))}
    return arms


def arm_config(S: dict, arm: str, seed: int):
    model, fields = _arms(S)[arm]
    b = base(S, seed, model)
    make = _mlp if model == "onlymlp" else _tf
    ticket = fields | ({"ticket_base": b.key()} if "ticket_step" in fields else {})
    return make(S, seed, n_steps=S["ticket_steps"], **ticket)


def arm_names(S: dict) -> list[str]:
    return list(_arms(S))


def dense_configs(S: dict) -> dict:
    """The dense runs (no base needed): the OnlyMLP bases, the transformer's, and beside them the OnlyMLP without
    weight decay and on the full-table random split (the split of the main chapters, where a test pair's mirror
    image may be a training pair)."""
    seeds = range(S["n_seeds"])
    out = {"base": [base(S, s) for s in seeds],
           "dense, wd 0": [_mlp(S, s, n_steps=S["ticket_steps"], wd=0.0) for s in seeds]}
    if S["full_split"]:
        out["base, full-table split"] = [_mlp(S, s, n_steps=S["base_steps"]).replace(split="random") for s in seeds]
    if S["transformer"]:
        out["transformer base"] = [base(S, s, "transformer") for s in seeds]
    return out


def run_configs(S: dict):
    """Stage one, trained by the programme's batches: the dense runs."""
    return [c for cs in dense_configs(S).values() for c in cs]


def ticket_configs(S: dict):
    """Stage two, trained after the bases are stored (extra_training): every ticket and control, arm by arm."""
    return [arm_config(S, arm, s) for arm in arm_names(S) for s in range(S["n_seeds"])]


def missing_runs(S: dict) -> str | None:
    """None when the store holds every run of both stages; else one line naming what is missing and how to train it."""
    store = RunStore()
    stages = (("dense runs", run_configs(S)), ("tickets and controls", ticket_configs(S)))
    miss = [(what, len({c.key() for c in cs if not store.entry(c.key()).exists()}), len({c.key() for c in cs}))
            for what, cs in stages]
    if not any(m for _, m, _ in miss):
        return None
    return (" and ".join(f"{m} of the {n} {what}" for what, m, n in miss if m) + f" are not in the store "
            f"({store.runs_dir.parent}); train them on a GPU with `python -m grok_core.programme run --chapters tickets` "
            "(add --compile), which trains the dense bases first and the tickets after them")


def load(S: dict, configs, train: bool) -> tuple[list, list]:
    """(the dense runs, the tickets and controls): trained where missing when train, bases first; else LookupError
    naming what is missing."""
    flag("train", train)
    if not train:
        missing = missing_runs(S)
        if missing:
            raise LookupError(missing)
    dense = load_or_train(configs, progress=False, train=train)
    return dense, load_or_train(ticket_configs(S), progress=False, train=train)


def extra_training(S: dict, train: bool) -> str:
    """The programme's hook for stage two: the tickets and controls whose bases the batches have just stored."""
    store = RunStore()
    configs = list({c.key(): c for c in ticket_configs(S)}.values())
    missing = [c for c in configs if not store.entry(c.key()).exists()]
    if not train or not missing:
        return f"tickets stage two: {len(configs)} tickets and controls, {len(configs) - len(missing)} stored"
    import time
    t0 = time.time()
    load_or_train(missing, store=store, progress=False, train=True)
    return f"tickets stage two: trained {len(missing)} tickets and controls in {time.time() - t0:.0f} s"


# -- the numbers ---------------------------------------------------------------------------------------------------
def t95(run) -> int | None:
    """The first recorded step with test accuracy >= GROKS, or None."""
    h = run.history
    return steps_to_threshold(h["test_acc"], GROKS, h["step"])


def speedup(base_run, run) -> float:
    """Steps to GROKS of the base over those of the run. A run that never gets there counts as reaching it at its last
    step, a base that never does likewise: the ratio is then an upper bound for the run and a lower bound against
    the base, so each errs on the side of the claim it tests not holding."""
    tb, tr = t95(base_run), t95(run)
    return (base_run.config.n_steps if tb is None else tb) / max(run.config.n_steps if tr is None else tr, 1)


def fourier_norms(W_E: np.ndarray) -> np.ndarray:
    """Per frequency k = 0 .. (p-1)/2, the norm of the embedding W_E [p, d] projected on the real Fourier basis of
    the p tokens (cos and sin of frequency k together; k = 0 the constant)."""
    p = W_E.shape[0]
    x = np.arange(p)
    out = [np.linalg.norm(W_E.sum(0) / np.sqrt(p))]
    for k in range(1, (p - 1) // 2 + 1):
        c, s = np.cos(2 * np.pi * k * x / p), np.sin(2 * np.pi * k * x / p)
        out.append(np.hypot(np.linalg.norm(c @ W_E), np.linalg.norm(s @ W_E)) * np.sqrt(2 / p))
    return np.array(out)


def top_share(norms: np.ndarray, n: int = 5) -> float:
    """The share of the embedding's squared norm (k >= 1) in its n strongest frequencies."""
    e = np.sort(norms[1:] ** 2)[::-1]
    return float(e[:n].sum() / e.sum())


def _embedding(cfg, weights) -> np.ndarray:
    from ..models import build_model
    model = build_model(cfg)
    return model.layout.views(weights[None].double())["W_E"][0, :cfg.p].numpy()


def final_weights(cfg, store: RunStore):
    """A run's flat weights at its last step, from the snapshots the store keeps (the run must keep that step)."""
    snaps = store.snapshots(cfg)
    return snaps["weights"][snaps["step"].tolist().index(cfg.n_steps)]


def mask_margins(S: dict, store: RunStore | None = None) -> list[tuple[int, int]]:
    """Per dense OnlyMLP base, (weights near the ticket's threshold, weights kept) at its final snapshot: how many of
    the ticket mask's entries rounding the snapshot to float16 could have decided (twice float16's rounding)."""
    from ..models import build_model
    from ..tickets import threshold_margin
    store = store or RunStore()
    return [threshold_margin(final_weights(c, store), build_model(c).layout, S["keep"], rel=2.0 ** -10)
            for c in dense_configs(S)["base"]]


def final_embeddings(configs, store: RunStore | None = None) -> list[np.ndarray]:
    """The embeddings W_E of runs that keep their final weights (snapshot at n_steps), read from the store."""
    store = store or RunStore()
    return [_embedding(c, final_weights(c, store)) for c in configs]


def _arm_row(name: str, model: str, runs, bases) -> dict:
    c = runs[0].config
    return {"arm": name, "model": model, "keep_fraction": c.keep_fraction, "wd": c.wd, "n_steps": c.n_steps,
            "runs": len(runs), "t95": [t95(r) for r in runs],
            "speedup": [speedup(b, r) for b, r in zip(bases, runs)],
            "late_test_acc": [late_mean(r.history, "test_acc", c.n_steps) for r in runs],
            "late_train_acc": [late_mean(r.history, "train_acc", c.n_steps) for r in runs]}


def claims(S: dict, runs) -> list[dict]:
    """Per arm (the dense runs, then every ticket and control): steps to GROKS test accuracy per seed, the speed-up
    against the seed's own dense base, late accuracies; then the Fourier norms of the ticket's and the base's final
    embeddings. The tickets are read from the store (the notebook has loaded or trained them)."""
    by_key = {r.key: r for r in runs}
    dense = {name: [by_key[c.key()] for c in cs] for name, cs in dense_configs(S).items()}
    tickets = {r.key: r for r in load_or_train(ticket_configs(S), progress=False, train=False)}
    seeds = range(S["n_seeds"])
    out = []
    for name, rs in dense.items():
        model = "transformer" if name.startswith("transformer") else "onlymlp"
        out.append(_arm_row(name, model, rs, dense["transformer base" if model == "transformer" else "base"]))
    for arm in arm_names(S):
        model = _arms(S)[arm][0]
        rs = [tickets[arm_config(S, arm, s).key()] for s in seeds]
        out.append(_arm_row(arm, model, rs, dense["transformer base" if model == "transformer" else "base"]))
    base_norms = [fourier_norms(w) for w in final_embeddings(dense_configs(S)["base"])]
    ticket_norms = [fourier_norms(w) for w in final_embeddings([arm_config(S, "ticket", s) for s in seeds])]
    out.append({"arm": "fourier", "base_norms": np.mean(base_norms, 0).tolist(),
                "ticket_norms": np.mean(ticket_norms, 0).tolist(),
                "base_top5": [top_share(n) for n in base_norms], "ticket_top5": [top_share(n) for n in ticket_norms]})
    return out


# -- the verdict ---------------------------------------------------------------------------------------------------
def _get(settings, arm) -> dict | None:
    hits = [s for s in settings if s["arm"] == arm]
    return hits[0] if hits else None


def fast_share(s: dict) -> float:
    """The share of seeds whose speed-up over their dense base is at least FACTOR."""
    return sum(x >= FACTOR for x in s["speedup"]) / len(s["speedup"])


# claim -> (arm, whether it should be fast)
TESTS = {"ticket": ("ticket", True), "ticket without wd": ("ticket, wd 0", True),
         "random mask": ("random mask", False), "memorisation ticket": ("memorisation ticket", False),
         "L1-matched dense": ("dense, L1-matched", False), "L2-matched dense": ("dense, L2-matched", False),
         "transformer ticket": ("transformer ticket", True), "transformer random mask": ("transformer random mask", False)}


def findings(settings: list[dict]) -> dict:
    """Each claim as a test (left out where its arm is not trained): a ticket holds when at least SHARE of its seeds
    are FACTOR times faster than their dense base; a control holds when at least SHARE of its seeds are not."""
    out = {}
    for claim, (arm, fast) in TESTS.items():
        s = _get(settings, arm)
        if s is not None:
            share = fast_share(s)
            out[claim] = share >= SHARE if fast else 1 - share >= SHARE
    return out


def verdict(F: dict) -> str:
    """reproduced when every tested claim holds; partly when the OnlyMLP ticket is faster but some other claim
    fails; not reproduced when the ticket is not faster."""
    if not F.get("ticket"):
        return "not reproduced"
    return "reproduced" if all(F.values()) else "partly reproduced"


def result(S: dict, C: dict) -> ResultBox:
    st = C["settings"]
    F = findings(st)
    parts = []
    for claim, (arm, _) in TESTS.items():
        s = _get(st, arm)
        if s is not None:
            parts.append(f"{arm}: {sum(x >= FACTOR for x in s['speedup'])} of {s['runs']} seeds ≥ {FACTOR:g}× faster "
                         f"(median speed-up {np.median(s['speedup']):.2f}×)")
    b = _get(st, "base")
    return ResultBox(
        claim=("Minegishi et al., Fig. 1: a subnetwork found by global magnitude pruning of a generalised OnlyMLP and "
               "rewound to its initial weights (a grokking ticket) reaches full test accuracy much sooner than the "
               "dense model, also without weight decay; a random mask of the same sparsity, a ticket from the "
               "memorisation phase and the dense init scaled to the ticket's norm do not."),
        measured=(f"OnlyMLP on (i + j) mod {S['p']}, symmetric split, {S['n_seeds']} seeds, keeping "
                  f"{S['keep']:g} of the weights; the dense base reaches {GROKS:g} test accuracy at step "
                  f"{reached_text(b['t95'])}. " + "; ".join(parts) + ". Claims holding: "
                  + holding(F) + "."),
        verdict=verdict(F),
        rule=(f"Per seed, speed-up = steps to {GROKS:g} test accuracy of the dense base (wd 1) over those of the arm "
              "(a run that never gets there counts as reaching it at its last step). A ticket claim holds when at least "
              f"{SHARE:.0%} of its seeds are at least {FACTOR:g}× faster (the ticket with wd 1 and with wd 0; the "
              f"transformer's where trained); a control claim holds when at least {SHARE:.0%} of its seeds are not "
              "(random mask, memorisation ticket, L1- and L2-matched dense init; the transformer's random mask). "
              "Reproduced if every tested claim holds; partly if the OnlyMLP ticket's holds and another fails; not "
              "reproduced if the OnlyMLP ticket's fails. The transition ticket, the k sweep and the Fourier norms are "
              "shown, not counted."))


TABLE_HEADERS = ["arm", "model", "k kept", "wd", "steps", f"reach {GROKS:.0%} test (step)", "speed-up over base",
                 "late test acc", "late train acc"]


def table_rows(settings: list[dict]) -> list[list]:
    return [[s["arm"], s["model"], f"{s['keep_fraction']:g}", f"{s['wd']:g}", s["n_steps"], reached_text(s["t95"]),
             fmt_pm(s["speedup"], 2), fmt_pm(s["late_test_acc"], 3), fmt_pm(s["late_train_acc"], 3)]
            for s in settings if s["arm"] != "fourier"]


def sweep_points(S: dict, settings: list[dict]) -> list[tuple[float, list]]:
    """(k, steps to GROKS per seed, None for never) of the OnlyMLP tickets at the end snapshot, wd 1, by k."""
    rows = [s for s in settings if s.get("model") == "onlymlp" and s["wd"] == S["wd"]
            and (s["arm"] == "ticket" or s["arm"].startswith("ticket k="))]
    return sorted((s["keep_fraction"], s["t95"]) for s in rows)
