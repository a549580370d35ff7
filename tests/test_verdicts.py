"""Result boxes: a verdict is one of four words, decided by a rule; the box renders it first."""
import pytest

from grok_core.verdicts import VERDICTS, ResultBox, by_share, holding


def test_a_box_takes_only_the_four_verdicts():
    for v in VERDICTS:
        assert ResultBox("c", "m", v, "r").verdict == v
    with pytest.raises(ValueError, match="verdict='agrees' is not one of"):
        ResultBox("c", "m", "agrees", "r")


def test_by_share_thresholds():
    assert by_share(8, 8) == "reproduced"
    assert by_share(7, 8) == "partly reproduced"
    assert by_share(4, 8) == "partly reproduced"
    assert by_share(3, 8) == "not reproduced"
    assert by_share(0, 0) == "not reproduced"
    assert by_share(6, 8, all_of=0.75) == "reproduced"


def test_the_markdown_names_verdict_claim_numbers_and_rule():
    md = ResultBox("Fig. 9: X halves Y.", "0.91 over 8 runs", "not reproduced", "ratio <= 0.6").markdown()
    assert md.startswith("::::{admonition} Verdict: not reproduced\n:class: warning result-box\n")
    assert "Fig. 9: X halves Y." in md and "0.91 over 8 runs" in md and md.endswith(":::\n::::\n")
    # the rule sits in a dropdown (closed: no :open: option) after the claim and the numbers
    head, rule = md.split(":::{dropdown}")
    assert "ratio <= 0.6" in rule and "ratio <= 0.6" not in head and ":open:" not in rule
    assert "0.91 over 8 runs" in head


def test_the_rerun_line_follows_the_rule_in_the_dropdown():
    md = ResultBox("c", "m", "reproduced", "r").markdown(rerun="**To re-run:** 2 CPU minutes")
    assert md.index("**We measured:** m") < md.index(":::{dropdown}") < md.index("**Rule:** r") \
        < md.index("**To re-run:** 2 CPU minutes")
    assert "what a re-run takes" in md and "what a re-run takes" not in ResultBox("c", "m", "reproduced", "r").markdown()


def test_holding_lists_the_claims_that_hold_then_those_that_do_not():
    assert holding({"a": True, "b": False, "c": True}) == "a, c; not holding: b"
    assert holding({"a": False}) == "none; not holding: a" and holding({}) == "none; not holding: none"
