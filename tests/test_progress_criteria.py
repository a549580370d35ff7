"""The comparison's ground truth and criteria against hand-computed small cases, and its rule flipped claim by claim."""
import numpy as np
import pytest

from grok_core import criteria as cr
from grok_core import transitions as tr
from grok_core.chapters import progress_measures as chapter


def test_concordance_by_hand():
    """Times 1, 2, 3 (all events): pairs (1,2), (1,3), (2,3) comparable. Predictions 10, 30, 20: concordant (1,2),
    (1,3), discordant (2,3): C = 2/3. A censored first run (time 1, no event) leaves only (2,3): C = 0. A tie in the
    prediction counts half."""
    assert cr.concordance([10, 30, 20], [1, 2, 3], [1, 1, 1]) == pytest.approx(2 / 3)
    assert cr.concordance([10, 30, 20], [1, 2, 3], [0, 1, 1]) == 0.0
    assert cr.concordance([10, 10, 20], [1, 2, 3], [1, 1, 1]) == pytest.approx((0.5 + 1 + 1) / 3)
    # a censored run later than an event is comparable with it; one censored before it is not
    assert cr.concordance([5, 1], [1, 4], [1, 0]) == 0.0 and np.isnan(cr.concordance([5, 1], [4, 1], [1, 0]))


def test_auroc_by_hand():
    """Positives score 0.9 and 0.4, negatives 0.5 and 0.1: of four pairs three are won: 0.75; a tie counts half."""
    assert cr.auroc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == 0.75
    assert cr.auroc([0.5, 0.5], [1, 0]) == 0.5
    assert np.isnan(cr.auroc([0.1, 0.2], [1, 1]))


def test_spearman_and_ranks():
    assert cr.ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    assert cr.spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert cr.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(cr.spearman([1, 2], [1, 2]))


def test_permutation_and_bootstrap():
    pred = np.arange(30.0)
    assert cr.permutation_p(pred, pred + 1, np.ones(30), n_perm=200) == pytest.approx(1 / 201)
    lo, hi = cr.interval(cr.bootstrap(lambda i: pred[i].mean(), 30, n_boot=500))
    assert lo < 14.5 < hi and hi - lo < 10


def test_leave_one_group_out_on_an_exact_line():
    x = np.array([1.0, 2, 3, 4, 5, 6])
    assert cr.leave_one_group_out_error(x, 2 * x + 1, [0, 0, 1, 1, 2, 2]) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(cr.leave_one_group_out_error(x, x, [0] * 6))


def test_loo_logistic_separates_a_separable_feature():
    x = np.array([[0.0], [1], [2], [3], [10], [11], [12], [13]])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1.0])
    assert cr.auroc(cr.loo_scores(x, y, "logistic"), y.astype(bool)) == 1.0


def test_ground_truth_on_a_planted_run():
    """Memorises at 100; test accuracy touches 0.95 at 300 for one entry (a slingshot), holds from 500 on."""
    steps = np.arange(0, 3000, 10)
    train = np.where(steps >= 100, 1.0, 0.5)
    test = np.where(steps >= 500, 0.99, 0.1)
    test[steps == 300] = 0.96
    assert tr.t_mem(steps, train) == 100
    assert tr.t_grok(steps, test) == 500
    assert tr.t_grok(steps[steps < 1400], test[steps < 1400]) is None           # not held for 1k steps yet
    loss = np.where(steps < 600, 3.0, 0.03)
    assert tr.t_drop(steps, loss, 100) == 600                               # midpoint 0.3 first crossed at 600
    assert tr.t_drop(steps, np.full(len(steps), 3.0), 100) is None and tr.t_drop(steps, loss, None) is None


def test_transition_times():
    steps = np.array([0, 100, 200, 300, 400, 500, 600, 700, 800])
    v = np.array([9.0, 5, 5, 5, 4, 2, 1, 1, 1])
    assert tr.half_change_time(steps, v, 100) == 500                       # from 5 to 1: half at 3, reached at 500
    assert tr.half_change_time(steps, np.full(9, 2.0), 100) is None
    bent = np.log(np.maximum(np.arange(1, 40) * 100, 1.0))
    s = np.arange(1, 40) * 100
    assert tr.changepoint_time(s, np.where(s < 2000, 0.0, bent - np.log(2000)), 100) == 2000


def _measure(name, concordance=0.9, lead_lo=50.0, positive=0.9, p=0.01, vs_clock=0.05, tracking_diff=0.5):
    return {"kind": "measure", "measure": name, "label": name, "admissible": True, "concordance": concordance,
            "concordance_ci": [concordance - 0.1, concordance + 0.05], "permutation_p": p, "vs_clock_ci": [vs_clock, 0.3],
            "lead": {"n": 10, "median": 100.0, "ci": [lead_lo, 200.0], "positive": positive},
            "tracking_diff": tracking_diff}


