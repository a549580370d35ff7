"""MED variants and the weight norm on hand-built embeddings with known answers."""
import math

import pytest
import torch

from grok_core.measures import cyclic_med, med, med_reference, weight_norm


def circle(p, d=4, radius=1.0):
    a = 2 * math.pi * torch.arange(p, dtype=torch.float64) / p
    pts = torch.zeros(p, d, dtype=torch.float64)
    pts[:, 0], pts[:, 1] = radius * torch.cos(a), radius * torch.sin(a)
    return pts


@pytest.mark.parametrize("p", [5, 13, 97])
def test_points_equally_spaced_on_a_circle(p):
    W_E = torch.cat([circle(p), torch.randn(1, 4, dtype=torch.float64)])[None]   # + the '=' token
    chord = 2 * math.sin(math.pi / p)
    assert med(W_E, p).item() == pytest.approx(chord)
    assert med(W_E, p, normalize="sum").item() == pytest.approx(p * chord)
    assert med_reference(W_E, p).item() == pytest.approx(chord)
    assert med_reference(W_E, p, normalize="sum").item() == pytest.approx(2 * (p - 1) * chord)


def test_points_on_a_line_show_the_wraparound_difference():
    p = 7
    W_E = torch.zeros(1, p + 1, 3, dtype=torch.float64)
    W_E[0, :p, 0] = torch.arange(p)                          # unit steps, wrap-around step p-1
    assert med(W_E, p).item() == pytest.approx(2 * (p - 1) / p)
    assert med_reference(W_E, p).item() == pytest.approx(1.0)   # p-2 unit steps, no wrap-around


def test_reference_ignores_the_last_operand_token():
    p = 6
    W_E = torch.zeros(1, p + 1, 2)
    W_E[0, p - 1] = 100.0                                     # moving token p-1 changes only the paper MED
    assert med_reference(W_E, p).item() == 0
    assert med(W_E, p).item() > 0


def test_reference_with_offset_averages_both_operand_ranges():
    p, d = 5, 2
    W_E = torch.zeros(1, p + d + 1, 1)
    W_E[0, :, 0] = torch.tensor([0., 1, 2, 3, 5, 8, 13, 0])
    m1 = (1 + 1 + 1) / 3                 # tokens 0..3
    m2 = (1 + 2 + 3) / 3                 # tokens 2..5
    assert med_reference(W_E, p, d).item() == pytest.approx((m1 + m2) / 2)
    assert med_reference(W_E, p, d, "sum").item() == pytest.approx((p - 1) * (m1 + m2))


def test_med_is_batched_over_runs_and_checks_normalize():
    W = torch.stack([torch.cat([circle(5, radius=r), torch.zeros(1, 4, dtype=torch.float64)]) for r in (1, 2)])
    out = med(W, 5)
    assert out[1] == pytest.approx(2 * out[0])
    with pytest.raises(ValueError, match="normalize"):
        cyclic_med(W, "median")


def test_weight_norm():
    assert weight_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]])).tolist() == [5.0, 1.0]
