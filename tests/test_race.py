"""The race chapter's logic on made-up runs: device-seconds shared by the runs still training, the tuning choice,
bad settings refused in one line, and each claim of the verdict's rule flipped by a change of its numbers."""
import copy
from types import SimpleNamespace

import pytest

from grok_core.chapters import race, setup
from grok_core.config import RunConfig

S_QUICK = setup("race", "quick", {})[0]


def fake(key, wall, started=1.0, device="NVIDIA H200", held=None, stopped=None, cfg=None):
    meta = {"wall_time_s": wall, "batch_started": started, "device": device, "stop_held": held, "stopped_at": stopped}
    return SimpleNamespace(key=key, meta=meta, config=cfg or RunConfig(n_steps=1000))


def test_device_seconds_are_shared_by_the_runs_still_training():
    """A batch of three: runs end at 2, 5 and 11 s; another batch (other start) of one run of 4 s."""
    runs = [fake("a", 2.0), fake("b", 5.0), fake("c", 11.0), fake("d", 4.0, started=9.0)]
    got = race.device_seconds(runs)
    assert got == pytest.approx({"a": 2 / 3, "b": 2 / 3 + 3 / 2, "c": 2 / 3 + 3 / 2 + 6, "d": 4.0}, rel=1e-12)
    assert sum(got[k] for k in "abc") == pytest.approx(11.0, rel=1e-12)          # the batch's wall time, whole


def test_the_choice_takes_the_lowest_median_with_a_miss_at_the_budget():
    S = copy.deepcopy(S_QUICK) | {"adamw_wds": [0.3, 1.0]}
    points = race.grid(S, "adamw")
    steps = {0: [100, None], 1: [300, 250]}            # medians: (100 + budget) / 2 = 250 and 275
    runs = []
    for k, g in enumerate(points):
        for c, s in zip(race._configs(S, g, race.tune_seeds(S)), steps[k]):
            runs.append(fake(c.key(), 1.0, held=None if s is None else [s, s + 20], cfg=c))
    others = [c for m in race.METHODS if m != "adamw" for g in race.grid(S, m) for c in race._configs(S, g, race.tune_seeds(S))]
    runs += [fake(c.key(), 1.0, cfg=c) for c in others]
    assert race.choose(S, runs)["adamw"] == points[0]
    runs[0].meta["stop_held"] = [300, 320]             # point 0 now (300 + 400) / 2 = 350 > 275
    assert race.choose(S, runs)["adamw"] == points[1]


@pytest.mark.parametrize("given, match", [
    (dict(lrs="0,1e-3"), r"lrs=\[0\.0, 0\.001\] is not allowed; learning rates must be > 0"),
    (dict(grokfast_lambs=[-1.0]), r"grokfast_lambs=\[-1\.0\] is not allowed; the values must be >= 0"),
    (dict(tune_offset=2), r"tune_offset=2 is not allowed; it must be an integer >= 3"),
    (dict(stop_acc=0.0), r"stop_acc=0\.0 is not allowed; the race needs a stop rule"),
    (dict(ema_alpha=1.0), r"grokfast_alpha=1\.0 is not allowed"),
    (dict(probe="yes"), r"probe='yes' is not allowed"),
])
def test_bad_settings_are_refused_in_one_line(given, match):
    with pytest.raises(ValueError, match=match) as err:
        setup("race", "quick", given)
    assert "\n" not in str(err.value)


def test_the_paper_profile_races_32_seeds_after_the_stated_grid():
    S, configs = setup("race", "paper", {})
    assert S["n_seeds"] >= 32 and (S["p"], S["frac_train"], S["d_model"], S["n_heads"]) == (97, 0.3, 128, 4)
    assert {len(race.grid(S, m)) for m in race.METHODS} == {4, 6} and len(race.tuning_configs(S)) == 26 * 8
    rows = race.race_settings(S, {m: race.grid(S, m)[0] for m in race.METHODS})
    assert len(rows) == 10 and all(c.stop_acc == 0.95 and c.stop_hold == 200 for c in race.tuning_configs(S))
    seeds = {c.init_seed for c in race.race_configs(S, {m: race.grid(S, m)[0] for m in race.METHODS})}
    assert seeds == set(range(32)) and not seeds & {c.init_seed for c in race.tuning_configs(S)}


