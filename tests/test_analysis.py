"""Unit tests for grok_core.analysis: Table 1 rules on hand-built curves. Run: pytest tests/test_analysis.py"""
import math

import numpy as np
import pytest

from grok_core.analysis import (PAPER_TABLE1, Table1Rules, correlation, mean_sd, paper_table1_row, peak_and_fall,
                                rolling_mean, steps_to_threshold, table1_metrics)

RAW = Table1Rules(window=1)   # no smoothing: the hand-built values are read exactly


def grok_curve(n=1000, mem=100, go=400, base=0.1, top=0.9, low=0.8, dip_at=700):
    """Train acc 1 from `mem`; test acc at `base` until `go`, then `top`, dipping to `low` from `dip_at`."""
    train = np.where(np.arange(n) >= mem, 1.0, np.linspace(0, 0.9, n))
    test = np.full(n, base)
    test[go:] = top
    test[dip_at:] = low
    return test, train


def test_step_curve_gives_known_u_l_and_go():
    test, train = grok_curve()
    r = table1_metrics(test, train, RAW)
    assert r.memorised_at == 100
    assert r.u_acc == pytest.approx(0.9)
    assert r.l_acc == pytest.approx(0.8)
    assert r.go_epoch == 400
    assert r.ceiling_at == 400
    assert r.baseline == pytest.approx(0.1)


def test_linear_ramp_go_epoch_is_the_half_way_point():
    n = 2000
    train = np.ones(n)
    train[:50] = 0.5
    test = np.clip((np.arange(n) - 1000) / 500, 0, 1) * 0.8 + 0.1      # 0.1 until 1000, 0.9 from 1500
    r = table1_metrics(test, train, RAW)
    assert r.u_acc == pytest.approx(0.9)
    assert r.l_acc == pytest.approx(0.9)
    assert r.go_epoch == 1250                                        # 0.1 + 0.5 * 0.8 = 0.5 reached at step 1250


def test_no_jump_means_no_go_epoch():
    test, train = grok_curve(base=0.05, top=0.07, low=0.04)
    r = table1_metrics(test, train, RAW)
    assert r.go_epoch is None
    assert r.u_acc == pytest.approx(0.07)
    assert r.l_acc == pytest.approx(0.04)


def test_never_memorised_gives_all_none():
    r = table1_metrics(np.full(100, 0.3), np.full(100, 0.5), RAW)
    assert (r.u_acc, r.l_acc, r.go_epoch, r.memorised_at) == (None, None, None, None)


def test_single_spike_is_smoothed_away():
    test, train = grok_curve(n=1000, go=400, top=0.6, low=0.6)
    test[200] = 1.0
    raw = table1_metrics(test, train, RAW)
    smooth = table1_metrics(test, train, Table1Rules(window=51))
    assert raw.u_acc == pytest.approx(1.0)
    assert smooth.u_acc == pytest.approx(0.6)
    assert abs(smooth.go_epoch - 400) <= 25


def test_accuracy_before_memorisation_is_not_the_ceiling():
    test, train = grok_curve(mem=300, go=500, top=0.7, low=0.7)
    test[:200] = 0.95          # high test accuracy before train accuracy reaches 0.99 is ignored
    r = table1_metrics(test, train, RAW)
    assert r.u_acc == pytest.approx(0.7)
    assert r.go_epoch == 500


def test_default_window_scales_with_run_length():
    assert Table1Rules().window_for(30000) == 200
    assert Table1Rules().window_for(800) == 8
    assert Table1Rules().window_for(50) == 1


def test_mismatched_curves_raise():
    with pytest.raises(ValueError, match="equal length"):
        table1_metrics(np.zeros(10), np.zeros(11))


def test_rolling_mean_ignores_nan_and_shrinks_at_edges():
    x = np.array([1.0, np.nan, 3.0, 5.0])
    out = rolling_mean(x, 3)
    assert out.tolist() == pytest.approx([1.0, 2.0, 4.0, 4.0])
    with pytest.raises(ValueError):
        rolling_mean(x, 0)


def test_steps_to_threshold():
    assert steps_to_threshold(np.array([0.1, 0.5, 0.96, 0.2]), 0.95) == 2
    assert steps_to_threshold(np.array([0.1, 0.2]), 0.95) is None


def test_correlation_of_monotone_and_anti_monotone_series():
    x = np.linspace(0, 1, 50)
    assert correlation(x, x ** 3)["spearman"] == pytest.approx(1.0)
    assert correlation(x, -2 * x + 1)["pearson"] == pytest.approx(-1.0)
    assert math.isnan(correlation(x, np.ones(50))["pearson"])


def test_mean_sd_skips_none():
    assert mean_sd([1.0, None, 3.0]) == pytest.approx((2.0, math.sqrt(2)))
    assert mean_sd([None]) == (pytest.approx(math.nan, nan_ok=True), pytest.approx(math.nan, nan_ok=True))


def test_paper_table1_has_all_eleven_settings():
    assert len(PAPER_TABLE1) == 11
    assert paper_table1_row("square", 30)["u_acc"] == 99.04
    assert paper_table1_row("strip", 67)["go_epoch"] is None
    assert paper_table1_row("square", 31) is None


def test_peak_and_fall_finds_the_rise_and_the_half_way_fall():
    steps = np.arange(0, 10000, 20)
    curve = np.where(steps < 2000, steps / 2000, np.exp(-(steps - 2000) / 1000.0)) * 10 + 1    # peak 11 at 2000, final ~1
    curve = curve + 0.3 * np.sin(steps / 7.0)                                                  # noise the window removes
    peak, half = peak_and_fall(curve, steps, window=200)
    assert abs(peak - 2000) <= 100
    assert abs(half - (2000 + 1000 * np.log(2))) <= 60                                          # 11 -> 6 after ln 2 time constants
    rising = steps / 1000.0                                                                     # never falls after its peak
    assert peak_and_fall(rising, steps)[1] is None


def test_captions_name_shared_seeds_once():
    from types import SimpleNamespace

    from grok_core.plotting import runs_caption

    def runs(n, split_seeds=(0, 1)):
        return [SimpleNamespace(key=f"k{i}{s}", config=SimpleNamespace(init_seed=i, split_seed=s))
                for s in split_seeds for i in range(n)]
    big = {"a": runs(4), "b": runs(4)}
    assert runs_caption(big) == "Every setting: init seeds 0–3 × split seeds 0, 1; 8 runs each."
    mixed = {"a": runs(4), "b": runs(3)}
    assert runs_caption(mixed).count("init seeds") == 2 and "6 runs" in runs_caption(mixed)
    small = {"a": runs(1, (0,)), "b": runs(1, (0,))}
    assert runs_caption(small) == "Every setting: init seeds 0 × split seed 0; 1 run each."    # shared: once
    apart = {"a": runs(1, (0,)), "b": runs(2, (0,))}
    assert runs_caption(apart).count("config hash") == 2            # seeds differ: per setting, few runs by hash
