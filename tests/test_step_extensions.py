"""The training step's extension points keep runs apart, and a new member is one registry entry.

For every registered member of every extension point (loss, optimiser, gradient transform, parameter
mask, output scale, label transform), a run trained beside a batch mate is the run trained beside
another batch mate: in float64, where a mate changes only the order of sums (1e-10, as in
test_train.test_a_run_does_not_depend_on_its_batch_mates). The same check fails for a transform
that couples runs through a norm over the stacked tensor.
"""
import numpy as np
import pytest
import torch

from grok_core import losses, tasks, updates
from grok_core.config import RunConfig
from grok_core.train import Trainer

BASE = RunConfig(p=11, d_model=16, n_heads=2, d_mlp=32, frac_train=0.5, n_steps=40, lr=3e-3)
MATES = (dict(init_seed=7, split_seed=3, lr=1e-2), dict(init_seed=9, fn="mul", wd=0.3))


def _history(configs, r):
    t = Trainer(configs, "cpu", dtype=torch.float64)
    t.run(progress=False)
    return t.histories()[r], t.flat[r].detach()


def _independent(cfg: RunConfig) -> bool:
    """Whether cfg's run comes out the same beside either of two different batch mates."""
    (h0, w0), (h1, w1) = (_history([cfg, cfg.replace(**mate)], 0) for mate in MATES)
    same = all(np.allclose(h0[k], h1[k], rtol=1e-10, atol=1e-12, equal_nan=True) for k in h0)
    return same and torch.allclose(w0, w1, rtol=1e-10, atol=1e-12)


MEMBERS = ([dict(loss=n) for n in losses.LOSSES] + [dict(optimizer=n) for n in updates.OPTIMISERS]
           + [dict(grad_transform=n) for n in updates.GRAD_TRANSFORMS]
           + [dict(param_mask=n) for n in updates.PARAM_MASKS if n != "magnitude"]   # needs a stored base run:
           # tests/test_tickets.py trains one and checks its tickets apart from their batch mates
           + [dict(label_transform=n) for n in tasks.LABEL_TRANSFORMS] + [dict(output_scale=2.0)]
           + [dict(output_scale=4.0, output_centre=True, measures="param_move")])


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()))
def test_each_member_keeps_runs_apart(member):
    assert _independent(BASE.replace(**member))


def _by_global_norm(grad, params, layout):
    """A transform that couples runs: one norm over the whole [run, n_params] tensor."""
    return grad / grad.norm()


def _halve(grad, params, layout):
    return grad * 0.5


def test_the_check_tells_a_coupling_transform_apart(monkeypatch):
    monkeypatch.setitem(updates.GRAD_TRANSFORMS, "global_norm", _by_global_norm)
    assert not _independent(BASE.replace(grad_transform="global_norm"))


def test_a_new_member_is_one_registry_entry(monkeypatch):
    """Registering a gradient transform is all it takes: the config accepts it, the key tells it apart,
    and training applies it (halving the gradient changes AdamW's path only through eps)."""
    monkeypatch.setitem(updates.GRAD_TRANSFORMS, "halve", _halve)
    cfg = BASE.replace(grad_transform="halve", lr=1e-2)
    assert cfg.key() != BASE.key()
    assert _independent(cfg)
    a, _ = _history([cfg.replace(n_steps=5)], 0)
    b, _ = _history([BASE.replace(lr=1e-2, n_steps=5)], 0)
    assert not np.array_equal(a["train_loss"][1:], b["train_loss"][1:])


def test_output_scale_multiplies_the_logits():
    t1, t2 = (Trainer([BASE.replace(output_scale=s)], "cpu", dtype=torch.float64) for s in (1.0, 3.0))
    w = t1._weights(t1.flat)
    torch.testing.assert_close(t2._logits(w, t2.data.test_ij), 3.0 * t1._logits(w, t1.data.test_ij),
                               rtol=1e-14, atol=0)


def test_a_centred_output_starts_at_zero_and_moves_by_the_scaled_change():
    """alpha (f(theta) - f(theta_0)): zero logits at initialisation, and at other weights alpha times the change."""
    plain, centred = (Trainer([BASE.replace(output_scale=s, output_centre=c)], "cpu", dtype=torch.float64)
                      for s, c in ((1.0, False), (3.0, True)))
    w0 = plain._weights(plain.flat)
    assert torch.equal(centred._logits(w0, centred.data.test_ij, centred.base_test), torch.zeros_like(centred.base_test))
    w1 = plain._weights(plain.flat * 1.1)
    torch.testing.assert_close(centred._logits(w1, centred.data.test_ij, centred.base_test),
                               3.0 * (plain._logits(w1, plain.data.test_ij) - plain._logits(w0, plain.data.test_ij)),
                               rtol=1e-12, atol=1e-12)
    assert BASE.replace(output_centre=False).key() == BASE.key() != BASE.replace(output_centre=True).key()


def test_param_move_is_the_relative_distance_from_initialisation():
    t = Trainer([BASE.replace(measures="param_move", n_steps=3)], "cpu", dtype=torch.float64)
    t.run(progress=False)
    h = t.histories()[0]
    assert h["param_move"][0] == 0.0
    with torch.no_grad():
        moved = t.flat0 * 1.5
    assert t.evaluate(moved, ("param_move",))[0, 0].item() == pytest.approx(0.5, rel=1e-12)


def test_a_label_transform_changes_train_labels_only(monkeypatch):
    monkeypatch.setitem(tasks.LABEL_TRANSFORMS, "shift", lambda y, cfg: (y + 1) % cfg.p)
    plain, shifted = (Trainer([BASE.replace(label_transform=n)], "cpu") for n in ("none", "shift"))
    n = int((plain.data.train_w[0] > 0).sum())
    assert torch.equal(shifted.data.train_labels[0, :n], (plain.data.train_labels[0, :n] + 1) % BASE.p)
    assert torch.equal(shifted.data.test_labels, plain.data.test_labels)


def test_a_parameter_mask_freezes_masked_parameters_at_zero(monkeypatch):
    def every_other(cfg, model):
        return (torch.arange(model.layout.size) % 2).double()
    monkeypatch.setitem(updates.PARAM_MASKS, "every_other", every_other)
    t = Trainer([BASE.replace(param_mask="every_other", n_steps=10), BASE.replace(n_steps=10)], "cpu")
    t.run(progress=False)
    assert (t.flat[0, ::2] == 0).all() and (t.flat[0, 1::2] != 0).any()
    assert (t.flat[1, ::2] != 0).any()                     # its batch mate has no mask
