"""The label-corruption chapter (Doshi et al.): its settings are checked before anything trains, its paper profile
is the designed grid with every run's seeds its own, the regime rule sorts each branch, and every claim of the
verdict rule is flipped by its numbers."""
import pytest

from grok_core.chapters import label_corruption as chapter
from grok_core.chapters import setup
from grok_core.config import RunConfig


@pytest.mark.parametrize("given,match", [
    (dict(regime_steps="100,200"), "regime_steps"), (dict(prune_wd=7.0), "prune_wd"), (dict(loss="hinge"), "loss"),
    (dict(phase_xis="0.2,1.5"), "phase_xis"), (dict(regime_xi=-0.1), "regime_xi"), (dict(phase_fracs="0,0.5"), "phase_fracs"),
    (dict(n_seeds=0), "n_seeds"), (dict(regime_wds="0,-5,15,20"), "regime_wds"), (dict(prune_seeds=2), "prune_seeds"),
    (dict(long_xis="0.1,0.2"), "long_xis"), (dict(long_fracs="1.2"), "long_fracs"), (dict(long_wd=-1.0), "long_wd"),
    (dict(long_steps=0), "long_steps")])
def test_bad_settings_are_refused_before_training(given, match):
    with pytest.raises(ValueError, match=match):
        setup("label_corruption", "quick", given)


def test_the_paper_profile_is_the_designed_grid_with_seeds_of_their_own():
    S, configs = setup("label_corruption", "paper", {})
    regimes, phase = chapter.regime_configs(S), chapter.phase_configs(S)
    assert len(regimes) == 4 * 4 and len(phase) == 9 * 9 * 2 * 2 and len(configs) == len({c.key() for c in configs})
    c = regimes[0]
    assert (c.p, c.d_mlp, c.model, c.act, c.loss, c.lr, c.beta2, c.warmup_steps) == (97, 500, "quadratic", "square",
                                                                                      "mse", 0.01, 0.98, 0)
    assert {(r.wd, r.n_steps) for r in regimes} == {(0.0, 1000), (5.0, 500), (15.0, 500), (20.0, 5000)}
    assert {(r.init_seed, r.split_seed, r.corrupt_seed) for r in regimes} == {(k, k, k) for k in range(4)}
    pruned = chapter.prune_configs(S)
    assert [r.wd for r in pruned] == [0.0] * 3 and all(r.snapshots == 2 and r.snapshot_dtype == "float16" for r in pruned)
    assert not any(r.snapshots for r in phase)
    for wd in S["phase_wds"]:                 # one batch per weight decay: f, ξ and the seeds vary inside it
        RunConfig.check_batchable([r for r in phase if r.wd == wd])
    long = chapter.long_configs(S)
    assert len(long) == 3 * 2 and {(r.wd, r.n_steps, r.record_every) for r in long} == {(0.0, 6000, 100)}
    assert {(r.frac_train, r.corrupt_share) for r in long} <= {(r.frac_train, r.corrupt_share) for r in phase}
    assert {c.key() for c in long}.isdisjoint(c.key() for c in phase)


@pytest.mark.parametrize("acc,want", [
    ((0.95, 1.0, 0.99, 0.05), "coexistence"), ((0.0, 1.0, 0.99, 1.0), "full inversion"),
    ((0.5, 1.0, 0.95, 0.5), "partial inversion"), ((1.0, 1.0, 0.05, 0.0), "memorisation"),
    ((0.4, 0.6, 0.1, 0.1), "forgetting"), ((0.5, 0.97, 0.5, 0.4), "confusion"),
    ((0.9, 1.0, 0.9, 0.0), "coexistence"), ((0.89, 1.0, 0.9, 0.9), "full inversion")])
def test_the_regime_rule_sorts_each_branch_at_its_thresholds(acc, want):
    assert chapter.regime(*acc) == want


def regime(wd, names, ipr=0.3):
    n = len(names)
    return {"part": "regime", "wd": wd, "runs": n, "regime": list(names), "mean_ipr": [ipr] * n}


def cell(wd, majority):
    return {"part": "phase", "wd": wd, "majority": majority}


