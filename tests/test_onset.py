"""Readings of the GO step (grok_core/onset.py) on constructed curves whose steps are known, the released code's
smoother against a direct port of it, and the Table 1 chapter's per-row GO-Epoch verdicts and strip paragraph."""
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from grok_core import onset
from grok_core.analysis import Table1Rules, table1_metrics
from grok_core.chapters import table1_square_strip as t1

RAW = Table1Rules(window=1)   # no smoothing: the readings fall on the constructed curve's own steps


def released_loop(data, start_point=1000, window_size=500):
    """The released code's `remove_outliers`, line by line (its unused threshold argument left out)."""
    data = np.asarray(data, dtype=float)
    smoothed = np.copy(data)
    for i in range(start_point, len(data)):
        start, end = max(0, i - window_size), min(len(data), i + window_size + 1)
        smoothed[i] = np.nanmean(np.concatenate((smoothed[start:i], smoothed[i + 1:end])))
    return np.concatenate((data[:start_point], gaussian_filter1d(smoothed, sigma=10)[start_point:]))


def sigmoid_run(n=3000, mem=100, t0=1000, w=50.0, base=0.25, top=0.75):
    """Train accuracy 1 from `mem`; test accuracy base + (top - base) * sigmoid((step - t0) / w), exactly base
    more than 8 w before t0 and exactly top more than 16 w after it (so the baseline and the ceiling are exact)."""
    steps = np.arange(n)
    train = np.where(steps >= mem, 1.0, 0.5)
    s = 1 / (1 + np.exp(-(steps - t0) / w))
    s[steps < t0 - 8 * w], s[steps > t0 + 16 * w] = 0.0, 1.0
    return base + (top - base) * s, train


# -- the released smoother ---------------------------------------------------------------------------------
def test_released_smooth_is_the_released_loop():
    rng = np.random.default_rng(0)
    x = rng.random(2600)
    x[[1200, 1700, 2599]] = np.nan
    ours, theirs = onset.released_smooth(x), released_loop(x)
    assert np.max(np.abs(ours - theirs)) < 1e-12
    assert np.array_equal(ours[:1000], x[:1000])                     # the first 1,000 entries stay raw
    assert not np.allclose(ours[1000:], x[1000:], equal_nan=True)


def test_released_smooth_leaves_a_short_series_and_a_constant_alone():
    x = np.linspace(0, 1, 1000)
    assert np.array_equal(onset.released_smooth(x), x)
    assert np.allclose(onset.released_smooth(np.full(3000, 0.25)), 0.25)


def test_a_thinned_history_is_interpolated_onto_every_step():
    rng = np.random.default_rng(1)
    full = rng.random(4001)
    assert np.array_equal(onset.released_smooth_by_step(full, np.arange(4001)), onset.released_smooth(full))
    steps = np.concatenate([np.arange(2000), np.arange(2000, 4001, 20)])
    thinned = full[steps]
    expected = onset.released_smooth(np.interp(np.arange(4001), steps, thinned))[steps]
    assert np.array_equal(onset.released_smooth_by_step(thinned, steps), expected)


# -- the readings on known curves ------------------------------------------------------------------------------
def test_each_reading_finds_its_step_on_a_sigmoid():
    test, train = sigmoid_run()
    at = {name: onset.go_step(onset.reading(name), test, train, rules=RAW) for name in ("half", "onset", "jump")}
    # half: sigmoid >= 1/2 from t0; onset: >= 0.1 from t0 - w ln 9; jump: >= 0.1 / 0.5 from t0 - w ln 4
    assert at == {"half": 1000, "onset": math.ceil(1000 - 50 * math.log(9)), "jump": math.ceil(1000 - 50 * math.log(4))}
    assert at == {"half": 1000, "onset": 891, "jump": 931}


def test_the_half_way_reading_is_the_chapters_go_epoch():
    rng = np.random.default_rng(2)
    test, train = sigmoid_run(n=6000, t0=2500, w=200)
    test = test + rng.normal(0, 0.03, len(test))
    steps = np.concatenate([np.arange(2000), np.arange(2000, 6000, 20)])
    h = {"test_acc": test[steps], "train_acc": train[steps], "step": steps}
    ours = onset.go_steps(h)
    assert ours["half"] == table1_metrics(h["test_acc"], h["train_acc"], steps=steps).go_epoch
    assert set(ours) == {r.name for r in onset.READINGS}


def test_a_run_that_keeps_climbing_moves_only_the_half_way_reading():
    """A jump from 0.1 to 0.4 around step 1000, then a slow creep to 0.9 at step 20,000: the half-way level
    0.5 is reached in the creep, at step 4800; the onset and the +10 points lie in the jump."""
    steps = np.arange(20001)
    train = np.where(steps >= 100, 1.0, 0.5)
    test = 0.1 + 0.3 / (1 + np.exp(-(steps - 1000) / 20.0)) + 0.5 * np.clip((steps - 1000) / 19000, 0, 1)
    at = {r.name: onset.go_step(r, test, train, rules=RAW) for r in onset.READINGS[:3]}
    assert at["half"] == 4800
    assert 900 < at["onset"] < at["jump"] < 1000
    assert at["half"] - at["onset"] > 3700