def test_every_setting_has_its_own_label():
    """Rows that differ only in their loss or gradient transform must not share a name (the result box names each
    setting once)."""
    S = setup("race", "paper", {})[0]
    points = [g for m in race.METHODS for g in race.grid(S, m)]
    assert len({race._label(g) for g in points}) == len(points)
    assert race._label(dict(lr=1e-3, wd=1.0, grad_transform="orthogonal")) != race._label(dict(lr=1e-3, wd=1.0))


def test_the_muon_check_is_the_first_muon_point_with_weaker_decay_beside_the_grid():
    S = setup("race", "paper", {})[0]
    check = race.muon_check_configs(S)
    first = race.grid(S, "muon")[0]
    assert {c.wd for c in check} == set(S["muon_check_wds"]) and all(w < S["base_wd"] for w in S["muon_check_wds"])
    assert {(c.optimizer, c.muon_lr, c.lr) for c in check} == {("muon", first["muon_lr"], first["lr"])}
    assert {c.init_seed for c in check} == set(race.tune_seeds(S))
    assert not {c.key() for c in check} & {c.key() for c in race.tuning_configs(S)}
    assert race.decay_per_step(S, first) == pytest.approx(first["muon_lr"] * S["base_wd"], rel=1e-12)
    assert race.decay_per_step(S, dict(lr=1e-3, wd=1.0)) == pytest.approx(1e-3, rel=1e-12)


def test_end_state_takes_medians_of_the_last_and_best_values():
    import numpy as np
    runs = [SimpleNamespace(key=str(i), meta={"stop_held": held}, history={
        "train_acc": np.array([0.1, acc]), "test_acc": np.array([best, 0.2]), "weight_norm": np.array([1.0, norm])})
        for i, (acc, best, norm, held) in enumerate([(1.0, 0.5, 10.0, None), (0.9, 0.7, 30.0, [5, 9]),
                                                     (0.8, 0.6, 20.0, None)])]
    e = race.end_state(runs)
    assert e == {"grokked": 1, "runs": 3, "train_acc": 0.9, "best_test_acc": pytest.approx(0.6), "weight_norm": 20.0}


def _ended(key, cfg, held, norm=40.0):
    import numpy as np
    return SimpleNamespace(key=key, config=cfg, meta={"stop_held": held}, history={
        "train_acc": np.array([1.0]), "test_acc": np.array([0.99 if held else 0.5]), "weight_norm": np.array([norm])})


def test_distinct_rows_name_a_shared_setting_once():
    a, b = [_ended("k1", None, [5, 9])], [_ended("k2", None, None)]
    got = race.distinct({"tuned": a, "probe": a, "other": b})
    assert got == {"k1": (["tuned", "probe"], a), "k2": (["other"], b)}
    assert [r[0] for r in race.end_rows({"tuned": a, "probe": a, "other": b})] == ["tuned", "other"]


def test_the_muon_check_table_sets_the_paper_adamw_on_the_same_seeds_beside_each_decay():
    S = setup("race", "paper", {})[0]
    base = race._configs(S, dict(lr=S["base_lr"], wd=S["base_wd"]), race.tune_seeds(S))
    steps = [100 * (i + 1) for i in range(len(base))]
    tuned = [_ended(c.key(), c, [s, s + 9]) for c, s in zip(base, steps)]
    check = [_ended(c.key(), c, [1000, 1009] if c.wd == 0.3 else None, norm=90.0) for c in race.muon_check_configs(S)]
    rows = race.muon_check_rows(S, check, tuned)
    assert [r[0] for r in rows] == ["paper AdamW, lr 0.001, wd 1", "lr 0.001, wd 0.1, Muon lr 0.01",
                                    "lr 0.001, wd 0.3, Muon lr 0.01"]
    assert all(len(r) == len(race.CHECK_HEADERS) for r in rows)
    assert rows[0][1:4] == ["0.10%", "8/8", "450 (275–625)"]
    assert rows[1][2:4] == ["0/8", "–"] and rows[2][1:4] == ["0.30%", "8/8", "1,000 (1,000–1,000)"]
    assert race.muon_check_rows(S, check, tuned[1:])[0][0].startswith("lr 0.001, wd 0.1")   # baseline not all there


