"""The members for Prieto et al. 2025 ("Grokking at the edge of numerical stability"): the StableMax loss,
the ⊥Grad gradient transform, the loss precision and Adam's eps as config fields, and the measures of Softmax
Collapse, zero losses and the naive-loss-minimisation alignment; each on hand-computed cases, each keeping a
run apart from its batch mates (float64, as in test_step_extensions.py), none changing a default run.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grok_core import losses, measures
from grok_core.config import RunConfig
from grok_core.losses import LOSSES, loss_dtype, stablemax_cross_entropy, stablemax_logits, training_loss
from grok_core.measures import MeasureContext
from grok_core.models.parts import FlatLayout
from grok_core.train import Trainer, metric_names
from grok_core.updates import GRAD_TRANSFORMS, AdamW, adamw_schedule, orthogonal_grad

BASE = RunConfig(p=11, d_model=16, n_heads=2, d_mlp=32, frac_train=0.5, n_steps=40, lr=3e-3)
MATES = (dict(init_seed=7, split_seed=3, lr=1e-2), dict(init_seed=9, fn="mul", wd=0.3))
NEW = "sc_fraction,zero_loss_fraction,nlm_cosine"


def _trained(configs, dtype=torch.float64):
    t = Trainer(configs, "cpu", dtype=dtype)
    t.run(progress=False)
    return t


def _independent(cfg: RunConfig) -> bool:
    """As test_step_extensions._independent: cfg's run is the same beside either of two batch mates."""
    (h0, w0), (h1, w1) = ((t.histories()[0], t.flat[0].detach())
                          for t in (_trained([cfg, cfg.replace(**mate)]) for mate in MATES))
    same = all(np.allclose(h0[k], h1[k], rtol=1e-10, atol=1e-12, equal_nan=True) for k in h0)
    return same and torch.allclose(w0, w1, rtol=1e-10, atol=1e-12)


# -- StableMax ------------------------------------------------------------------------------------------------
def _s(x: float) -> float:
    """The paper's s(x), written out."""
    return x + 1 if x >= 0 else 1 / (1 - x)


def test_stablemax_is_softmax_of_the_transformed_logits_and_the_papers_formula():
    x = torch.tensor([[[0.0, 1.0, -1.0], [3.5, -0.25, 2.0]]], dtype=torch.float64)       # [run 1, n 2, p 3]
    y = torch.tensor([[0, 2]])
    s = torch.tensor([[[1.0, 2.0, 0.5], [4.5, 0.8, 3.0]]], dtype=torch.float64)      # x + 1, 1 / (1 - x)
    torch.testing.assert_close(torch.exp(stablemax_logits(x)), s, rtol=1e-15, atol=0)
    got = stablemax_cross_entropy(x, y)
    # row 0 by hand: s = (1, 2, 1/2), the label's probability 1 / 3.5
    assert got[0, 0].item() == pytest.approx(math.log(3.5), rel=1e-15)
    paper = [-math.log(_s(row[k]) / sum(_s(v) for v in row)) for row, k in zip(x[0].tolist(), y[0].tolist())]
    torch.testing.assert_close(got[0], torch.tensor(paper, dtype=torch.float64), rtol=1e-15, atol=0)
    assert torch.equal(got, LOSSES["ce"](stablemax_logits(x), y))


