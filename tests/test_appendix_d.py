"""The Appendix D chapter: its runs are the designed ones, and each part's rule turns on its threshold.

Settings are built by hand so that each verdict of each part, and of the chapter, is reached and missed by a
small margin.
"""
import pytest

from grok_core.chapters import appendix_d as chapter
from grok_core.chapters import setup


def test_the_paper_runs_share_the_transformer_runs_of_figs_16_and_4():
    S, configs = setup("appendix_d", "paper", {})
    fig16 = {c.key() for c in setup("figs12_19_functions", "paper", {"figures": [16]})[1]}
    fig4 = {c.key() for c in setup("fig4_x2xyy2_frac", "paper", {"fracs": [0.5]})[1]}
    dnn = chapter.dnn_configs(S)
    assert {c.key() for c in dnn if c.model == "transformer"} == fig16 | fig4
    assert {c.model for c in dnn} == {"transformer", "mlp"} and len(dnn) == 32
    width = chapter.width_configs(S)
    assert {c.split_seed for c in width} == {0} and {c.d_mlp for c in width} == {512}
    assert {(c.split, c.split_param, c.n_steps) for c in width} == {("square", 85, 40000)}
    assert len({c.key() for c in configs}) == len(configs)


def s_width(width, steps, n_steps=100):
    return {"part": "width", "width": width, "runs": len(steps), "n_steps": n_steps, "test_acc_95_at": steps,
            "late_test_acc": [0.5] * len(steps)}


def s_ceiling(width, acc):
    return {"part": "ceiling", "width": width, "late_test_acc": acc}


def s_dnn(model, frac, acc):
    return {"part": "dnn", "model": model, "frac": frac, "late_test_acc": [acc]}


def test_width_rule(monkeypatch):
    monkeypatch.setattr(chapter, "SPEEDUP", 50)
    v = lambda small, large: chapter.part_verdicts([s_width(64, small), s_width(512, large)])["width"]
    assert v([None, None], [40, 50]) == "reproduced"                    # restricted means 100 and 45
    assert v([None, None], [60, 50]) == "not reproduced"                # 55: only 45 below
    assert v([None, None], [40, None]) == "not reproduced"              # 70: only 30 below
    assert v([40, 50], [None, None]) == "contradicted"
    assert v([None, None, None], [10, None, None]) == "not reproduced"  # fewer than half grok


def test_ceiling_rule():
    v = lambda lo, hi: chapter.part_verdicts([s_ceiling(64, [lo]), s_ceiling(512, [hi])])["ceiling"]
    assert v(chapter.CEILING_LOW, chapter.CEILING_HIGH) == "reproduced"
    assert v(chapter.CEILING_LOW + 0.01, 0.99) == "partly reproduced"
    assert v(0.5, 0.59) == "not reproduced"
    assert v(0.7, 0.5) == "contradicted"


def test_dnn_rule():
    v = lambda mlp, tr: chapter.part_verdicts([s_dnn("mlp", 0.3, mlp), s_dnn("transformer", 0.3, tr)])["dnn"]
    assert v(0.01, 0.2) == "reproduced"
    assert v(0.06, 0.2) == "partly reproduced"
    assert v(0.01, 0.055) == "partly reproduced"
    assert v(0.06, 0.07) == "not reproduced"


def test_the_chapter_verdict_combines_the_parts():
    assert chapter.verdict({"width": "reproduced", "dnn": "reproduced"}) == "reproduced"
    assert chapter.verdict({"width": "not reproduced", "dnn": "reproduced"}) == "partly reproduced"
    assert chapter.verdict({"width": "contradicted", "dnn": "not reproduced"}) == "contradicted"
    assert chapter.verdict({"width": "not reproduced"}) == "not reproduced"
    assert chapter.verdict({}) == "not reproduced"


def test_a_part_with_one_setting_gets_no_verdict():
    assert chapter.part_verdicts([s_ceiling(512, [0.9])]) == {}
