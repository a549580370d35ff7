"""Result boxes of the MED, appendix, Toeplitz and ResNet chapters: each rule flips its verdict on either side of
each threshold, the censored mean of Fig. 20 is right on hand-made steps, and the stored paper runs give the
verdicts the book states."""
import math

import numpy as np
import pytest

from grok_core.chapters import fig5_med_primes as fig5
from grok_core.chapters import fig20_toeplitz as fig20
from grok_core.chapters import figs12_19_functions as figs
from grok_core.chapters import resnet, setup
from grok_core.chapters.claims import chapter_claims
from grok_core.resnet.train import ResNetStore
from grok_core.runner import load_or_train
from grok_core.store import REPO_ROOT, RunStore

EPS = 1e-3


# Fig. 5: the stretch near grokking (its rule's thresholds are tested in test_lead_lag.py).
def test_fig5_near_grokking_keeps_up_to_three_times_the_half_accuracy_step():
    h = {"step": np.arange(0, 100, 10), "test_acc": np.array([0, 0, 0.6, 1, 1, 1, 1, 1, 1, 1.0])}
    assert fig5.near_grokking(h)["step"].tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert fig5.near_grokking({**h, "test_acc": h["test_acc"] * 0.4}) is None


# Figs. 12-19: grokking needs most runs at 95 %, MIN_DELAY steps after fitting; support only among those.
def figure(n, pearson, delay=2 * figs.MIN_DELAY, reached=2, runs=2):
    return {"figure": n, "pearson_test_loss": [pearson] * runs, "train_acc_1_at": [100] * runs,
            "steps_to_95": [100 + delay] * reached + [None] * (runs - reached), "late_test_acc": [1.0] * runs}


def test_figs_grokking_needs_a_share_of_runs_and_a_delay():
    assert figs.groks(figure(12, 1, delay=figs.MIN_DELAY))
    assert not figs.groks(figure(12, 1, delay=figs.MIN_DELAY - 1))
    assert figs.groks(figure(12, 1, reached=1, runs=2)) and not figs.groks(figure(12, 1, reached=1, runs=3))


def test_figs_verdict_counts_support_among_the_figures_that_grok():
    T = figs.TRACKS
    assert figs.verdict([figure(12, T), figure(13, T)]) == "reproduced"
    # a figure that does not grok is no support, however high its correlation
    assert figs.verdict([figure(12, T), figure(13, 0.9, reached=0)]) == "partly reproduced"
    assert figs.verdict([figure(12, T), figure(13, T - EPS)]) == "partly reproduced"
    assert figs.verdict([figure(12, T), figure(13, T - EPS), figure(14, T - EPS)]) == "not reproduced"
    assert figs.verdict([figure(12, 0.9, reached=0), figure(13, 0.9, delay=0)]) == "not reproduced"
    assert figs.verdict([figure(12, -EPS), figure(13, -EPS), figure(14, T)]) == "contradicted"


# Fig. 20: the restricted mean counts a run that never reaches 95 % as n_steps.
def test_restricted_mean_censors_runs_that_never_grok():
    assert fig20.restricted_mean([100, 300], 1000) == 200
    assert fig20.restricted_mean([100, None, None, 300], 1000) == 600
    assert fig20.restricted_mean([None, None], 1000) == 1000
    assert math.isnan(fig20.restricted_mean([], 1000))


def fig20_setting(frac, toeplitz, circulant):
    return [{"frac": frac, "init": "normal", "ratio_to_normal": math.nan},
            {"frac": frac, "init": "toeplitz", "ratio_to_normal": toeplitz},
            {"frac": frac, "init": "circulant", "ratio_to_normal": circulant}]


def test_fig20_verdict_on_either_side_of_each_threshold():
    H, F, L = fig20.HALVED, fig20.FASTER, fig20.SLOWER
    assert fig20.verdict(fig20_setting(0.3, H, 1) + fig20_setting(0.2, 1, H)) == "reproduced"
    assert fig20.verdict(fig20_setting(0.3, H, 1) + fig20_setting(0.2, H + EPS, 1)) == "partly reproduced"
    assert fig20.verdict(fig20_setting(0.3, F, 1) + fig20_setting(0.2, 1, 1)) == "partly reproduced"
    assert fig20.verdict(fig20_setting(0.3, F + EPS, 1) + fig20_setting(0.2, 1, 1)) == "not reproduced"
    assert fig20.verdict(fig20_setting(0.3, L, L) + fig20_setting(0.2, L, 2)) == "contradicted"
    assert fig20.verdict(fig20_setting(0.3, L, L - EPS) + fig20_setting(0.2, L, 2)) == "not reproduced"
    assert fig20.verdict(fig20_setting(0.3, math.nan, math.nan)) == "not reproduced"


# ResNet: the released settings' run decides; a grokking variant only partly.
def test_resnet_verdict_follows_the_released_run_first():
    assert resnet.verdict([{"kind": "grokking"}, {"kind": "no delay"}]) == "reproduced"
    assert resnet.verdict([{"kind": "not reached"}, {"kind": "grokking"}]) == "partly reproduced"
    assert resnet.verdict([{"kind": "no delay"}, {"kind": "not reached"}]) == "not reproduced"
    assert resnet.verdict([]) == "not reproduced"


# The stored paper runs.
@pytest.mark.parametrize("chapter, verdict", [("fig5_med_primes", "partly reproduced"),
                                              ("figs12_19_functions", "partly reproduced"),
                                              ("fig20_toeplitz", "not reproduced")])
def test_the_stored_paper_runs_give_the_stated_verdict(chapter, verdict):
    S, configs = setup(chapter, "paper", {})
    C = chapter_claims(chapter, S, load_or_train(configs, store=RunStore(REPO_ROOT / "results"), train=False))
    assert C["result"]["verdict"] == verdict


def test_the_stored_paper_figures_that_grok_are_12_to_14():
    S, configs = setup("figs12_19_functions", "paper", {})
    C = chapter_claims("figs12_19_functions", S, load_or_train(configs, store=RunStore(REPO_ROOT / "results"), train=False))
    assert [s["figure"] for s in C["settings"] if figs.groks(s)] == [12, 13, 14]


def test_the_stored_resnet_runs_do_not_grok():
    S, _ = setup("resnet", "paper", {})
    cfg, variants = resnet.resnet_configs(S)
    store = ResNetStore(REPO_ROOT / "results")
    C = {"settings": resnet.claims(S, [store.get(c) for c in [cfg] + variants])}
    assert [s["kind"] for s in C["settings"]] == ["not reached", "not reached", "not reached", "no delay"]
    assert resnet.result(S, C).verdict == "not reproduced"
