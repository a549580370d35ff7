"""The members the race chapter adds: Grokfast's EMA and moving-average gradient filters and the Muon optimiser,
each against a step computed by hand (float64), each keeping a run apart from its batch mates (also through
compaction and a checkpoint, since they keep state), and their settings refused with one line when out of range
or set for another member.

Muon's Newton-Schulz iteration keeps a matrix's singular vectors and sends each singular value s / |G|_F through
the quintic five times, so the hand computation is an SVD and a scalar polynomial.
"""
import math

import numpy as np
import pytest
import torch

from grok_core import updates
from grok_core.budget import bytes_per_run
from grok_core.config import RunConfig
from grok_core.models import build_model
from grok_core.models.parts import FlatLayout
from grok_core.train import Trainer
from grok_core.updates import GrokfastEMA, GrokfastMA, Muon, adamw_schedule, make_transform, newton_schulz

F64 = torch.float64
TOL = 1e-10            # alone against batched: the same arithmetic in another order (tests/test_stopping.py)
BASE = RunConfig(p=11, d_model=16, n_heads=2, d_mlp=32, frac_train=0.5, n_steps=40, lr=3e-3)
EMA = BASE.replace(grad_transform="grokfast_ema", grokfast_alpha=0.9, grokfast_lamb=3.0)
MA = BASE.replace(grad_transform="grokfast_ma", grokfast_window=4, grokfast_lamb=5.0)
MUON = BASE.replace(optimizer="muon", muon_lr=0.01)
LAYOUT = FlatLayout({"a": (2,)})


def _cfgs(base, **each):
    """One config per run: base with the i-th value of each field."""
    n = len(next(iter(each.values())))
    return [base.replace(**{k: v[i] for k, v in each.items()}) for i in range(n)]


# -- Grokfast ---------------------------------------------------------------------------------------------------
def test_grokfast_ema_by_hand_per_run():
    configs = _cfgs(BASE.replace(grad_transform="grokfast_ema"), grokfast_alpha=[0.5, 0.0], grokfast_lamb=[2.0, 1.0])
    params = torch.zeros(2, 2, dtype=F64)
    t = make_transform(configs, params, LAYOUT)
    g1 = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=F64)
    g2 = torch.tensor([[3.0, 0.0], [3.0, 0.0]], dtype=F64)
    # run 0: e = g1, out = g1 + 2 g1; then e = (g1 + g2) / 2 = (2, 1), out = g2 + 2 e. Run 1 (alpha 0): out = 2 g.
    assert torch.equal(t(g1, params), torch.tensor([[3.0, 6.0], [2.0, 4.0]], dtype=F64))
    assert torch.equal(t(g2, params), torch.tensor([[7.0, 2.0], [6.0, 0.0]], dtype=F64))
    assert isinstance(t, GrokfastEMA) and t.state_names == ("gf_ema", "gf_seen")


def test_grokfast_ma_by_hand():
    """Window 2, lambda 3: the first gradient passes unchanged (the window is not full yet); then g + 3 * the mean of
    the last two gradients, the oldest dropped."""
    cfg = BASE.replace(grad_transform="grokfast_ma", grokfast_window=2, grokfast_lamb=3.0)
    params = torch.zeros(1, 2, dtype=F64)
    t = make_transform([cfg], params, LAYOUT)
    gs = [torch.tensor([[1.0, -1.0]], dtype=F64), torch.tensor([[3.0, 1.0]], dtype=F64),
          torch.tensor([[5.0, 7.0]], dtype=F64)]
    want = [[1.0, -1.0], [3.0 + 3 * 2.0, 1.0 + 3 * 0.0], [5.0 + 3 * 4.0, 7.0 + 3 * 4.0]]
    for g, w in zip(gs, want):
        assert torch.equal(t(g, params), torch.tensor([w], dtype=F64))
    assert isinstance(t, GrokfastMA)


