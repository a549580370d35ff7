"""The tickets chapter: its two stages as configs, and its rule, each claim flipped."""
import pytest

from grok_core.chapters import setup
from grok_core.chapters import tickets as chapter


def _arm(arm, speedups):
    return {"arm": arm, "speedup": speedups, "runs": len(speedups)}


FAST, SLOW = [3.0, 2.5, 2.0, 4.0], [1.0, 0.8, 2.5, 1.1]          # 4/4 and 1/4 seeds at least 2x faster


def _settings(**flip):
    out = []
    for claim, (arm, fast) in chapter.TESTS.items():
        good = FAST if fast else SLOW
        out.append(_arm(arm, (SLOW if fast else FAST) if flip.get(claim) else good))
    return out


def test_every_claim_holds_on_its_own_numbers_and_the_verdict_is_reproduced():
    F = chapter.findings(_settings())
    assert set(F) == set(chapter.TESTS) and all(F.values()) and chapter.verdict(F) == "reproduced"


@pytest.mark.parametrize("claim", list(chapter.TESTS))
def test_each_claim_flipped_fails_alone(claim):
    F = chapter.findings(_settings(**{claim: True}))
    assert [k for k, v in F.items() if not v] == [claim]
    assert chapter.verdict(F) == ("not reproduced" if claim == "ticket" else "partly reproduced")


def test_the_share_rule_counts_seeds_at_the_factor():
    three = _arm("ticket", [2.0, 2.0, 2.0, 1.99])                  # 3/4 = SHARE: holds; 2/4 does not
    assert chapter.findings([three])["ticket"]
    assert not chapter.findings([_arm("ticket", [2.0, 2.0, 1.9, 1.99])])["ticket"]
    assert chapter.findings([_arm("random mask", [1.99, 1.99, 1.99, 2.0])])["random mask"]
    assert not chapter.findings([_arm("random mask", [1.99, 1.99, 2.0, 2.0])])["random mask"]


def test_paper_profile_trains_bases_first_and_every_ticket_names_a_stored_bases_key():
    S, configs = setup("tickets", "paper", {})
    bases = {c.key(): c for c in configs}
    tickets = chapter.ticket_configs(S)
    assert len(configs) == 8 * 4 and len(tickets) == 8 * len(chapter.arm_names(S)) == 8 * 14
    for t in tickets:
        if t.param_mask == "magnitude" or t.init_rescale != "none":
            b = bases[t.ticket_base]
            assert t.ticket_step in (S["mem_step"], S["trans_step"], S["base_steps"]) and b.init_seed == t.init_seed
            assert str(t.ticket_step) in b.snapshot_at.split(",")
    main = [b for b in configs if b.model == "onlymlp" and b.snapshot_at]
    assert {(b.p, b.d_model, b.d_mlp, b.split, b.frac_train, b.lr, b.wd, b.beta2) for b in main} == {
        (67, 500, 48, "symmetric", 0.4, 1e-3, 1.0, 0.98)}


@pytest.mark.parametrize("given,match", [(dict(keep=1.5), "keep"), (dict(keep=0.0), "keep"),
                                         (dict(sweep_keep="0.2,0"), "sweep_keep"), (dict(trans_step=60000), "trans_step")])
def test_bad_settings_are_refused(given, match):
    with pytest.raises(ValueError, match=match):
        setup("tickets", "quick", given)


def test_speedup_counts_a_run_that_never_gets_there_at_its_last_step():
    class R:
        def __init__(self, acc, n):
            import numpy as np
            self.history = {"test_acc": np.array(acc), "step": np.arange(len(acc)) * 10}
            self.config = type("C", (), {"n_steps": n})
    base, never, fast = R([0, 0, 0, 1.0], 40), R([0, 0, 0, 0], 40), R([0, 1.0, 1.0, 1.0], 40)
    assert chapter.speedup(base, fast) == 3.0 and chapter.speedup(base, never) == 30 / 40
    assert chapter.speedup(never, fast) == 4.0
