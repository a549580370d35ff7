"""Whether two curves move together (grok_core/lead_lag.py), and the Fig. 5 chapter's rule built on it.

The curves are constructed so that each answer is known: two Gaussian bumps of width 200 steps whose peaks are
300 steps apart come half way down (to the midpoint of peak and final level, 0) sigma * sqrt(2 ln 2) = 235.5
steps after their peaks, so at steps 2236 and 1936; series that rise together in one window and in opposite
directions in another have Spearman correlations of exactly +1 and -1 there.
"""
import math

import numpy as np
import pytest

from grok_core.chapters import fig5_med_primes as fig5
from grok_core.lead_lag import lead_lag, log_windows, windowed_spearman

STEPS = np.arange(0, 4001)


def bump(centre, width=200.0):
    return np.exp(-((STEPS - centre) / width) ** 2 / 2)


def test_lead_lag_of_two_bumps_300_steps_apart():
    ll = lead_lag(STEPS, bump(2000), bump(1700), window=1)
    assert ll == {"peak_a": 2000, "peak_b": 1700, "half_a": 2236, "half_b": 1936, "peak_lag": 300, "half_lag": 300}
    # smoothing moves both alike; the order of the curves gives the sign
    smoothed = lead_lag(STEPS, bump(1700), bump(2000), window=101)
    assert (smoothed["peak_lag"], smoothed["half_lag"]) == (-300, -300)


def test_lead_lag_of_a_curve_that_never_comes_down():
    ll = lead_lag(STEPS, STEPS / 4000.0, bump(1000), window=1)
    assert ll["peak_a"] == 4000 and ll["half_a"] is None and ll["half_lag"] is None and ll["peak_lag"] == 3000


def test_log_windows_end_at_the_run_and_overlap_by_half():
    assert log_windows(10, 30000) == [(17, 53), (30, 94), (54, 168), (95, 300), (169, 533), (300, 948), (534, 1687),
                                      (949, 3000), (1688, 5334), (3000, 9486), (5335, 16870), (9487, 30000)]
    assert log_windows(10, 300) == [(17, 53), (30, 94), (54, 168), (95, 300)]
    assert log_windows(10, 100, width=1, per_decade=1) == [(10, 100)]
    assert log_windows(10, 20) == []                                    # no half-decade window fits
    with pytest.raises(ValueError):
        log_windows(0, 100)


def test_windowed_spearman_tells_joint_from_opposite_movement():
    steps = np.arange(1000)
    x = np.where(steps < 500, steps, 1000 - steps).astype(float)        # up, then down
    y = steps.astype(float) ** 2                                        # up throughout
    rho = windowed_spearman(steps, x, y, [(0, 499), (500, 999), (990, 995), (0, 999)])
    assert rho[0] == pytest.approx(1.0) and rho[1] == pytest.approx(-1.0)
    assert math.isnan(rho[2])                                           # 6 entries, fewer than 10
    assert -0.1 < rho[3] < 0.1                                          # over the whole run they look unrelated
    assert math.isnan(windowed_spearman(steps, np.ones(1000), y, [(0, 999)])[0])


def test_windowed_spearman_thins_a_window_to_its_coarsest_interval():
    steps = np.concatenate([np.arange(200), np.arange(200, 1001, 20)])  # every step, then every 20th
    x = steps.astype(float)
    y = np.where(steps % 20 == 0, x, -x)                                # off-grid entries run the other way
    assert windowed_spearman(steps, x, y, [(100, 400)])[0] == pytest.approx(1.0)     # 100, 120, ..., 400 only
    assert windowed_spearman(steps, x, y, [(20, 199)])[0] < -0.8        # all recorded densely: every entry counts
    with pytest.raises(ValueError, match="same shape"):
        windowed_spearman(steps, x[:-1], y, [(0, 10)])


# -- Fig. 5's rule: one shared peak-and-drop, and tracking over training ------------------------------------------
EPS = 1e-3
CLOSE = 1000


def prime(whole, near, half_gap=0, windows=(0.9, 0.9), reached=2, runs=2):
    """A prime's claim numbers: whole-run and near-grokking Spearman, MED's half-way step minus the test loss's,
    the windowed Spearman of every run, and how many runs reach 95 %."""
    return {"p": 7, "spearman_test_loss": [whole] * runs, "spearman_near_grokking": [near] * runs,
            "med_half": [1000 + half_gap] * runs, "test_loss_half": [1000] * runs,
            "spearman_windows": [list(windows)] * runs, "steps_to_95": [100] * reached + [None] * (runs - reached)}