def test_a_stateless_transform_is_still_a_function_of_the_registry():
    t = make_transform([BASE.replace(grad_transform="orthogonal")], torch.zeros(1, 2), LAYOUT)
    assert t.fn is updates.orthogonal_grad and t.state_names == ()
    assert make_transform([BASE], torch.zeros(1, 2), LAYOUT) is None


# -- Newton-Schulz and Muon --------------------------------------------------------------------------------------
def _quintic(s: float) -> float:
    a, b, c = updates.NS_COEFFICIENTS
    for _ in range(updates.NS_STEPS):
        s = a * s + b * s ** 3 + c * s ** 5
    return s


def _ns_by_svd(G: torch.Tensor) -> torch.Tensor:
    """Newton-Schulz of one matrix by hand: U diag(quintic(s / (|G|_F + 1e-7))) V^T."""
    U, s, Vh = torch.linalg.svd(G, full_matrices=False)
    f = torch.tensor([_quintic(x) for x in (s / (G.norm() + 1e-7)).tolist()], dtype=G.dtype)
    return U @ torch.diag(f) @ Vh


def test_newton_schulz_of_a_diagonal_matrix_by_hand():
    got = newton_schulz(torch.tensor([[[3.0, 0.0], [0.0, 4.0]]], dtype=F64))
    want = torch.tensor([[[_quintic(3 / (5 + 1e-7)), 0.0], [0.0, _quintic(4 / (5 + 1e-7))]]], dtype=F64)
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-15)


def test_newton_schulz_per_matrix_wide_and_tall():
    gen = torch.Generator().manual_seed(0)
    for shape in ((3, 5), (5, 3)):
        G = torch.randn(2, *shape, generator=gen, dtype=F64)
        G[1] *= 1000.0                                    # a batch mate of another scale changes nothing
        got = newton_schulz(G)
        for r in range(2):
            torch.testing.assert_close(got[r], _ns_by_svd(G[r]), rtol=1e-10, atol=1e-12)


