"""The chapters' own analysis (grok_core/chapters/): the tables and verdicts their notebooks show, on exact inputs.

Split counts are exact facts of the split algorithm; the other inputs are small synthetic histories and claim
numbers, chosen so that each rule has a known answer.
"""
from types import SimpleNamespace

import numpy as np
import pytest

from grok_core.chapters import (fig2_layers, fig3_splits, fig4_x2xyy2_frac, fig5_med_primes, fig20_toeplitz,
                                figs12_19_functions, resnet, setup, table1_square_strip)
from grok_core.chapters.claims import reached_text, run_facts
from grok_core.config import RunConfig


def fake_run(history: dict, key: str = "k", **config):
    steps = np.arange(len(next(iter(history.values()))))
    return SimpleNamespace(config=RunConfig(**config), key=key, meta={},
                           history={"step": steps, **{k: np.asarray(v, dtype=float) for k, v in history.items()}})


# -- shared ---------------------------------------------------------------------------------------------
def test_steps_to_a_threshold_count_only_the_runs_that_got_there():
    assert reached_text([100, None, 300]) == "200 ± 141 (2/3)"
    assert reached_text([None, None]) == "never (0/2)"


# -- Fig. 3 ---------------------------------------------------------------------------------------------
def test_split_counts_are_the_block_sizes_of_the_split_algorithm():
    S, _ = setup("fig3_splits", "paper", {})
    configs = fig3_splits.split_configs(S)
    splits = fig3_splits.splits(configs)
    rows = {r[0]: r for r in fig3_splits.count_rows(S, configs, splits)}
    p, n_req = 97, int(0.3 * 97 * 97)
    assert fig3_splits.requested_train(S) == n_req == 2822
    assert rows["random"] == ["random", 0, p * p, n_req, p * p - n_req, "100.0", "no"]
    for k in S["square_k"]:                                   # the square holds every (i, j) with i, j <= k
        assert rows[f"square k={k}"][1] == (k + 1) ** 2
    for t in S["strip_t"]:                                    # the strip holds every pair with i <= t
        assert rows[f"strip t={t}"][1] == (t + 1) * p
    assert rows["square k=30"][5] == f"{100 * (p * p - n_req - 31 ** 2) / (p * p - n_req):.1f}" == "85.4"
    assert fig3_splits.shrunk(configs, splits) == [("square", 85), ("strip", 67)]
    assert rows["square k=85"][3:] == [p * p - 86 ** 2, 86 ** 2, "0.0", "**yes**"]
    assert fig3_splits.shrink_lines(S, splits, [("strip", 67)]) == [
        f"strip 67: train {p * p - 68 * p} of the requested {n_req} ({n_req - (p * p - 68 * p)} short); "
        "test pairs outside the block: 0"]


# -- Table 1 --------------------------------------------------------------------------------------------
def test_a_setting_is_compared_with_the_paper_row_of_the_nearest_block_share():
    assert table1_square_strip.paper_row("square", 45, 97)["param"] == 45
    assert table1_square_strip.paper_row("square", 33, 97) is None            # no such row at p = 97
    # p = 23: (k + 1) * 97 / 23 - 1 for k = 6, 10, 13 is 28.5, 45.4, 58.0; for t = 9, 11, 15: 41.2, 49.6, 66.5
    assert [table1_square_strip.paper_row("square", k, 23)["param"] for k in (6, 10, 13)] == [30, 45, 60]
    assert [table1_square_strip.paper_row("strip", t, 23)["param"] for t in (9, 11, 15)] == [40, 50, 67]


def test_table1_names_settings_and_panels():
    groups = {("square", 30, 0): [], ("strip", 40, 0): [], ("strip", 40, 60): [], ("square", 35, 0): []}
    assert table1_square_strip.panels(groups) == [("square", 0), ("strip", 0), ("strip", 60)]
    assert [table1_square_strip.panel_name(k) for k in [("square", 0), ("strip", 60)]] == [
        "square dug out", "strip dug out, offset 60"]
    assert table1_square_strip.setting_name(("strip", 40, 60)) == "strip t=40 (offset 60)"
    assert table1_square_strip.setting_name(("square", 30, 0)) == "square k=30"


