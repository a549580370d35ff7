"""The book's programme: chapter settings resolve to the intended runs; bad values fail clearly; a chapter is found
from its module alone, and trained by the programme."""
import sys

import numpy as np
import pytest

from grok_core.analysis import on_grid, rolling_mean, steps_to_threshold, table1_metrics
from grok_core.config import RunConfig
from grok_core.chapters import names, setup
from grok_core.chapters.settings import seed_pairs
from grok_core import distributed, programme
from grok_core.programme import paper_configs
from grok_core.train import recorded_steps


def test_paper_programme_has_eight_seed_pairs_per_setting_and_thinned_histories():
    per = paper_configs()
    S = setup("appendix_d", "paper", {})[0]
    T = setup("stability", "paper", {})[0]
    stability_settings = 5 + 3 * len(T["prec_bits"]) + (3 if T["transformer"] else 0)
    assert {k: len(v) for k, v in per.items()} == {
        "table1_square_strip": 120, "theory_uniformity": 81, "fig5_med_primes": 32, "fig2_layers": 32,
        "fig4_x2xyy2_frac": 24, "appendix_d": 8 * (len(S["widths"]) + len(S["small_widths"]) + 4),
        "lazy_rich": 8 * 13, "figs12_19_functions": 64, "fig20_toeplitz": 72, "stability": 8 * stability_settings,
        "label_corruption": 4 * 4 + 9 * 9 * 2 * 2 + 3 * 2, "tickets": 8 * 4,
        "race": 26 * 8}                                                    # its tuning grid; the race waits for it
    steps = {"theory_uniformity": {20000}, "appendix_d": {S["width_steps"], S["small_steps"], 30000},
             "tickets": {50000, 30000}, "stability": {T["orth_steps"], T["long_steps"], T["prec_steps"]}
             | ({T["tf_steps"]} if T["transformer"] else set()), "label_corruption": {1000, 500, 5000, 2000, 6000},
             "race": {20000}}
    record = {"lazy_rich": {(1000, 50)}, "stability": {(2000, 100)},       # within the store's budget
              "label_corruption": {(0, 10), (0, 100)},                    # the regimes, the diagram (and its long check)
              "tickets": {(500, 100)}, "race": {(0, 20)}}
    for name, cs in per.items():
        assert {(c.record_dense, c.record_every) for c in cs} == record.get(name, {(2000, 20)})
        assert {c.n_steps for c in cs} == steps.get(name, {30000})
    t1 = per["table1_square_strip"]
    pairs = {(c.init_seed, c.split_seed) for c in t1 if (c.split, c.split_param) == ("square", 30)}
    assert pairs == {(i, s) for i in range(4) for s in (0, 1)}              # crossed, both recorded
    assert len({c.key() for c in t1}) == 120
    offset = [c for c in t1 if c.operand_offset]                           # the released strip code's offset
    assert {(c.split, c.split_param, c.operand_offset, c.d_vocab) for c in offset} == {
        ("strip", t, 60, 158) for t in (40, 50, 60, 67)} and len(offset) == 32


def test_seed_pairs_cross_init_and_split_seeds():
    assert seed_pairs(dict(n_seeds=2, n_split_seeds=2, split_seed=11)) == [(0, 11), (1, 11), (0, 12), (1, 12)]
    with pytest.raises(ValueError, match="n_split_seeds"):
        seed_pairs(dict(n_seeds=2, n_split_seeds=0, split_seed=0))


@pytest.mark.parametrize("chapter,given,match", [
    ("fig2_layers", dict(depths="1,0"), "depths"),
    ("fig5_med_primes", dict(primes="47,91"), "p=91"),
    ("fig4_x2xyy2_frac", dict(fracs="0.5,1.5"), "frac_train"),
    ("figs12_19_functions", dict(figures="12,21"), "figures"),
    ("fig20_toeplitz", dict(embed_inits="normal,onehot2"), "embed_inits"),
    ("table1_square_strip", dict(square_k="30,99"), "split_param"),
    ("table1_square_strip", dict(record_every=0), "record_every"),
    ("table1_square_strip", dict(n_seeds=True), "n_seeds"),
    ("table1_square_strip", dict(offset_strip_t="9", strip_offset=0), "strip_offset"),
    ("table1_square_strip", dict(offset_strip_t="a"), "offset_strip_t"),
    ("nope", {}, "chapter"),
])
def test_bad_settings_fail_with_the_parameter_named(chapter, given, match):
    with pytest.raises(ValueError, match=match):
        setup(chapter, "quick", given)