def test_no_rise_or_no_memorisation_gives_no_step():
    steps = np.arange(3000)
    flat, train = np.full(3000, 0.3) + 0.02 * (steps > 1500), np.ones(3000)
    assert all(onset.go_step(r, flat, train) is None for r in onset.READINGS)      # a 2-point rise is no grokking
    test, _ = sigmoid_run()
    assert all(onset.go_step(r, test, np.full(3000, 0.5)) is None for r in onset.READINGS)
    # a ceiling 6.25 points up: the share readings find it, the +10 points reading never does
    small, _ = sigmoid_run(base=0.25, top=0.3125)                       # 6.25 points up
    assert onset.go_step(onset.reading("half"), small, train, rules=RAW) == 1000
    assert onset.go_step(onset.reading("jump"), small, train, rules=RAW) is None


def test_a_reading_must_name_a_known_kind_and_smoother():
    with pytest.raises(ValueError, match="kind one of"):
        onset.Reading("x", "x", kind="peak")
    with pytest.raises(ValueError):
        onset.Reading("x", "x", smoother="median")
    with pytest.raises(ValueError, match="choose one of half, onset"):
        onset.reading("middle")
    assert onset.reading("jump").describe() == "10 points above the test accuracy at memorisation, on the moving average"


# -- a row against the paper's band ----------------------------------------------------------------------------
def test_a_row_agrees_when_its_mean_lies_in_the_band():
    assert onset.row_go([1450, 1650, None], (1500, 100)) == {
        "mean": 1550.0, "sd": pytest.approx(141.42, abs=0.01), "grok": 2, "runs": 3, "in_band": 1, "verdict": "agrees"}
    assert onset.row_go([1000, 4000], (1500, 100))["verdict"] == "later"        # mean 2500, no run in the band
    assert onset.row_go([1000, 1000], (1500, 100))["verdict"] == "earlier"
    assert onset.row_go([1601, 1601], (1500, 100))["verdict"] == "later"
    assert onset.row_go([None, None], (900, 100))["verdict"] == "no run groks"
    assert onset.in_band(1400, (1500, 100)) and not onset.in_band(None, (1500, 100))


def test_where_grokking_disappears_at_most_half_of_the_runs_may_grok():
    assert onset.row_go([None, 900], None)["verdict"] == "agrees"
    assert onset.row_go([900, 900, None], None) == {"mean": 900.0, "sd": 0.0, "grok": 2, "runs": 3, "in_band": None,
                                                    "verdict": "differs"}


def test_sensitivity_is_the_range_of_the_row_means():
    rows = {"a": onset.row_go([1000, 2000], (1500, 100)), "b": onset.row_go([4000], (1500, 100)),
            "c": onset.row_go([None], (1500, 100))}
    assert onset.sensitivity(rows) == 2500.0
    assert onset.sensitivity({"a": rows["a"]}) is None


# -- the Table 1 chapter's GO table, its totals and the strip paragraph -------------------------------------------
S97 = dict(p=97, n_seeds=2, n_split_seeds=1, split_seed=0, operand_offset=0, strip_offset=60)


def claims_with_readings(go_by_setting: dict) -> dict:
    return {"settings": [{"split": s, "param": k, "offset": d, "u_acc": [0.5] * 2, "l_acc": [0.4] * 2,
                          "go_epoch": go["half"], "ceiling_at": [5000, 7000], "go": go}
                         for (s, k, d), go in go_by_setting.items()]}


def readings(**named) -> dict:
    """Every reading's GO steps: `named` ones as given, the others as the half-way's."""
    return {r.name: named.get(r.name, named["half"]) for r in onset.READINGS}


def test_the_go_table_gives_every_reading_and_a_verdict_per_row():
    C = claims_with_readings({
        ("square", 30, 0): readings(half=[4000, 5000], onset=[1450, 1550]),         # paper 1500 ± 100
        ("strip", 67, 0): readings(half=[None, None]),                               # paper: disappears
        ("square", 33, 0): readings(half=[1, 2]),                                     # no paper row
    })
    rows = t1.go_rows(S97, C)
    assert [r[0] for r in rows] == ["square k=30", "strip t=67"]
    assert rows[0][:4] == ["square k=30", "1500 ± 100", "4500 ± 707 (0/2)", "1500 ± 71 (2/2)"]
    assert rows[0][-2:] == ["agrees under 10 % onset only", "3000"]
    assert rows[1][2] == "0/2 grok" and rows[1][-2:] == ["agrees under every reading", "–"]
    assert t1.go_headers()[2:4] == ["half-way", "10 % onset"]
    summary = t1.go_summary(S97, C)
    assert summary["half"] == {"rows": 1, "agree": 0, "runs": 2, "in_band": 0}
    assert summary["onset"] == {"rows": 1, "agree": 1, "runs": 2, "in_band": 2}
    lines = t1.go_lines(S97, C)
    assert lines[0].startswith("* **half-way**: 0 of 1 row means and 0 of 2 runs in the paper's band; "
                               "**10 % onset**: 1 of 1 row means and 2 of 2 runs")
    assert "by 3000 to 3000 steps" in lines[1] and "bands are ± 100 steps" in lines[1]
    assert "later than the 10 % onset's in 1 of 1 rows" in lines[-1]


