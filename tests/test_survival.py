"""Steps to a threshold as censored data (grok_core/survival.py), and its use in the Fig. 20 chapter.

The sample below is small enough to do by hand: six runs, four that get there (at steps 2, 3, 5 and 9) and two
censored (at 3 and 7). At each event step the share not yet there is multiplied by 1 - d/n, n counting every run
whose time is at least that step (a run censored at 3 is still at risk at 3):

    step 2: n = 6, d = 1  ->  5/6
    step 3: n = 5, d = 1  ->  5/6 * 4/5 = 2/3
    step 5: n = 3, d = 1  ->  2/3 * 2/3 = 4/9
    step 9: n = 1, d = 1  ->  0

so the median (first step with share <= 1/2) is 5, and the area under the curve up to 10 is
2 * 1 + 1 * 5/6 + 2 * 2/3 + 4 * 4/9 + 1 * 0 = 107/18.
"""
import math

import numpy as np
import pytest

from grok_core import survival
from grok_core.chapters import fig20_toeplitz as fig20

TIMES = [2, 3, 3, 5, 7, 9]
OBSERVED = [True, True, False, True, False, True]


def test_kaplan_meier_of_the_hand_made_sample():
    t, share = survival.kaplan_meier(TIMES, OBSERVED)
    assert t.tolist() == [2, 3, 5, 9]
    assert share == pytest.approx([5 / 6, 2 / 3, 4 / 9, 0.0], abs=1e-15)
    assert survival.survival_at([0, 1.9, 2, 4, 8.9, 9, 50], TIMES, OBSERVED) == pytest.approx(
        [1, 1, 5 / 6, 2 / 3, 4 / 9, 0, 0], abs=1e-15)


def test_kaplan_meier_median_is_the_first_step_at_or_below_one_half():
    assert survival.km_median(TIMES, OBSERVED) == 5
    # exactly one half after the second of four: that step is the median
    assert survival.km_median([100, 200, 1000, 1000], [True, True, False, False]) == 200
    # one of three gets there: the share stays at 2/3, the median is not reached
    assert survival.km_median([4, 10, 10], [True, False, False]) is None
    assert survival.km_median([], []) is None


def test_ties_among_events_count_together():
    # at step 5 two of four get there (the run censored at 5 is still at risk): 1 - 2/4; at 8 the last one does
    t, share = survival.kaplan_meier([5, 5, 5, 8], [True, True, False, True])
    assert t.tolist() == [5, 8] and share == pytest.approx([1 / 2, 0.0])


def test_restricted_mean_is_the_area_under_the_curve():
    assert survival.restricted_mean(TIMES, OBSERVED, 10) == pytest.approx(107 / 18, abs=1e-12)
    assert survival.restricted_mean(TIMES, OBSERVED, 4) == pytest.approx(2 + 5 / 6 + 2 / 3, abs=1e-12)
    assert math.isnan(survival.restricted_mean([], [], 10))


def test_restricted_mean_with_censoring_only_at_the_horizon_is_the_capped_mean():
    times, observed = survival.from_steps([100, None, None, 300], 1000)
    assert times.tolist() == [100, 1000, 1000, 300] and observed.tolist() == [True, False, False, True]
    assert survival.restricted_mean(times, observed, 1000) == 600          # exactly: (100 + 1000 + 1000 + 300) / 4
    assert survival.restricted_mean(*survival.from_steps([None, None], 1000), 1000) == 1000
    assert survival.from_steps([1200], 1000)[1].tolist() == [False]         # beyond the cap: censored there


def test_curve_is_a_step_plot_from_zero_to_the_end():
    x, y = survival.curve(TIMES, OBSERVED, 10)
    assert x.tolist() == [0, 2, 3, 5, 9, 10] and y == pytest.approx([1, 5 / 6, 2 / 3, 4 / 9, 0, 0], abs=1e-15)
    x, y = survival.curve([10, 10], [False, False], 10)
    assert x.tolist() == [0, 10] and y.tolist() == [1, 1]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="equal length"):
        survival.kaplan_meier([1, 2], [True])
    with pytest.raises(ValueError, match="non-negative"):
        survival.kaplan_meier([-1], [True])


# -- Fig. 20 ---------------------------------------------------------------------------------------------
def test_fig20_median_is_not_reached_where_fewer_than_half_get_there():
    assert fig20.km_median([300, 100, 200, None], 1000) == 200              # shares 3/4 at 100, 1/2 at 200
    assert fig20.km_median([300, None, None, None], 1000) is None
    x, y = fig20.km_curve([300, None], 1000)
    assert x.tolist() == [0, 300, 1000] and y.tolist() == [1, 0.5, 0.5]


def test_fig20_censored_table_puts_the_median_beside_the_restricted_mean():
    settings = [{"frac": 0.3, "init": "normal", "steps_to_95": [100, 200, None, None], "reached": 2,
                 "km_median": 200, "restricted_mean": 575.0, "ratio_to_normal": math.nan,
                 "median_ratio_to_normal": math.nan},
                {"frac": 0.3, "init": "toeplitz", "steps_to_95": [None, None, None, 50], "reached": 1,
                 "km_median": None, "restricted_mean": 762.5, "ratio_to_normal": 762.5 / 575,
                 "median_ratio_to_normal": math.nan}]
    assert fig20.censored_rows(settings) == [
        [0.3, "normal", "2/4", "200", "–", "575", "–", "150 ± 71"],
        [0.3, "toeplitz", "1/4", "not reached", "–", "762", "1.33", "50"]]
    assert len(fig20.CENSORED_HEADERS) == 8


def test_fig20_claims_count_the_runs_and_take_both_censored_statistics():
    class Run:
        def __init__(self, init, reached):
            self.key, self.meta = init, {}
            self.config = type("C", (), {"frac_train": 0.3, "embed_init": init, "n_steps": 1000})
            self.history = {"step": np.array([0, reached or 500, 1000]), "train_acc": np.ones(3),
                            "test_acc": np.array([0.0, 1.0, 1.0] if reached else [0.0, 0.0, 0.0])}
    S = {"fracs": [0.3], "embed_inits": ["normal", "toeplitz"], "n_steps": 1000}
    runs = [Run("normal", 200), Run("normal", 400), Run("normal", None), Run("toeplitz", 100), Run("toeplitz", 100),
            Run("toeplitz", None)]
    normal, toeplitz = fig20.claims(S, runs)
    assert (normal["reached"], normal["km_median"], normal["restricted_mean"]) == (2, 400, pytest.approx(1600 / 3))
    assert (toeplitz["reached"], toeplitz["km_median"], toeplitz["restricted_mean"]) == (2, 100, pytest.approx(400))
    assert toeplitz["ratio_to_normal"] == pytest.approx(400 / (1600 / 3))
    assert toeplitz["median_ratio_to_normal"] == pytest.approx(0.25)
    assert math.isnan(normal["median_ratio_to_normal"])
