"""The embedding-uniformity measures on embeddings whose values are known, and the theory chapter's rule.

A circle's points have one norm, equal spacing, effective dimension 2 and all their energy in one frequency;
the rule's three tests are each flipped by a constructed setting.
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from grok_core.chapters import setup
from grok_core.chapters import theory_uniformity as chapter
from grok_core.config import RunConfig
from grok_core.measures import effective_dimension, spread, top_frequency_share
from grok_core.train import Trainer


def circle(n: int, k: int, d: int = 6, radius: float = 3.0) -> torch.Tensor:
    """[1, n, d]: i -> radius (cos 2πki/n, sin 2πki/n, 0, ...), in float64."""
    a = 2 * math.pi * k * torch.arange(n, dtype=torch.float64) / n
    pts = torch.zeros(n, d, dtype=torch.float64)
    pts[:, 0], pts[:, 1] = radius * torch.cos(a), radius * torch.sin(a)
    return pts[None]


@pytest.mark.parametrize("k", [1, 5, 48])
def test_a_circle_is_two_dimensional_and_one_frequency(k):
    pts = circle(97, k)
    assert effective_dimension(pts).item() == pytest.approx(2.0, abs=1e-12)
    assert top_frequency_share(pts).item() == pytest.approx(1.0, abs=1e-12)
    assert spread(pts.norm(dim=-1)).item() == pytest.approx(0.0, abs=1e-12)
    steps = (torch.roll(pts, -1, dims=-2) - pts).norm(dim=-1)
    assert spread(steps).item() == pytest.approx(0.0, abs=1e-12)


def test_two_frequencies_split_the_energy_and_add_dimensions():
    a, b = circle(31, 2, d=4), circle(31, 7, d=4)
    pts = a.clone()
    pts[..., 2:] = b[..., :2] * 0.5                                   # second circle, a quarter of the energy
    assert top_frequency_share(pts).item() == pytest.approx(0.8, abs=1e-12)
    # eigenvalues 4.5, 4.5 (scaled 9/2 per axis) and 1.125, 1.125: (11.25)^2 / (2 * 20.25 + 2 * 1.265625)
    assert effective_dimension(pts).item() == pytest.approx(11.25 ** 2 / (2 * 4.5 ** 2 + 2 * 1.125 ** 2), rel=1e-12)


def test_an_isotropic_cloud_has_about_its_full_dimension_and_no_frequency():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(4, 2000, 8, generator=g, dtype=torch.float64)
    assert (effective_dimension(pts) > 7.8).all()
    assert (top_frequency_share(pts) < 0.01).all()


def test_recorded_measures_equal_the_functions_on_the_initial_embedding():
    cfg = RunConfig(p=11, d_model=16, n_heads=2, frac_train=0.5, n_steps=3, lr=1e-2,
                    measures=",".join(chapter.UNIFORMITY))
    t = Trainer([cfg, cfg.replace(init_seed=1)], "cpu", dtype=torch.float64)
    W = t.model.layout.views(t.flat.detach().clone())["W_E"][:, :cfg.p]
    t.run(progress=False)
    h = t.histories()
    for r in range(2):
        assert h[r]["embed_eff_dim"][0] == pytest.approx(effective_dimension(W[r:r + 1]).item(), rel=1e-12)
        assert h[r]["embed_top_freq"][0] == pytest.approx(top_frequency_share(W[r:r + 1]).item(), rel=1e-12)
        assert h[r]["embed_norm_cv"][0] == pytest.approx(spread(W[r].norm(dim=-1)).item(), rel=1e-12)


def test_strip_runs_vary_the_init_seed_only():
    S, configs = setup("theory_uniformity", "paper", {})
    strip = [c for c in configs if c.split == "strip"]
    assert len(strip) == (len(configs) - 1) // 2 == 40
    assert {c.split_seed for c in strip} == {0} and sorted({c.init_seed for c in strip}) == list(range(8))
    assert len({c.key() for c in configs}) == 81


def test_one_run_keeps_snapshots_and_the_claims_leave_it_out():
    S, configs = setup("theory_uniformity", "paper", {})
    snap = [c for c in configs if c.snapshots]
    assert len(snap) == 1 and (snap[0].snapshots, snap[0].snapshot_dtype, snap[0].wd) == (32, "float16", 1.0)
    twin = [c for c in configs if not c.snapshots and (c.split, c.wd, c.init_seed, c.split_seed) == ("random", 1.0, 0, 0)]
    assert len(twin) == 1 and twin[0].key() != snap[0].key()       # same training, its own key
    runs = [SimpleNamespace(config=c) for c in configs]
    assert len(chapter.measured_runs(runs)) == 80


def setting(split, wd, grok_at, eff_end, top_end, lowest):
    n = len(grok_at)
    return {"split": split, "wd": wd, "runs": n, "test_acc_95_at": grok_at, "late_test_acc": [0.5] * n,
            "eff_dim_at_grokking": [None if g is None else e for g, e in zip(grok_at, lowest)],
            "eff_dim_lowest": lowest, "embed_eff_dim_end": [eff_end] * n, "embed_top_freq_end": [top_end] * n}


def good():
    return [setting("random", 0.0, [None, None], 40, 0.04, [38, 37]),
            setting("random", 1.0, [5000, 6000], 9, 0.3, [17, 16]),
            setting("strip", 1.0, [None, None], 3, 0.7, [2.5, 3])]


def test_the_rule_reproduces_on_the_pattern_it_describes():
    F = chapter.findings(good())
    assert F["drive"] and F["necessary"] and F["not_sufficient"]
    assert chapter.verdict(F) == "reproduced"


def test_each_test_of_the_rule_can_fail():
    s = good()
    s[1]["embed_top_freq_end"] = [0.03] * 2                           # no rise of the one-frequency share
    assert chapter.verdict(chapter.findings(s)) == "partly reproduced"
    s = good()
    s[2]["eff_dim_lowest"] = [20, 30]                                 # nothing concentrated fails to grok
    assert not chapter.findings(s)["not_sufficient"] and chapter.verdict(chapter.findings(s)) == "partly reproduced"
    s = good()
    s[1]["eff_dim_at_grokking"] = [17, 39]                            # a run groks above the wd = 0 floor
    assert chapter.verdict(chapter.findings(s)) == "contradicted"
    s = good()
    s[1]["test_acc_95_at"] = [None, None]
    s[1]["eff_dim_at_grokking"] = [None, None]
    assert chapter.verdict(chapter.findings(s)) == "not reproduced"


def test_the_table_has_one_row_per_setting_random_first():
    rows = chapter.table_rows([dict(s, med_start=[1.0, 1.0], med_end=[2.0, 2.0], embed_eff_dim_start=[54, 54],
                                    embed_norm_cv_end=[0.1, 0.1], embed_step_cv_end=[0.2, 0.2])
                               for s in reversed(good())])
    assert [r[:2] for r in rows] == [["random", "0"], ["random", "1"], ["strip", "1"]]
    assert len(rows[0]) == len(chapter.TABLE_HEADERS) and rows[0][-1] == "2.00 ± 0.00"
    assert np.isclose(float(rows[1][4].split("→")[0]), 54)