def _settings(**med):
    ms = [_measure("med", **med)] + [_measure(n, tracking_diff=0.4) for n in chapter.EARLIER]
    for m in ms:
        m["predicts"] = chapter.predicts(m)
    return [{"kind": "population"}] + ms


def test_the_rule_holds_and_each_part_of_predicts_flips_it():
    assert chapter.predicts(_measure("med"))
    for change in (dict(lead_lo=-1.0), dict(positive=0.7), dict(concordance=0.7), dict(p=0.2), dict(vs_clock=-0.01)):
        assert not chapter.predicts(_measure("med", **change)), change
    assert not chapter.predicts(_measure("clock"))


def test_each_claim_about_med_flips_the_verdict():
    assert chapter.findings(_settings()) == {"predicts": True, "tracks": True, "ranks": True}
    assert chapter.verdict(chapter.findings(_settings())) == "reproduced"
    assert chapter.findings(_settings(tracking_diff=0.3))["tracks"] is False
    assert chapter.verdict(chapter.findings(_settings(tracking_diff=0.3))) == "partly reproduced"
    low = _settings(concordance=0.5)                    # another measure's interval lies above MED's value
    assert chapter.findings(low)["ranks"] is False and chapter.findings(low)["predicts"] is False
    assert chapter.verdict(chapter.findings(low)) == "not reproduced"


@pytest.mark.slow
def test_the_quick_pipeline_trains_measures_and_judges(tmp_path, monkeypatch):
    """The whole pipeline on the quick profile (8 runs, training included). Its time on a 2-core CPU is measured
    with the notebook (bench/results/chapter_cost.json), not asserted here."""
    from grok_core import progress
    from grok_core.chapters import setup
    from grok_core.chapters.claims import chapter_claims

    monkeypatch.setenv("GROKBOOK_RESULTS", str(tmp_path))
    S, _ = setup("progress_measures", "quick", {})
    runs = chapter.load(S, train=True)
    C = chapter_claims("progress_measures", S, runs)
    rows = progress.read_transitions(chapter.transitions_path(S))
    assert len(rows) == 8 and {r["p"] for r in rows} == {23, 31}
    assert [s["measure"] for s in C["settings"][1:]] == ["clock", *progress.CANDIDATES, *progress.CEILINGS]
    assert C["result"]["verdict"] in ("reproduced", "partly reproduced", "not reproduced")
    with pytest.raises(LookupError, match="not in the store"):
        chapter.load(setup("progress_measures", "quick", {"n_seeds": 2})[0], train=False)


def _claims(**med):
    settings = _settings(**med)[1:]
    for m in settings:
        m |= {"spearman": 0.5, "tracking": 0.6, "lead": m["lead"] | {"q1": 0.0, "q3": 300.0}}
    return {"settings": [{"kind": "population", "grokked": 10}] + settings}


def test_apart_names_the_parts_med_misses_and_shows_the_earlier_measures():
    text, rows = chapter.apart(_claims(positive=0.7, concordance=0.5))
    assert "misses 2 of the rule's 5 parts (≥ 80% of runs leading; concordance ≥ 0.8)" in text
    assert "loose clock" in text and [r[0] for r in rows] == ["med", *chapter.EARLIER]
    text, _ = chapter.apart(_claims())
    assert "misses 0" in text and "announces grokking" in text


def test_nowd_rows_count_grokked_runs_and_the_first_collapsed_snapshot():
    from types import SimpleNamespace

    from grok_core import progress
    from grok_core.chapters import setup

    S, _ = setup("progress_measures", "quick", {"nowd_seeds": 2})
    cs = chapter.nowd_configs(S)
    sc = {0: [0.0, 0.5, 1.0], 1: [0.0, 0.2, 0.4]}          # softmax seed 0 collapses at step 200; the rest never
    runs = [SimpleNamespace(key=c.key(), history={"test_acc": np.array([0.1, 0.3 + 0.1 * c.init_seed]),
                                                  "snapshot_step": np.array([0, 100, 200]),
                                                  progress.AT_SNAPSHOT + "sc_fraction":
                                                      np.array(sc[c.init_seed] if c.loss == "ce" else [0.0] * 3)})
            for c in cs]
    rows = [{"key": c.key(), "t_grok": 150 if c.loss == "stablemax" and c.init_seed else None} for c in cs]
    soft, stable = chapter.nowd_rows(S, runs, rows)
    assert soft == ["softmax (fp32)", "2", "0", "0.30–0.40", "0.400–1.000", "200 (1 of 2 runs)"]
    assert stable[2] == "1" and stable[-1] == "never"
    assert chapter.nowd_rows(setup("progress_measures", "quick", {})[0], runs, rows) == []