def prune(sep=(50, 60), rand=(None, None)):
    return {"part": "prune", "runs": len(sep), "separated_at": list(sep), "random_separated_at": list(rand)}


BASE = [regime(0.0, ["coexistence", "coexistence"], 0.2), regime(5.0, ["partial inversion", "coexistence"], 0.4),
        regime(15.0, ["full inversion", "full inversion"], 0.5), regime(20.0, ["forgetting", "confusion"], 0.1),
        prune(), cell(0.0, "coexistence"), cell(0.0, "memorisation"), cell(5.0, "partial inversion"),
        cell(5.0, "full inversion")]


def test_each_claim_of_the_rule_is_flipped_by_its_numbers():
    F = chapter.findings(BASE, 500)
    assert F == {"coexistence": True, "partial inversion": True, "full inversion": True, "forgetting": True,
                 "periodic": True, "pruning": True, "specific": True, "diagram": True}
    assert chapter.verdict(F) == "reproduced"

    def flipped(i, new):
        return chapter.findings(BASE[:i] + [new] + BASE[i + 1:], 500)
    assert not flipped(0, regime(0.0, ["memorisation", "coexistence", "memorisation"], 0.2))["coexistence"]
    assert not flipped(1, regime(5.0, ["coexistence", "coexistence"], 0.4))["partial inversion"]
    assert not flipped(2, regime(15.0, ["partial inversion", "full inversion", "coexistence"], 0.5))["full inversion"]
    assert not flipped(3, regime(20.0, ["confusion", "confusion"], 0.1))["forgetting"]
    assert not flipped(2, regime(15.0, ["full inversion"] * 2, 0.15))["periodic"]
    assert not flipped(4, prune(sep=(None, 60, None)))["pruning"]
    assert not flipped(4, prune(sep=(50, 60), rand=(40, 50)))["specific"]
    assert flipped(4, prune(sep=(50, None), rand=(None, None)))["specific"]       # never counts as 501
    assert not flipped(7, cell(5.0, "coexistence"))["diagram"]
    assert not chapter.findings(BASE[:7] + [cell(5.0, "memorisation")] * 2, 500)["diagram"]     # no inversion cell
    assert "diagram" not in chapter.findings(BASE[:5], 500) and "pruning" not in chapter.findings(BASE[:4], 500)
    assert chapter.verdict({"a": True, "b": False}) == "partly reproduced"
    assert chapter.verdict({"a": True, "b": False, "c": False}) == "not reproduced"


def test_a_setting_takes_the_regime_most_of_its_runs_are_in():
    assert chapter.majority(["confusion", "forgetting", "forgetting"]) == "forgetting"
    assert chapter.majority(["confusion", "coexistence"]) == "coexistence"          # a tie: the first in REGIMES


def test_separation_is_the_first_count_with_memorisation_gone_and_generalisation_kept():
    import numpy as np
    curve = {"removed": np.arange(4), "corrupted_acc": np.array([1.0, 0.2, 0.05, 0.0]),
             "clean_acc": np.array([1.0, 1.0, 0.95, 0.5]), "test_acc": np.array([1.0, 0.99, 0.92, 0.3])}
    assert chapter.separated_at(curve) == 2 and chapter.first_below(curve, "test_acc", 0.9) == 3
    curve["test_acc"][2] = 0.89
    assert chapter.separated_at(curve) is None


def test_the_long_check_names_the_cells_whose_regime_moved():
    cell = lambda part, f, x, m: {"part": part, "wd": 0.0, "frac": f, "xi": x, "majority": m}
    settings = [cell("phase", 0.3, 0.1, "memorisation"), cell("phase", 0.6, 0.5, "memorisation"),
                cell("long", 0.3, 0.1, "coexistence"), cell("long", 0.6, 0.5, "memorisation"),
                cell("long", 0.9, 0.9, "memorisation")]           # not in the diagram: left out
    assert chapter.long_changes(settings) == [(0.3, 0.1, "memorisation", "coexistence"),
                                              (0.6, 0.5, "memorisation", "memorisation")]
