"""The progress-measure candidates on planted cases with known answers, and each run of a batch measured as alone.

Planted: a logit table made of the x + y Fourier circuit (restricted loss = full loss, excluded loss >= log p); the
IPR of a pure cosine (1); the LLC of a quadratic loss (d / 2); local complexity where no neuron's hyperplane comes
near (0) and where a known number of them pass through the point. The online key frequencies read their own
snapshot only (a look-ahead guard).
"""
import math

import numpy as np
import pytest
import torch

from grok_core import fourier, internals, local_complexity as lc
from grok_core.config import RunConfig
from grok_core.llc import sgld_llc
from grok_core.measures import MEASURES
from grok_core.progress import CANDIDATES, _evaluate, _evaluator
from grok_core.tasks import labels
from grok_core.train import Trainer, snapshot_steps

P = 23
CFG = RunConfig(p=P, d_model=16, n_heads=2, d_mlp=32, frac_train=0.5, n_steps=40, lr=1e-2)


def planted_table(p: int, scale: float = 4.0, freqs=(3, 7)) -> torch.Tensor:
    """[1, p, p, p] logits sum_k scale cos(2πk(x + y - z)/p): the Fourier circuit of x + y alone."""
    x = torch.arange(p, dtype=torch.float64)
    s = x[:, None, None] + x[None, :, None] - x[None, None, :]
    return sum(scale * torch.cos(2 * math.pi * k * s / p) for k in freqs)[None]


def test_the_planted_circuit_is_all_restricted_and_nothing_excluded():
    L = planted_table(P)
    keys = torch.zeros(1, fourier.frequencies(P), dtype=torch.bool)
    keys[0, [2, 6]] = True                                          # k = 3 and 7
    restricted, excluded = fourier.circuit_parts(L, keys, sign=1)
    rows = torch.arange(P * P)[None]
    y = labels("add", P)[None]
    w = torch.ones(1, P * P, dtype=torch.float64)
    full = fourier.table_loss(L, y, rows, w)
    assert float(fourier.table_loss(restricted, y, rows, w)) == pytest.approx(float(full), rel=1e-9)
    assert float(fourier.table_loss(excluded, y, rows, w)) >= math.log(P) - 1e-9
    assert float(fourier.circuit_share(L, 1)) == pytest.approx(1.0, abs=1e-12)
    assert float(fourier.circuit_share(L, -1)) < 1e-12                # not the x - y circuit
    keys[0, 6] = False                                              # one key missing: its part is excluded
    assert float(fourier.table_loss(fourier.circuit_parts(L, keys, 1)[0], y, rows, w)) > float(full) + 0.1