def test_quick_profiles_record_every_step():
    for chapter in names("run_configs"):
        S, configs = setup(chapter, "quick", {})
        assert configs and all(c.record_every == 1 for c in configs)


def _thin(h, dense, every):
    cfg = RunConfig(n_steps=len(h["step"]), record_dense=dense, record_every=every)
    keep = np.isin(h["step"], recorded_steps(cfg).numpy())
    return {k: v[keep] for k, v in h.items()}


def test_table1_rules_on_a_thinned_history_match_the_full_one():
    """A synthetic grokking curve: memorise at 100, test accuracy rises at 3000 to 0.8, dips to 0.7 later,
    with noise of 1 point per step. After step 2000 the thinned window averages 10 recorded points instead
    of 200 steps, so the extremes of a noisy plateau come out up to about one point further out."""
    s = np.arange(30000)
    rng = np.random.default_rng(0)
    train = np.clip(s / 100, 0, 1)
    test = 0.1 + 0.7 / (1 + np.exp(-(s - 3000) / 150)) - 0.1 * (s > 20000) + rng.normal(0, 0.01, len(s))
    full = {"step": s, "test_acc": test, "train_acc": train}
    thin = _thin(full, 2000, 20)
    a = table1_metrics(full["test_acc"], full["train_acc"])
    b = table1_metrics(thin["test_acc"], thin["train_acc"], steps=thin["step"])
    assert b.memorised_at == a.memorised_at == 99          # train accuracy 0.99 at step 99
    assert abs(b.go_epoch - a.go_epoch) <= 20 and abs(a.go_epoch - 3000) < 100
    assert abs(b.u_acc - a.u_acc) < 0.01 and abs(b.l_acc - a.l_acc) < 0.01


def test_step_aware_helpers():
    steps = np.array([0, 1, 2, 10, 20, 30])
    x = np.array([0.0, 1, 2, 10, 20, 30])
    assert rolling_mean(x, 3, steps)[1] == 1.0 and rolling_mean(x, 21, steps)[4] == 20.0
    assert steps_to_threshold(x, 15, steps) == 20 and steps_to_threshold(x, 15) == 4
    g = on_grid({"step": steps, "v": x}, 10)
    assert list(g["step"]) == [0, 10, 20, 30]


def test_the_runner_checks_the_store_is_writable_before_training(tmp_path, monkeypatch):
    from grok_core.store import RunStore

    monkeypatch.setenv("GROKBOOK_RESULTS", str(tmp_path / "store"))
    monkeypatch.setattr(distributed, "train_batch", lambda *a, **k: pytest.fail("trained before checking the store"))
    monkeypatch.setattr(RunStore, "check_writable", lambda self: (_ for _ in ()).throw(OSError("not writable")))
    with pytest.raises(OSError, match="not writable"):
        programme.main(["run", "--chapters", "fig5_med_primes"])


def test_a_chapters_own_runs_are_listed_and_trained_once_per_launch(tmp_path, monkeypatch, capsys):
    """lazy_rich's regression runs are not RunConfig runs: its `extra_training` hook is listed by rank 0 and
    trained by rank 0 only, after the batches."""
    from grok_core.chapters import lazy_rich

    calls = []
    monkeypatch.setenv("GROKBOOK_RESULTS", str(tmp_path / "store"))
    monkeypatch.setattr(lazy_rich, "extra_training", lambda S, train: calls.append(train) or f"extra {train}")
    monkeypatch.setattr(distributed, "train_shared", lambda *a, **k: calls.append("batches"))
    programme.main(["list", "--chapters", "lazy_rich"])
    assert calls == [False] and "extra False" in capsys.readouterr().out
    calls.clear()
    programme.main(["run", "--chapters", "lazy_rich"])
    assert calls == [False, "batches", True]
    calls.clear()
    monkeypatch.setattr(distributed, "join", lambda: distributed.Launch(rank=1, world_size=2))
    monkeypatch.setattr(distributed, "device", lambda launch: "cpu")
    programme.main(["run", "--chapters", "lazy_rich"])
    assert calls == ["batches"]