# -- the verdict's claims, each flipped ------------------------------------------------------------------------------
def row(name, grokked, median, runs=32, device="NVIDIA H200", s_per=0.1, steps=None):
    return {"stage": "race", "row": name, "runs": runs, "grokked": grokked, "share": grokked / runs, "median": median,
            "grok_steps": steps if steps is not None else [median] * grokked + [None] * (runs - grokked),
            "device": device, "s_per_grokked": s_per}


def holding() -> list[dict]:
    """Race rows under which every claim holds."""
    return [row("paper AdamW", 32, 6000, s_per=0.4), row("AdamW (tuned)", 32, 3000),
            row("Grokfast EMA (tuned)", 32, 100, s_per=0.04), row("Grokfast MA (tuned)", 32, 2000),
            row("Muon (tuned)", 32, 4000), row("StableMax (tuned)", 20, 9000), row("⊥AdamW (tuned)", 16, 9000),
            row("probe λ2 lr 3e-3", 31, 2000), row("probe λ2 lr 1e-3", 20, 7000, steps=[5000] * 14 + [7000] * 6 + [None] * 12),
            row("probe λ5 lr 1e-3", 32, 4000)]


def _set(rows, name, **change):
    out = copy.deepcopy(rows)
    for r in out:
        if r["row"] == name:
            r.update(change)
            if "grokked" in change:
                r["share"] = r["grokked"] / r["runs"]
    return out


FLIPS = {
    "probe λ2 lr 3e-3": [dict(median=2400), dict(grokked=28)],
    "probe λ2 lr 1e-3": [dict(grok_steps=[5000] * 16 + [None] * 16)],
    "probe λ5 lr 1e-3": [dict(median=3400)],
    "Grokfast ×50": [dict(row="Grokfast EMA (tuned)", median=130)],
    "Grokfast MA faster": [dict(row="Grokfast MA (tuned)", grokked=30)],
    "Muon a third faster": [dict(row="Muon (tuned)", median=4600)],
    "Muon's lead vanishes against tuned AdamW": [dict(row="Muon (tuned)", median=2600)],
    "StableMax groks": [dict(row="StableMax (tuned)", grokked=15)],
    "⊥AdamW groks": [dict(row="⊥AdamW (tuned)", grokked=15)],
    "≤ 0.5 GPU-s per grokked seed, paper AdamW": [dict(row="paper AdamW", s_per_grokked=0.6)],
    "≤ 0.05 GPU-s per grokked seed, best method": [dict(row="Grokfast EMA (tuned)", s_per_grokked=0.06)],
}


def test_every_claim_holds_on_the_holding_rows_and_the_verdict_is_reproduced():
    F = race.findings(holding())
    assert set(F) == set(FLIPS) and all(F.values()) and race.verdict(F) == "reproduced"


@pytest.mark.parametrize("claim", FLIPS)
def test_each_claim_flips(claim):
    for change in FLIPS[claim]:
        change = dict(change)
        name = change.pop("row", claim)
        F = race.findings(_set(holding(), name, **change))
        assert [k for k, v in F.items() if not v] == [claim], change


def test_the_gpu_targets_are_not_tested_on_a_cpu_and_missing_rows_are_not_tested():
    rows = [dict(r, device="cpu (x86_64, 2 threads)") for r in holding()]
    assert not {k for k in race.findings(rows) if "GPU-s" in k}
    assert race.findings([r for r in holding() if not r["row"].startswith("probe")]).keys() == \
        set(FLIPS) - {k for k in FLIPS if k.startswith("probe")}
    assert race.verdict({"a": True, "b": False}) == "partly reproduced"


def test_the_hook_names_the_muon_check_apart_from_the_chapter_runs(tmp_path, monkeypatch):
    """The check is trained by the programme's hook, not listed among the chapter's runs (which the claims test
    loads strictly): an empty store has all its runs still to train, and the run configs do not name them."""
    monkeypatch.setenv("GROKBOOK_RESULTS", str(tmp_path))
    S, configs = setup("race", "quick", {})
    n = len(race.muon_check_configs(S))
    assert n == S["tune_seeds"] * len(S["muon_check_wds"]) > 0
    assert race.extra_training(S, False) == f"race: the race stage waits for the tuning grid; the Muon check: to train {n} runs"
    assert not {c.key() for c in race.muon_check_configs(S)} & {c.key() for c in configs}
    assert race.load_muon_check(S, False) is None