def test_ipr_and_gini_of_a_pure_cosine_embedding():
    x = torch.arange(P, dtype=torch.float64)
    W = torch.stack([torch.cos(2 * math.pi * 5 * x / P), torch.sin(2 * math.pi * 2 * x / P)], 1)[None]
    assert float(fourier.embedding_ipr(W)) == pytest.approx(1.0, abs=1e-12)
    K = fourier.frequencies(P)
    assert float(fourier.embedding_gini(W[:, :, :1])) == pytest.approx((K - 1) / K, abs=1e-12)
    assert float(fourier.gini(torch.ones(1, 7))) == 0.0
    noise = torch.randn(1, P, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(fourier.embedding_ipr(noise)) < 0.5


def test_key_frequencies_of_neurons_planted_at_one_frequency():
    """Neurons cos(2π3x/p) cos(2π3y/p) and sin ... own frequency 3 with share 1; a frequency needs enough of them."""
    x = torch.arange(P, dtype=torch.float64)
    c, s = torch.cos(2 * math.pi * 3 * x / P), torch.sin(2 * math.pi * 3 * x / P)
    acts = torch.stack([c[:, None] * c[None], s[:, None] * c[None], c[:, None] + s[None]] * 4, -1)[None]   # 12 neurons
    at, best = fourier.neuron_frequencies(acts)
    assert at.tolist() == [[2] * 12] and torch.allclose(best, torch.ones_like(best))
    keys = fourier.key_frequencies(acts)
    assert keys[0].nonzero().flatten().tolist() == [2]
    assert not fourier.key_frequencies(acts, neurons=13 / 12)[0].any()


def test_llc_of_a_quadratic_is_half_its_rank():
    """L = ½ Σ h_i w_i² with rank r has λ = r / 2. The tempered posterior is Gaussian, so SGLD gives nβ E[L] =
    ½ Σ nβh/(nβh + γ) (0.2 % below r/2 at n = 1000, γ = 1) times the step's bias 1/(1 - ελ/4) (at most 1 % at
    ε = 1e-4); 16 independent chains of 20,000 draws, each decorrelating within about 2/(ελ) <= 300 draws, leave a
    standard error of about 2 %, so the band is 6 %."""
    h = torch.tensor([1.0, 2.0, 0.5, 1.5, 3.0, 1.0], dtype=torch.float64)
    w_star = torch.zeros(16, 6, dtype=torch.float64)
    for rank in (6, 2):
        loss = lambda w: 0.5 * (h[:rank] * w[:, :rank] ** 2).sum(-1)
        est = sgld_llc(loss, w_star, n=1000, step=1e-4, pull=1.0, draws=20000, burn_in=2000, seeds=list(range(16)))
        assert float(est.mean()) == pytest.approx(rank / 2, rel=0.06), rank
    with pytest.raises(ValueError, match="draws"):
        sgld_llc(loss, w_star, n=10, draws=5, burn_in=5)


def test_local_complexity_of_a_map_linear_near_the_points_is_zero_and_counts_planted_cuts():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(1, 9, 5, generator=g, dtype=torch.float64)
    x = torch.randn(1, 4, 9, generator=g, dtype=torch.float64)
    q = lc.frame(9, 4)
    r = torch.tensor([0.1])
    far = lambda v: v @ A + 10.0                                      # every hyperplane more than r away
    assert lc.sign_changes(far, x, q, r).tolist() == [[0, 0, 0, 0]]
    b = -(x[0, 0] @ A[0])                                             # all 5 hyperplanes through the first point
    assert lc.sign_changes(lambda v: v @ A + b, x, q, r)[0, 0] == 5
    assert torch.allclose(q @ q.T, torch.eye(4, dtype=torch.float64))


def test_the_internal_forward_is_the_models():
    cfg = CFG.replace(n_layers=2)
    t = Trainer([cfg, cfg.replace(init_seed=3)], "cpu", cuda_graph=False, dtype=torch.float64)
    w = t._weights(t.flat.detach())
    _, logits = internals.table(cfg, t.model.act, w)
    for r in range(2):
        assert torch.allclose(logits[r].reshape(P * P, P), t.model.reference_logits(w, r), atol=1e-10)


def test_effective_rank_counts_equal_directions():
    M = torch.diag(torch.tensor([2.0, 2.0, 2.0, 0.0], dtype=torch.float64))
    assert float(internals.effective_rank(M)) == pytest.approx(3.0)


def test_qk_effective_rank_through_qr_is_the_products():
    g = torch.Generator().manual_seed(0)
    w = {"0.W_Q": torch.randn(3, 4, 16, 5, generator=g, dtype=torch.float64),
         "0.W_K": torch.randn(3, 4, 16, 5, generator=g, dtype=torch.float64)}
    w["0.W_K"][0, 0, :, 1:] = 0.0                                  # a rank-one head: the product has rank one
    full = internals.effective_rank(torch.einsum("rhde,rhfe->rhdf", w["0.W_Q"], w["0.W_K"])).mean(-1)
    assert torch.allclose(internals.qk_effective_rank(w), full, rtol=1e-10)
    assert internals.effective_rank(torch.einsum("de,fe->df", w["0.W_Q"][0, 0], w["0.W_K"][0, 0])) == pytest.approx(1.0)


def _trained(cfg, steps=40):
    t = Trainer([cfg], "cpu", dtype=torch.float64)
    t.run(progress=False)
    return t


def test_online_keys_read_their_own_snapshot_only():
    """Look-ahead guard: the online restricted/excluded loss at snapshot s does not change when the later snapshots
    are replaced by anything else."""
    cfg = CFG.replace(snapshots=8)
    t = _trained(cfg)
    w = t.snaps[0].double()
    names = ("restricted_loss", "excluded_loss", "key_frequencies")
    a = _evaluate(cfg, w, names, "cpu", chunk=16)
    w2 = w.clone()
    w2[4:] = torch.randn_like(w2[4:])
    b = _evaluate(cfg, w2, names, "cpu", chunk=16)
    np.testing.assert_array_equal(a[:4], b[:4])
    assert not np.allclose(a[4:], b[4:])


def test_an_evaluator_holds_no_snapshot_buffer_and_measures_the_same():
    """Measuring a snapshot needs no snapshot schedule: the evaluator drops it (its buffer is runs x snapshots x
    parameters), and the measures do not depend on it."""
    cfg = CFG.replace(snapshots=8, snapshot_every=10)
    assert Trainer([cfg] * 2, "cpu").snaps.shape[1] > 0
    ev = _evaluator(cfg, 2, "cpu")
    assert ev.snaps.numel() == 0
    w = _trained(cfg).snaps[0][:2].float()
    names = ("med", "qk_eff_rank", "restricted_loss")
    np.testing.assert_array_equal(ev.evaluate(w, names).numpy(), Trainer([cfg] * 2, "cpu", cuda_graph=False).evaluate(w, names).numpy())


@pytest.mark.parametrize("name", [n for n in CANDIDATES if MEASURES[n].default is False])
def test_a_run_is_measured_alike_beside_any_batch_mates(name):
    """Float64: a run's value beside two different runs equals its value beside two others (same arithmetic in the
    same order per row; the shared noise of the LLC and the shared frame of LC are what make it so)."""
    base = CFG.replace(frac_train=0.6)
    mates = [[CFG.replace(init_seed=5), CFG.replace(split_seed=9, wd=0.1)],
             [CFG.replace(init_seed=7, frac_train=0.4), CFG.replace(fn="subtract")]]
    values = []
    for pair in mates:
        t = Trainer([base] + pair, "cpu", cuda_graph=False, dtype=torch.float64)
        values.append(t.evaluate(t.flat.detach(), (name,))[0, 0])
    assert torch.isfinite(values[0]) and torch.allclose(values[0], values[1], rtol=1e-9, atol=1e-12), values


def test_snapshot_steps_add_every_multiple():
    cfg = CFG.replace(n_steps=1000, snapshots=5, snapshot_every=300)
    assert snapshot_steps(cfg).tolist() == [0, 1, 10, 100, 300, 600, 900, 1000]
    assert snapshot_steps(CFG.replace(n_steps=1000, snapshot_every=500)).tolist() == [0, 500, 1000]
    with pytest.raises(ValueError, match="snapshot_every"):
        CFG.replace(snapshot_every=-1)
    assert CFG.replace(snapshot_every=0).key() == CFG.key()