def test_the_regression_programme_has_eight_seeds_per_setting():
    from grok_core.chapters import lazy_rich

    S = setup("lazy_rich", "paper", {})[0]
    configs = lazy_rich.a_configs(S)
    assert len(configs) == 8 * 15 and len({c.key() for c in configs}) == 8 * 14     # alpha = 1, eps = 1/4 shared
    assert {(c.d, c.n_train, c.n_test, c.width, c.n_steps) for c in configs} == {(100, 550, 1000, 500, 100000)}


def test_chapters_come_in_book_order():
    assert names() == ["fig3_splits", "table1_square_strip", "fig4_x2xyy2_frac", "ceilings", "theory_uniformity",
                       "fig5_med_primes", "fig2_layers", "resnet", "appendix_d", "figs12_19_functions",
                       "fig20_toeplitz", "stability", "lazy_rich", "label_corruption", "tickets",
                       "race", "progress_measures"]                                            # as _toc.yml lists them
    assert names("run_configs") == [n for n in names() if n not in ("fig3_splits", "ceilings", "resnet",
                                                                    "progress_measures")]


TOY_CHAPTER = '''"""A toy chapter: x + y at p = 11 for a few widths."""
from grok_core.chapters.settings import FULL_RECORD, as_int_list, runs_per_seed_pairs

PROFILES = {
    "paper": dict(p=11, widths=[32, 64], n_seeds=1, n_split_seeds=1, split_seed=0, n_steps=10, lr=1e-2, **FULL_RECORD),
    "quick": dict(p=11, widths=[32], n_seeds=1, n_split_seeds=1, split_seed=0, n_steps=10, lr=1e-2, **FULL_RECORD),
}


def check(S):
    S["widths"] = as_int_list("widths", S["widths"])


def run_configs(S):
    return runs_per_seed_pairs(S, [dict(d_model=w) for w in S["widths"]])
'''


@pytest.fixture
def toy_chapter(tmp_path, monkeypatch):
    """A chapter module in a folder on the chapters package's search path, found as grok_core/chapters/<name>.py is."""
    import grok_core.chapters as chapters

    (tmp_path / "toy_widths.py").write_text(TOY_CHAPTER)
    monkeypatch.setattr(chapters, "__path__", [*chapters.__path__, str(tmp_path)])
    yield "toy_widths"
    sys.modules.pop("grok_core.chapters.toy_widths", None)


def test_a_new_chapter_module_is_picked_up_by_setup_and_the_programme(toy_chapter, store, capsys):
    assert names()[-1] == toy_chapter                                      # not in _toc.yml: after the book's
    S, configs = setup(toy_chapter, "quick", {"widths": "16,48"})
    assert S["widths"] == [16, 48] and [(c.p, c.d_model, c.n_steps) for c in configs] == [(11, 16, 10), (11, 48, 10)]
    assert [c.d_model for c in paper_configs()[toy_chapter]] == [32, 64]
    programme.main(["list", "--chapters", f"fig2_layers,{toy_chapter}"])
    out = capsys.readouterr().out
    assert f"{toy_chapter}: 2 runs, 0 stored" in out and "34 runs in" in out
    assert programme.main(["run", "--chapters", toy_chapter, "--max-batch", "1"]) == 0       # one process, alone
    out = capsys.readouterr().out
    assert "2 runs to train in 2 batches, over 1 process(es)" in out
    assert out.count("done 1 x transformer p=11 L=1 D=32") == out.count("done 1 x transformer p=11 L=1 D=64") == 1
    assert all(store.get(c) is not None for c in paper_configs()[toy_chapter]) and store.checkpoints() == []
    programme.main(["run", "--chapters", toy_chapter])
    assert "0 runs to train in 0 batches" in capsys.readouterr().out                    # stored: nothing trains again