def test_a_row_verdict_says_on_which_side_each_reading_lies():
    later, earlier = onset.row_go([3000], (1500, 100)), onset.row_go([500], (1500, 100))
    names = [r.name for r in onset.READINGS]
    assert t1.row_verdict({n: later for n in names}) == "later under every reading"
    assert t1.row_verdict({names[0]: later, names[1]: earlier}) == "later under half-way; earlier under 10 % onset"
    assert t1.row_verdict({names[0]: onset.row_go([None], (1500, 100))}) == "no run groks"
    assert t1.row_verdict({n: later if i else earlier for i, n in enumerate(names[:4])}) == (
        "earlier under half-way; later under 10 % onset, +10 points and half-way (released smoother)")


def test_the_result_box_reports_the_other_readings_when_the_claims_have_them():
    C = claims_with_readings({("square", 30, 0): readings(half=[4000, 5000], onset=[1450, 1550])})
    box = t1.result(S97, C)
    assert "agrees with the paper's in 0 of 1 rows" in box.measured
    assert "the row means lie in the band in 1 (10 % onset), 0 (+10 points)" in box.measured
    assert "of the 1 rows with a band, and 2, 0, 0, 0 of the 2 single runs." in box.measured
    del C["settings"][0]["go"]
    assert "Read in the other ways" not in t1.result(S97, C).measured


def test_the_strip_paragraph_names_the_closer_offset_per_row():
    from types import SimpleNamespace as NS
    res = {("strip", 40, 0): [NS(u_acc=0.88, l_acc=0.8, go_epoch=1300)] * 2,     # paper 89.89: offset 0 closer
           ("strip", 67, 0): [NS(u_acc=0.26, l_acc=0.2, go_epoch=900)] * 2,      # paper 7.56: offset 60 closer
           ("strip", 40, 60): [NS(u_acc=0.40, l_acc=0.4, go_epoch=None)] * 2,
           ("strip", 67, 60): [NS(u_acc=0.04, l_acc=0.02, go_epoch=None)] * 2}
    text = t1.offset_paragraph(S97, res, 0.5)
    assert text.startswith("Mean U-Acc without / with the offset / the paper: t = 40: 88.0 / 40.0 / 89.89 %; "
                           "t = 67: 26.0 / 4.0 / 7.56 %.")
    assert "closer to the paper's at t = 40; with offset 60 (the released strip code) at t = 67" in text
    assert "No single offset matches every strip row." in text and "weight decay" not in text
    assert "weight decay" in t1.offset_paragraph(S97, res, 0.01)
    one = {g: v for g, v in res.items() if g[1] == 40}
    assert t1.offset_paragraph(S97, one, 0.5).endswith("Offset 0 is the closer one in every strip row.")
    assert t1.offset_paragraph(S97, {g: v for g, v in res.items() if g[2] == 0}, 0.5) == ""


def test_the_comparison_counts_runs_within_the_tolerance_and_the_band():
    from types import SimpleNamespace as NS
    res = {("square", 30, 0): [NS(u_acc=0.99, l_acc=0.5, go_epoch=1450), NS(u_acc=0.90, l_acc=0.5, go_epoch=3000)]}
    lines = t1.comparison_lines(S97, res)
    # paper: U-Acc 99.04, L-Acc 91.27, GO 1500 ± 100; ours: U mean 94.5 (within 5), GO mean 2225 (later)
    assert lines[0] == ("* **square k=30**: U-Acc agrees (ours 94.5 ± 6.4 against 99.04; 1 of 2 runs within ±5 points); "
                        "L-Acc differs, below (ours 50.0 ± 0.0 against 91.27; 0 of 2 runs within ±5 points); "
                        "GO-Epoch differs, later (2225 ± 1096 (2/2) against 1500 ± 100; 1 of 2 runs in the band).")
    assert lines[1] == "\nOur mean U-Acc lies within ±5 points of the paper's in 1 of 1 rows and below it in 1 of 1."
    assert lines[2] == "On the square rows it is 4.5 points below the paper's on average."