def test_stablemax_transform_has_slope_one_at_zero_and_finite_gradients():
    x = torch.tensor([-1e6, -2.0, 0.0, 2.0, 1e6], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(stablemax_logits(x).sum(), x)
    torch.testing.assert_close(g, 1 / (1 + x.detach().abs()), rtol=1e-15, atol=0)


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_stablemax_trains_at_each_loss_precision(bits):
    t = _trained([BASE.replace(loss="stablemax", loss_precision=bits, n_steps=15)], torch.float32)
    h = t.histories()[0]
    assert np.isfinite(h["train_loss"]).all() and h["train_loss"][-1] < h["train_loss"][0]


# -- ⊥Grad ----------------------------------------------------------------------------------------------------
LAYOUT = FlatLayout({"a": (2,), "b": (2, 2)})


def test_orthogonal_grad_by_hand():
    w = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[1.0, 1.0, 2.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    # a: w=(1,0), g=(1,1): g⊥=(0,1), times |g| = √2. b: w=(1,1,0,0), g=(2,0,0,0): g⊥=(1,-1,0,0), times 2/√2.
    want = torch.tensor([[0.0, math.sqrt(2), math.sqrt(2), -math.sqrt(2), 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(orthogonal_grad(g, w, LAYOUT), want, rtol=1e-15, atol=1e-15)
    assert GRAD_TRANSFORMS["orthogonal"] is orthogonal_grad


def test_orthogonal_grad_is_orthogonal_per_tensor_and_keeps_each_norm():
    gen = torch.Generator().manual_seed(0)
    w, g = (torch.randn(3, LAYOUT.size, generator=gen, dtype=torch.float64) for _ in range(2))
    out = orthogonal_grad(g, w, LAYOUT)
    for name in LAYOUT.shapes:
        wv, gv, ov = (LAYOUT.views(t)[name].flatten(1) for t in (w, g, out))
        assert ((wv * ov).sum(-1).abs() < 1e-14 * wv.norm(dim=-1) * ov.norm(dim=-1)).all()
        torch.testing.assert_close(ov.norm(dim=-1), gv.norm(dim=-1), rtol=1e-14, atol=0)
    # per tensor, not over the whole vector: the global projection leaves a component along each tensor
    glob = g - (w * g).sum(-1, keepdim=True) / (w * w).sum(-1, keepdim=True) * w
    assert (LAYOUT.views(w)["a"] * LAYOUT.views(glob)["a"]).sum(-1).abs().max() > 1e-3


def test_orthogonal_grad_leaves_an_orthogonal_gradient_unchanged():
    w = torch.tensor([[1.0, 0.0, 1.0, -1.0, 0.0, 2.0]], dtype=torch.float64)
    g = torch.tensor([[0.0, 3.0, 1.5, 1.5, 0.7, 0.0]], dtype=torch.float64)        # <w, g> = 0 in each tensor
    assert torch.equal(orthogonal_grad(g, w, LAYOUT), g)
    assert torch.equal(orthogonal_grad(g.float(), w.float(), LAYOUT), g.float())


def test_orthogonal_grad_of_a_parallel_gradient_or_a_zero_tensor():
    w = torch.tensor([[2.0, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[-3.0, 0.0, 1.0, 2.0, 3.0, 4.0]], dtype=torch.float64)
    out = orthogonal_grad(g, w, LAYOUT)
    assert torch.equal(out[:, :2], torch.zeros(1, 2, dtype=torch.float64))        # only along w: no update
    assert torch.equal(out[:, 2:], g[:, 2:])                                         # b is all zero: kept


# -- loss precision and Adam's eps ------------------------------------------------------------------------------
def test_loss_precision_sets_the_loss_dtype_and_the_default_casts_nothing():
    assert training_loss(BASE, torch.float32) is LOSSES["ce"] and training_loss(BASE, torch.float64) is LOSSES["ce"]
    assert training_loss(BASE.replace(loss="ce64"), torch.float32) is LOSSES["ce64"]
    assert loss_dtype(BASE, torch.float32) == torch.float32 and loss_dtype(BASE, torch.float64) == torch.float64
    assert loss_dtype(BASE.replace(loss_precision=16), torch.float32) == torch.float16
    assert loss_dtype(BASE.replace(loss_precision=64), torch.float32) == torch.float64
    assert loss_dtype(BASE.replace(loss="ce64"), torch.float32) == torch.float64
    x = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(1)) * 30
    y = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(2))
    half = training_loss(BASE.replace(loss_precision=16), torch.float32)(x, y)
    assert half.dtype == torch.float32 and torch.equal(half, LOSSES["ce"](x.half(), y).float())
    # ce at 64 bits is ce64's arithmetic (another key: ce64 stays for the runs that name it)
    assert torch.equal(training_loss(BASE.replace(loss_precision=64), torch.float32)(x, y), LOSSES["ce64"](x, y))


def test_adam_eps_is_torchs_eps():
    """Three AdamW steps with eps 1e-3 (large enough to matter) against torch's, float64, no warm-up."""
    cfg = BASE.replace(adam_eps=1e-3, warmup_steps=0, n_steps=3, wd=0.1, lr=0.05)
    gen = torch.Generator().manual_seed(3)
    ours = torch.randn(1, 7, generator=gen, dtype=torch.float64)
    ref = ours[0].clone().requires_grad_()
    opt = AdamW(cfg, ours, torch.full((1, 1), cfg.lr, dtype=torch.float64), torch.full((1, 1), cfg.wd, dtype=torch.float64))
    torch_opt = torch.optim.AdamW([ref], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.wd, eps=1e-3)
    rows = adamw_schedule(cfg, torch.float64)
    for s in range(3):
        grad = 1e-3 * torch.randn(7, generator=gen, dtype=torch.float64)
        opt.update(ours, grad[None], rows[s:s + 1])
        ref.grad = grad.clone()
        torch_opt.step()
    torch.testing.assert_close(ours[0], ref.detach(), rtol=1e-13, atol=1e-15)
    assert Trainer([cfg], "cpu").optimizer.eps == 1e-3 and Trainer([BASE], "cpu").optimizer.eps == 1e-8


# -- the measures ------------------------------------------------------------------------------------------------
# Row 0 collapses in float32 (e^-20 < 2^-24) but not in float64; row 1 in neither; row 2 in both (e^-50 <
# 2^-53), with the wrong class on top; row 3 is padding (it would collapse) and must not count.
LOGITS = torch.tensor([[[0.0, -20.0, -20.0], [0.0, -1.0, -2.0], [0.0, -50.0, -60.0], [0.0, -90.0, -90.0]]])
LABELS = torch.tensor([[0, 0, 1, 0]])
REAL = torch.tensor([[1.0, 1.0, 1.0, 0.0]])


def _ctx(cfg, logits=LOGITS, flat=None, grad=None):
    return MeasureContext(cfg, None, {}, flat, None, None, logits, LABELS, REAL.to(logits.dtype), grad)


@pytest.mark.parametrize("kw,sc,zero", [
    (dict(), 2 / 3, 1 / 3),                        # float32: rows 0 and 2 collapse; row 0's loss is exactly 0
    (dict(loss_precision=64), 1 / 3, 0.0),         # float64: only row 2, whose loss is 50
    (dict(loss="ce64"), 1 / 3, 0.0),
    (dict(loss_precision=16), 2 / 3, 1 / 3),       # e^-1 is not absorbed even in float16
    (dict(loss="stablemax"), 0.0, 0.0),            # s: 1/21 and 1/51 against 1 are far from absorbed
])
def test_sc_and_zero_loss_fractions_by_hand(kw, sc, zero):
    cfg = RunConfig(p=3, **kw)
    got_sc = measures.MEASURES["sc_fraction"].fn(_ctx(cfg))
    got_zero = measures.MEASURES["zero_loss_fraction"].fn(_ctx(cfg))
    assert got_sc.tolist() == [pytest.approx(sc, abs=1e-7)] and got_zero.tolist() == [pytest.approx(zero, abs=1e-7)]


def test_collapse_is_read_from_the_training_kernel():
    """A collapsed sample whose label is on top has training loss exactly 0, and conversely, at each precision."""
    x = torch.randn(2, 64, 11, generator=torch.Generator().manual_seed(4)) * torch.logspace(0, 2.5, 64)[None, :, None]
    y = x.argmax(-1)
    for kw in (dict(), dict(loss_precision=16), dict(loss_precision=64), dict(loss="stablemax", loss_precision=16)):
        cfg = RunConfig(p=11, **kw)
        hit = measures.collapsed(cfg, x)
        assert cfg.loss == "stablemax" or 0 < int(hit.sum()) < hit.numel(), kw
        assert torch.equal(hit, training_loss(cfg, torch.float32)(x, y) == 0), kw
    assert measures.collapsed(RunConfig(p=11, loss="mse"), x) is None
    assert measures.MEASURES["sc_fraction"].fn(_ctx(RunConfig(p=3, loss="mse"))).isnan().all()


def test_nlm_cosine_is_minus_one_when_the_gradient_is_the_weights():
    """A weight-norm loss |θ|²/2 has gradient +θ: the descent direction points against the weights."""
    flat = torch.randn(2, 9, generator=torch.Generator().manual_seed(5), dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad((flat ** 2).sum() / 2, flat)
    got = measures.MEASURES["nlm_cosine"].fn(_ctx(None, flat=flat.detach(), grad=grad))
    torch.testing.assert_close(got, torch.tensor([-1.0, -1.0], dtype=torch.float64), rtol=1e-15, atol=1e-15)
    assert measures.MEASURES["nlm_cosine"].fn(_ctx(None, flat=flat.detach(), grad=-grad)).tolist() == \
        [pytest.approx(1.0, rel=1e-15)] * 2
    assert measures.MEASURES["nlm_cosine"].needs_grad


def test_recorded_measures_match_a_direct_computation_and_the_snapshot_path():
    cfg = BASE.replace(measures=NEW, n_steps=1, loss_precision=64)
    t = Trainer([cfg, cfg.replace(init_seed=4, frac_train=0.3)], "cpu", dtype=torch.float64)
    flat0 = t.flat.detach().clone()
    loss = (t.loss_fn(t._logits(t._weights(t.flat), t.data.train_ij), t.data.train_labels) * t.data.train_w).sum()
    (grad,) = torch.autograd.grad(loss, t.flat)
    t.run(progress=False)
    names = metric_names(cfg)[-3:]
    h = t.history[:, 0, -3:]
    torch.testing.assert_close(h[:, 2], -(grad * flat0).sum(-1) / (grad.norm(dim=-1) * flat0.norm(dim=-1)),
                               rtol=1e-12, atol=0)
    assert h[:, :2].tolist() == [[0.0, 0.0], [0.0, 0.0]]          # nothing collapses at initialisation
    torch.testing.assert_close(Trainer([cfg, cfg.replace(init_seed=4, frac_train=0.3)], "cpu",
                                       dtype=torch.float64).evaluate(flat0, names), h, rtol=1e-12, atol=0)


def test_the_new_measures_do_not_change_training():
    """float32, bitwise: the gradient measure's extra backward pass leaves the step's gradient as it was."""
    plain = _trained([BASE.replace(n_steps=12, record_every=3)], torch.float32)
    measured = _trained([BASE.replace(n_steps=12, record_every=3, measures=NEW)], torch.float32)
    assert torch.equal(plain.flat, measured.flat)
    assert np.array_equal(plain.history.numpy(), measured.history[..., :plain.history.shape[-1]].numpy(),
                          equal_nan=True)
    h = measured.histories()[0]
    assert all(np.isfinite(h[name]).all() for name in NEW.split(","))
    assert ((h["sc_fraction"] >= 0) & (h["sc_fraction"] <= 1)).all() and (np.abs(h["nlm_cosine"]) <= 1).all()


def test_softmax_collapse_grows_as_the_loss_precision_falls():
    """Logits scaled by 40 at initialisation: the fewer the loss's bits, the more samples collapse (measured:
    0.92, 0.45 and 0 of the train samples at 16, 32 and 64 bits), and a zero loss needs a collapse."""
    sc, zero = {}, {}
    for bits in (16, 32, 64):
        h = _trained([BASE.replace(n_steps=1, output_scale=40.0, loss_precision=bits, measures=NEW)],
                     torch.float32).histories()[0]
        sc[bits], zero[bits] = h["sc_fraction"][0], h["zero_loss_fraction"][0]
    assert sc[16] > sc[32] > sc[64] == 0
    assert all(sc[b] >= zero[b] for b in sc) and zero[16] > 0


# -- batch independence of the new members, beyond test_step_extensions' registry sweep -------------------------
@pytest.mark.parametrize("member", [dict(loss="stablemax"), dict(grad_transform="orthogonal"),
                                    dict(loss_precision=16), dict(loss_precision=64, loss="stablemax"),
                                    dict(adam_eps=1e-25), dict(measures=NEW, grad_transform="orthogonal")],
                         ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()))
def test_new_members_keep_runs_apart(member):
    assert _independent(BASE.replace(**member))


def test_orthogonal_grad_changes_training():
    a = _trained([BASE.replace(n_steps=5)])
    b = _trained([BASE.replace(n_steps=5, grad_transform="orthogonal")])
    assert not torch.equal(a.flat, b.flat)


# -- config: refusals, keys ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,words", [
    (dict(loss="softermax"), ["loss='softermax'", "'stablemax'"]),
    (dict(loss_precision=8), ["loss_precision=8", "16, 32, 64"]),
    (dict(loss_precision=128), ["loss_precision=128"]),
    (dict(loss_precision="32"), ["loss_precision='32'", "an integer"]),
    (dict(loss="ce64", loss_precision=16), ["loss_precision=16", "ce64", "loss='ce'"]),
    (dict(adam_eps=0), ["adam_eps=0.0", "> 0"]),
    (dict(adam_eps=-1e-8), ["adam_eps=-1e-08", "> 0"]),
    (dict(grad_transform="perp"), ["grad_transform='perp'", "'orthogonal'"]),
    (dict(measures="sc"), ["measures='sc'", "'sc_fraction'"]),
])
def test_bad_values_are_refused_before_training(kw, words):
    with pytest.raises(ValueError) as err:
        BASE.replace(**kw)
    for w in words:
        assert w in str(err.value)


def test_new_fields_enter_the_key_only_away_from_their_defaults():
    assert {"loss_precision", "adam_eps"} <= set(RunConfig.LATER_FIELDS)
    old = {k: v for k, v in BASE.to_dict().items() if k not in ("loss_precision", "adam_eps")}
    assert RunConfig.from_dict(old) == BASE and RunConfig.from_dict(old).key() == BASE.key()
    assert BASE.replace(loss_precision=32, adam_eps=1e-8).key() == BASE.key()
    keys = {BASE.replace(**kw).key() for kw in (dict(), dict(loss_precision=16), dict(loss_precision=64),
                                                 dict(adam_eps=1e-25), dict(loss="stablemax"),
                                                 dict(grad_transform="orthogonal"))}
    assert len(keys) == 6
    assert BASE.to_dict()["adam_eps"] == 1e-8                  # logged with the run's config
    assert BASE.batch_key() != BASE.replace(loss_precision=16).batch_key() != BASE.replace(adam_eps=1e-25).batch_key()


def test_a_checkpoint_written_before_the_new_fields_resumes(tmp_path):
    cfg = BASE.replace(n_steps=6)
    t = Trainer([cfg], "cpu")
    t.run(stop_at=3, progress=False)
    state = t.state_dict()
    state["configs"] = [{k: v for k, v in c.items() if k not in ("loss_precision", "adam_eps")}
                        for c in state["configs"]]
    fresh = Trainer([cfg], "cpu")
    fresh.load_state_dict(state)
    assert fresh.step == 3 and torch.equal(fresh.flat, t.flat)