def test_a_norm_over_the_stacked_runs_would_couple_them():
    """The check above can fail: the same iteration started from G / |whole [run, a, b] tensor| gives run 0 a result
    that depends on run 1's scale."""
    gen = torch.Generator().manual_seed(1)
    G = torch.randn(2, 3, 4, generator=gen, dtype=F64)
    G[1] *= 1000.0
    a, b, c = updates.NS_COEFFICIENTS
    X = G / (G.norm() + 1e-7)
    for _ in range(updates.NS_STEPS):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    assert not torch.allclose(X[0], _ns_by_svd(G[0]), rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(newton_schulz(G)[0], _ns_by_svd(G[0]), rtol=1e-10, atol=1e-12)


def _muon_by_hand(cfg, p0, g, lr_adam, wd):
    """One Muon step of one run from zero state, written out per parameter: Nesterov momentum from zero gives
    u = (1 - beta) g + beta (1 - beta) g; the matrices as d x (h e), (h e) x d, d x m, m x d."""
    layout = build_model(cfg).layout
    beta, lr, out = cfg.muon_momentum, cfg.muon_lr, {}
    P, Gr = layout.views(p0[None]), layout.views(g[None])
    D, H = cfg.d_model, cfg.n_heads
    e = D // H
    for name, shape in layout.shapes.items():
        w, gr = P[name][0], Gr[name][0]
        kind = name.split(".")[-1]
        if kind in ("W_Q", "W_K", "W_V", "W_O", "W_in", "W_out"):
            u = (1 - beta) * gr + beta * (1 - beta) * gr
            if kind in ("W_Q", "W_K", "W_V"):
                M = u.permute(1, 0, 2).reshape(D, H * e)
                step = _ns_by_svd(M).reshape(D, H, e).permute(1, 0, 2)
            elif kind == "W_O":
                step = _ns_by_svd(u.reshape(H * e, D)).reshape(H, e, D)
            else:
                step = _ns_by_svd(u)
            rows, cols = (D, H * e) if kind in ("W_Q", "W_K", "W_V") else (H * e, D) if kind == "W_O" else u.shape
            out[name] = w * (1 - lr * wd) - lr * math.sqrt(max(1.0, rows / cols)) * step
        else:                   # AdamW's first step from zero moments: m / sqrt(v) = sign(g) up to eps
            m, v = (1 - cfg.beta1) * gr, (1 - cfg.beta2) * gr * gr
            m_hat, v_hat = m / (1 - cfg.beta1), v / (1 - cfg.beta2)
            out[name] = w * (1 - lr_adam * wd) - lr_adam * m_hat / (v_hat.sqrt() + cfg.adam_eps)
    return layout.pack(out)


def test_muon_step_by_hand_and_per_run():
    cfg = MUON.replace(warmup_steps=0, wd=0.5, d_mlp=48)
    gen = torch.Generator().manual_seed(2)
    n = build_model(cfg).layout.size
    p0, g = torch.randn(2, n, generator=gen, dtype=F64), torch.randn(2, n, generator=gen, dtype=F64)
    g[1] *= 1e3
    lr, wd = torch.tensor([[1e-3], [3e-3]], dtype=F64), torch.full((2, 1), 0.5, dtype=F64)
    params = p0.clone()
    opt = Muon(cfg, params, lr, wd)
    opt.update(params, g.clone(), adamw_schedule(cfg, F64)[0:1])
    for r in range(2):
        torch.testing.assert_close(params[r], _muon_by_hand(cfg, p0[r], g[r], lr[r].item(), 0.5), rtol=1e-10, atol=1e-12)


def test_muon_leaves_embeddings_readout_and_biases_to_adamw():
    model = build_model(MUON)
    matrices = model.hidden_matrices(MUON)
    assert sorted(matrices) == ["0.W_K", "0.W_O", "0.W_Q", "0.W_V", "0.W_in", "0.W_out"]
    assert set(model.layout.shapes) - set(matrices) == {"W_E", "W_pos", "W_U", "0.b_in", "0.b_out"}


# -- runs stay apart, through compaction and checkpoints ----------------------------------------------------------
def _trained(configs, **kw):
    t = Trainer(configs, "cpu", dtype=F64, **kw)
    t.run(progress=False)
    return t


MEMBERS = {"ema": (EMA, dict(grokfast_alpha=0.5, grokfast_lamb=1.0)), "ma": (MA, dict(grokfast_lamb=2.0)),
           "muon": (MUON, dict(lr=1e-2, wd=0.3))}


@pytest.mark.parametrize("name", MEMBERS)
def test_a_run_is_the_same_beside_mates_with_other_settings(name):
    cfg, other = MEMBERS[name]
    alone = _trained([cfg])
    mates = _trained([cfg, cfg.replace(init_seed=7, split_seed=3, **other), cfg.replace(init_seed=9, fn="mul")])
    for k, v in alone.histories()[0].items():
        np.testing.assert_allclose(mates.histories()[0][k], v, rtol=TOL, atol=TOL * 1e-2, equal_nan=True, err_msg=k)
    torch.testing.assert_close(mates.flat[0].detach(), alone.flat[0].detach(), rtol=TOL, atol=TOL * 1e-2)


@pytest.mark.parametrize("name", MEMBERS)
def test_compaction_carries_the_kept_state(name):
    """A mate that stops at step 1 leaves the batch (its rows of the filter's or Muon's state go with it): the other
    run ends as it does alone."""
    cfg, _ = MEMBERS[name]
    quitter = cfg.replace(init_seed=5, stop_acc=1e-9, stop_hold=0)
    batch = _trained([quitter, cfg])
    assert batch.rows == [1] and batch.stopped[0].stop["stopped_at"] == 1
    alone = _trained([cfg])
    torch.testing.assert_close(batch.flat[0].detach(), alone.flat[0].detach(), rtol=TOL, atol=TOL * 1e-2)


@pytest.mark.parametrize("name", MEMBERS)
def test_a_checkpoint_holds_the_kept_state(tmp_path, name):
    cfg, _ = MEMBERS[name]
    full = _trained([cfg])
    part = Trainer([cfg], "cpu", dtype=F64)
    part.run(ckpt_path=tmp_path / "c.pt", stop_at=17, progress=False)
    assert set(part.state_dict()) >= set(part.optimizer.state_names) | set(getattr(part.grad_transform, "state_names", ()))
    again = Trainer([cfg], "cpu", dtype=F64)
    assert again.resume(tmp_path / "c.pt") and again.step == 17
    again.run(progress=False)
    assert torch.equal(again.flat.detach(), full.flat.detach())


def test_each_member_changes_training():
    plain = _trained([BASE.replace(n_steps=12)]).flat.detach()
    for cfg in (EMA, MA.replace(grokfast_window=3), MUON):
        assert not torch.allclose(_trained([cfg.replace(n_steps=12)]).flat.detach(), plain, rtol=1e-6, atol=1e-9)


# -- settings --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fields, match", [
    (dict(grad_transform="grokfast_ema", grokfast_alpha=1.0), r"grokfast_alpha=1\.0 is not allowed; it must lie in \[0, 1\)"),
    (dict(grad_transform="grokfast_ema", grokfast_lamb=-1.0), r"grokfast_lamb=-1\.0 is not allowed; it must be >= 0"),
    (dict(grad_transform="grokfast_ma", grokfast_window=0), r"grokfast_window=0 is not allowed; it must be >= 1"),
    (dict(grad_transform="grokfast_ma", grokfast_window=2.5), r"grokfast_window=2\.5 is not allowed; it must be an integer"),
    (dict(optimizer="muon", muon_lr=0.0), r"muon_lr=0\.0 is not allowed; it must be > 0"),
    (dict(optimizer="muon", muon_momentum=1.0), r"muon_momentum=1\.0 is not allowed; it must lie in \[0, 1\)"),
    (dict(grokfast_lamb=5.0), r"grokfast_lamb=5\.0 is not allowed with grad_transform='none'; it sets grokfast_ema"),
    (dict(grad_transform="grokfast_ma", grokfast_alpha=0.5), r"grokfast_alpha=0\.5 is not allowed with grad_transform="),
    (dict(muon_lr=0.05), r"muon_lr=0\.05 is not allowed with optimizer='adamw'; it sets muon only"),
    (dict(optimizer="muon", model="mlp"), r"optimizer='muon' is not allowed with model='mlp'"),
    (dict(grad_transform="grokfast"), r"grad_transform='grokfast' is not allowed; choose one of"),
])
def test_bad_settings_are_refused_in_one_line(fields, match):
    with pytest.raises(ValueError, match=match) as err:
        BASE.replace(**fields)
    assert "\n" not in str(err.value)


def test_keys_and_batches():
    """The new fields leave every earlier key alone; lambda and alpha may differ inside a batch, the window and
    Muon's settings may not (they fix the state's shape or the optimiser)."""
    assert BASE.key() == RunConfig(**{k: v for k, v in BASE.to_dict().items() if not k.startswith(("grokfast", "muon"))}).key()
    assert EMA.key() != EMA.replace(grokfast_lamb=5.0).key()
    RunConfig.check_batchable([EMA, EMA.replace(grokfast_alpha=0.5, grokfast_lamb=5.0)])
    for a, b in ((MA, MA.replace(grokfast_window=5)), (MUON, MUON.replace(muon_lr=0.05)), (EMA, MA)):
        with pytest.raises(ValueError, match="runs in one batch must share"):
            RunConfig.check_batchable([a, b])


def test_the_budget_counts_the_moving_average_window():
    n = build_model(BASE).layout.size
    assert bytes_per_run(MA.replace(grokfast_window=50)) - bytes_per_run(MA.replace(grokfast_window=10)) == 4 * 40 * n
    assert bytes_per_run(EMA) - bytes_per_run(BASE) == 4 * n == bytes_per_run(MUON) - bytes_per_run(BASE)