def test_the_paper_value_agrees_when_it_lies_in_the_range_of_our_runs():
    assert table1_square_strip.verdict([0.5, 0.7, None], 60) == (True, "ours median 60.0, range 50.0–70.0; paper 60")
    assert not table1_square_strip.verdict([0.5, 0.7], 71)[0]
    assert table1_square_strip.verdict([None], 71) == (False, "none of ours vs 71")
    res = [SimpleNamespace(go_epoch=g) for g in (1000, None, 2000)]
    assert table1_square_strip.go_text(res) == "1500 ± 707 (2/3)"
    assert table1_square_strip.go_text(res[1:2]) == "none (0/1)"


def _t1_claims(rows):
    return {"settings": [{"split": s, "param": k, "offset": d, "u_acc": u, "l_acc": l, "go_epoch": g}
                         for s, k, d, u, l, g in rows]}


def test_table1_comparison_counts_the_numbers_that_agree():
    """The paper, p = 97: square k=30 has GO-Epoch 1500, strip t=40 1300; U-Acc and L-Acc are put inside our range."""
    S = dict(p=97, n_seeds=2, n_split_seeds=1, split_seed=0, operand_offset=0, strip_offset=60)
    square30 = table1_square_strip.paper_row("square", 30, 97)
    strip40 = table1_square_strip.paper_row("strip", 40, 97)
    inside = lambda v: [v / 100 - 0.01, v / 100 + 0.01]                     # noqa: E731
    results = table1_square_strip.results(_t1_claims([
        ("square", 30, 0, inside(square30["u_acc"]), [0.1, 0.2], [1500, 1500]),                   # U, GO agree
        ("strip", 40, 0, inside(strip40["u_acc"]), inside(strip40["l_acc"]), [1300, 1400]),       # all three agree
        ("strip", 40, 60, [0.2, 0.21], [0.1, 0.1], [None, 1300]),                                  # GO only
        ("square", 33, 0, [0.5, 0.5], [0.4, 0.4], [None, None]),                                   # no paper row
    ]))
    lines = table1_square_strip.comparison_lines(S, results)
    assert lines[0].startswith("* **square k=30**: U-Acc agrees") and "L-Acc differs" in lines[0]
    assert "\nIn all, 5 of the 6 numbers compared agree" in lines[-2] and "our 2 runs per setting" in lines[-2]
    assert lines[-1] == ("With the second operand offset by 60 (the released strip code), 1 of the 3 strip numbers "
                         "agree; without the offset, 3 of the same 3.")
    assert not any("square k=33" in line for line in lines)


def test_offset_rows_stand_beside_the_rows_without_the_offset():
    """The paper's strip t=67: U-Acc 7.56, L-Acc 3.58, grokking disappears."""
    S = dict(p=97, operand_offset=0, strip_offset=60)
    results = table1_square_strip.results(_t1_claims([("strip", 67, 0, [0.4, 0.5], [0.3, 0.3], [None, 900]),
                                                      ("strip", 67, 60, [0.2, 0.2], [0.1, 0.1], [None, None])]))
    block = lambda end: fake_run({"block_acc": [0.0, end]}, split="strip", split_param=67)   # noqa: E731
    groups = {("strip", 67, 0): [block(0.5), block(0.7)], ("strip", 67, 60): [block(0.01), block(0.03)]}
    rows, worst = table1_square_strip.offset_rows(S, results, groups)
    assert rows == [["t=67", "45.0 ± 7.1", "20.0 ± 0.0", "7.56", "30.0 ± 0.0", "10.0 ± 0.0", "3.58",
                     "900 (1/2)", "none (0/2)", "disappears", "60.0 ± 14.1", "2.0 ± 1.4"]]
    assert all(len(r) == len(table1_square_strip.OFFSET_HEADERS) for r in rows)
    assert worst == pytest.approx(0.03)
    assert table1_square_strip.offset_rows(dict(S, strip_offset=70), results, groups) == ([], None)


def test_table1_rows_report_the_split_and_the_paper_row():
    S, _ = setup("table1_square_strip", "paper", {})
    cfg = RunConfig(p=97, frac_train=0.3, split="square", split_param=30)
    results = table1_square_strip.results(_t1_claims([("square", 30, 0, [0.9], [0.8], [3000])]))
    [row] = table1_square_strip.table_rows(S, results, {("square", 30, 0): [SimpleNamespace(config=cfg)]})
    assert row == ["square k=30", 2822, "85.4", "90.0", "99.04", "80.0", "91.27", "3000 (1/1)", "1500 ± 100",
                   "square k=30"]
    assert len(row) == len(table1_square_strip.TABLE_HEADERS)