def test_fig5_shared_drop_needs_grokking_a_near_correlation_and_close_falls():
    T = fig5.TRACKS
    assert fig5.shares_the_drop(prime(0, T, half_gap=CLOSE), CLOSE)
    assert not fig5.shares_the_drop(prime(0, T - EPS), CLOSE)
    assert not fig5.shares_the_drop(prime(0, T, half_gap=CLOSE + 1), CLOSE)
    assert not fig5.shares_the_drop(prime(0, T, half_gap=-CLOSE - 1), CLOSE)
    assert not fig5.shares_the_drop(prime(0, T, reached=0), CLOSE)
    assert fig5.shares_the_drop(prime(0, T, reached=1), CLOSE)          # half the runs groks
    mixed = dict(prime(0, T), med_half=[1000, 5000, None], test_loss_half=[1000, 1000, 1000])
    assert fig5.shares_the_drop(mixed, CLOSE)                           # one of the two runs with both falls
    assert not fig5.shares_the_drop(dict(mixed, med_half=[None, 5000, None]), CLOSE)
    assert not fig5.shares_the_drop(dict(mixed, med_half=[None, None, None]), CLOSE)


def test_fig5_tracking_needs_the_whole_run_and_no_opposite_window():
    T = fig5.TRACKS
    assert fig5.tracks_over_training(prime(T, 0, windows=(1, -T + EPS, math.nan)))
    assert not fig5.tracks_over_training(prime(T - EPS, 0))
    assert not fig5.tracks_over_training(prime(T, 0, windows=(1, -T)))
    assert fig5.window_counts(prime(0, 0, windows=(T, -T, 0, math.nan))) == {"together": 1, "opposite": 1,
                                                                             "windows": 3}


def test_fig5_verdict_on_either_side_of_each_threshold():
    T = fig5.TRACKS
    both = prime(T, T)
    assert fig5.verdict([both] * 4, CLOSE) == "reproduced"
    assert fig5.verdict([prime(T, T, windows=(1, -T))] + [both] * 3, CLOSE) == "partly reproduced"
    assert fig5.verdict([prime(T - EPS, T)] + [both] * 3, CLOSE) == "partly reproduced"
    assert fig5.verdict([prime(T, T, reached=0)] + [both] * 3, CLOSE) == "partly reproduced"    # one does not grok
    assert fig5.verdict([prime(0, T)] * 2 + [prime(0, T - EPS)] * 2, CLOSE) == "partly reproduced"
    assert fig5.verdict([prime(0, T)] + [prime(0, T - EPS)] * 3, CLOSE) == "not reproduced"
    assert fig5.verdict([prime(0, T)] * 2 + [prime(0, T, half_gap=CLOSE + 1)] * 2, CLOSE) == "partly reproduced"
    assert fig5.verdict([prime(0, T)] + [prime(0, T, half_gap=CLOSE + 1)] * 3, CLOSE) == "not reproduced"
    assert fig5.verdict([prime(0, -EPS)] * 3 + [prime(0, T)], CLOSE) == "contradicted"
    assert fig5.verdict([prime(0, -EPS)] * 2 + [prime(0, 0)] * 2, CLOSE) == "not reproduced"
    assert fig5.verdict([], CLOSE) == "not reproduced"
    assert (fig5.at_primes([97, 211]), fig5.at_primes([])) == ("at p = 97, 211", "at no prime")


def test_fig5_lead_lag_table_counts_the_runs_with_a_stretch_around_grokking():
    s = {"p": 97, "grokking_span": [3000, None, 6000], "med_peak": [1500, None, 2500],
         "test_loss_peak": [1000, None, 1000], "med_half": [2000, None, 4000], "test_loss_half": [2100, None, 2000]}
    assert fig5.peak_gaps(s) == [500, 1500] and fig5.half_way_gaps(s) == [-100, 2000]
    assert fig5.lead_lag_rows([s], close_steps=1000) == [
        [97, "2/3", "2000 ± 707", "1000 ± 0", "1000 ± 707", "950 ± 1485", "1/2"]]


def test_fig5_run_claims_on_a_constructed_run():
    t = np.arange(1000)
    g = lambda c: np.exp(-((t - c) / 40.0) ** 2 / 2)
    h = {"step": t, "test_acc": np.clip((t - 100) / 200, 0, 1),            # 50 % at step 200: the stretch ends at 600
         "med": 1 + g(250) + np.where(t > 700, (t - 700) / 300, 0),         # peaks 100 steps after the test loss ...
         "test_loss": 10 ** g(150), "train_loss": np.exp(-t / 100.0)}       # ... and climbs again after step 700
    c = fig5.run_claims(h, {"record_every": 1, "n_steps": 1000})
    assert (c["test_acc_50_at"], c["grokking_span"]) == (200, 600)
    assert (c["med_peak"], c["test_loss_peak"]) == (250, 150)
    assert c["med_half"] - c["test_loss_half"] == 100 and 280 < c["med_half"] < 310
    assert c["med_end_over_start"] == pytest.approx(1 + np.mean(np.arange(200, 300)) / 300, rel=1e-3)
    assert c["med_end_over_low"] == pytest.approx(c["med_end_over_start"], rel=1e-3)
    assert len(c["spearman_windows"]) == len(log_windows(fig5.WINDOW_FIRST, 1000)) == 7      # 10-31 ... 316-1000
    never = fig5.run_claims({**h, "test_acc": np.zeros(1000)}, {"record_every": 1, "n_steps": 1000})
    assert never["grokking_span"] is None and never["med_peak"] is None and never["med_end_over_low"] is None