# -- Fig. 2 ---------------------------------------------------------------------------------------------
def test_fluctuation_is_the_mean_step_of_test_accuracy_after_memorisation():
    run = fake_run({"train_acc": [0, 0.5, 1, 1, 1, 1], "test_acc": [0.9, 0.0, 0.1, 0.3, 0.2, 0.4]})
    # memorised (train >= 0.99) at index 2; steps after it: |0.3-0.1|, |0.2-0.3|, |0.4-0.2| -> mean 0.1667
    assert fig2_layers.fluctuation(run, 1) == pytest.approx(100 / 6)
    assert fig2_layers.fluctuation(fake_run({"train_acc": [0, 0.5], "test_acc": [0, 1]}), 1) is None
    settings = [{"layers": 1, "fluctuation": [1.0, 3.0]}, {"layers": 2, "fluctuation": [None]},
                {"layers": 3, "fluctuation": [5.0]}]
    assert fig2_layers.fluctuation_trend(settings) == ({1: 2.0, 3: 5.0}, True)
    assert fig2_layers.fluctuation_trend(settings[::-1])[1] is False
    assert fig2_layers.table_headers(20)[2] == "fluctuation (points per 20 steps)"
    assert fig2_layers.table_rows([{"layers": 1, "fluctuation": [1.0, 3.0], "steps_to_95": [None, 400],
                                    "med_final_over_initial": [0.5, 0.5]}]) == [
        [1, 2, "2.000 ± 1.414", "400 (1/2)", "0.500 ± 0.000"]]


# -- Fig. 4 ---------------------------------------------------------------------------------------------
def test_fig4_trend_and_rows():
    settings = [{"frac": 0.5, "test_pairs": 100, "late_test_acc": [0.2, 0.4], "correct_test_pairs": [20.0, 40.0]},
                {"frac": 0.6, "test_pairs": 80, "late_test_acc": [0.5], "correct_test_pairs": [40.0]}]
    t = fig4_x2xyy2_frac.trend(settings)
    assert t["accs"] == pytest.approx([0.3, 0.5]) and t["rising"] and t["correct"] == [30.0, 40.0]
    assert t["spread"] == pytest.approx(10 / 35)
    assert fig4_x2xyy2_frac.trend(settings[::-1])["rising"] is False
    assert fig4_x2xyy2_frac.table_rows(settings) == [["0.5", 100, "0.300 ± 0.141", "0.150", "30.0 ± 14.1"],
                                                     ["0.6", 80, "0.500", "0.200", "40.0"]]


# -- Fig. 5 ---------------------------------------------------------------------------------------------
def test_fig5_half_way_timing():
    s = {"p": 17, "med_peak": [10, 20], "test_loss_peak": [12, 22], "med_half": [100, None, 300],
         "test_loss_half": [150, 200, 260], "steps_to_95": [None, 400], "pearson_test_loss": [0.9, 0.7],
         "spearman_test_loss": [0.8, 0.8], "pearson_train_loss": [0.1, 0.3], "spearman_train_loss": [0.2, 0.2]}
    assert fig5_med_primes.half_way_gaps(s) == [-50, 40]
    assert fig5_med_primes.timing([s], close_steps=45) == [
        {"p": 17, "runs": 2, "close": 1, "median_gap": 45.0, "med_first": 1}]
    assert fig5_med_primes.timing_rows([s]) == [[17, "15", "17", "200", "200", "-5 (range -50 to +40; 2 runs)"]]
    assert fig5_med_primes.mean_pearson([s]) == {17: pytest.approx(0.8)}
    assert fig5_med_primes.correlation_rows([s])[0][:3] == [17, 2, "400 (1/2)"]


# -- Figs. 12-19 ----------------------------------------------------------------------------------------
def test_appendix_figures_take_their_own_width_and_share_unless_one_is_given():
    S, configs = setup("figs12_19_functions", "paper", {"figures": "14,16"})
    assert figs12_19_functions.appendix_setting(S, 14) == ("x2_y2", 256, 0.2)
    assert figs12_19_functions.appendix_setting(dict(S, d_model=64, frac_train=0.5), 14) == ("x2_y2", 64, 0.5)
    assert figs12_19_functions.label(S, 16) == "Fig. 16: x²+xy+y², d_model 128, frac 0.3"
    runs = [SimpleNamespace(config=c) for c in configs]
    by_fig = figs12_19_functions.runs_by_figure(S, runs)
    assert list(by_fig) == [14, 16] and [len(v) for v in by_fig.values()] == [8, 8]
    assert {r.config.fn for r in by_fig[16]} == {"x2_xy_y2"}
    assert figs12_19_functions.mean_pearson([{"figure": 14, "pearson_test_loss": [0.5, float("nan"), 0.7]}]) == {
        14: pytest.approx(0.6)}


# -- Fig. 20 --------------------------------------------------------------------------------------------
def test_fig20_ratios_only_where_there_is_one():
    settings = [{"frac": 0.3, "init": "normal", "steps_to_95": [None, None], "ratio_to_normal": float("nan")},
                {"frac": 0.3, "init": "toeplitz", "steps_to_95": [500, 700], "ratio_to_normal": 0.5}]
    assert fig20_toeplitz.ratios(settings) == {(0.3, "toeplitz"): 0.5}
    assert fig20_toeplitz.table_rows(settings) == [[0.3, "normal", "never (0/2)", "–"],
                                                   [0.3, "toeplitz", "600 ± 141 (2/2)", "0.50"]]


# -- ResNet ---------------------------------------------------------------------------------------------
def resnet_run(test_acc, train_acc, every=100, **changes):
    cfg = resnet.resnet_configs(setup("resnet", "paper", {})[0])[0].replace(**changes)
    n = len(train_acc)
    return SimpleNamespace(config=cfg, key="r", meta={"epochs_per_s": 3.0},
                           history={"epoch": np.arange(1, n + 1), "train_acc": np.asarray(train_acc, dtype=float),
                                    "eval_epoch": np.arange(len(test_acc)) * every + 1,
                                    "test_acc": np.asarray(test_acc, dtype=float)})


def test_resnet_variants_are_named_by_what_they_change():
    S, _ = setup("resnet", "paper", {})
    cfg, variants = resnet.resnet_configs(S)
    assert [resnet.changed(v, cfg) for v in variants] == [
        "n_epochs 3500, weight_decay 0.001", "mode clean, n_classes 49, n_epochs 3500", "frac_train 0.5, n_epochs 2000"]
    with pytest.raises(ValueError, match="knobs"):
        setup("resnet", "paper", {"knobs": [{}]})


def test_resnet_accuracy_at_an_epoch_is_the_last_evaluation_before_it():
    h = {"eval_epoch": np.array([1, 101, 201]), "test_acc": np.array([0.1, 0.2, 0.3])}
    assert [resnet.acc_at(h, e) for e in (0, 1, 150, 201, 202)] == [None, 0.1, 0.2, 0.3, None]


def test_resnet_summaries_and_the_conclusion():
    fits = [0.5] * 50 + [1.0] * 3950          # its 20-epoch mean reaches 95 % at epoch 68 (2 halves, 18 ones)
    late = resnet_run([0.3] * 30 + [1.0] * 10, fits)          # test at 95 % from evaluation 30: epoch 3001
    never = resnet_run([0.3] * 40, fits, weight_decay=1e-3)
    s_late, s_never = resnet.summary("released", late), resnet.summary("wd", never)
    assert (s_late["kind"], s_late["train"], s_late["test"], s_late["plateau"]) == ("grokking", 68, 3001, 0.3)
    assert s_late["verdict"] == "grokking: test follows train after 2933 epochs"
    assert s_never["kind"] == "not reached" and s_never["verdict"] == "test stays below 95 % for 4000 epochs"
    rows = resnet.summary_rows([s_late, s_never])
    assert rows[0] == resnet.PAPER_SUMMARY and rows[2] == ["wd", "68", "0.30", "–", "0.30", s_never["verdict"]]
    text = resnet.conclusion([s_never, s_late])
    assert "it never reaches 95 %: 0.30 after 4,000 epochs" in text
    assert "1 of the 2 runs grok by our rule: released (grokking" in text
    assert "released lifts it to 1.00" in text and "Test accuracy stays below 95 % in wd." in text
    assert "no setting we tried reproduces" not in text
    knob = resnet.knob_rows([("released", late)])[0]
    # at epochs 1000, 2000, 2800, 3500, 4000; the last evaluation is at 3901, so 4000 is past the run's end
    assert knob[:7] == ["released", "4000", "0.300", "0.300", "0.300", "1.000", "–"] and knob[8] == "3001"


def test_a_run_that_stopped_early_is_late_over_the_steps_it_trained():
    run = fake_run({"train_acc": [0.5] * 90 + [1.0] * 10, "test_acc": [0.0] * 90 + [0.9] * 10}, n_steps=1000)
    run.meta["stopped_at"] = 99                    # its budget was 1,000 steps; it trained steps 0-99
    facts = run_facts(run)
    assert (facts["late_train_acc"], facts["late_test_acc"]) == (1.0, 0.9)
