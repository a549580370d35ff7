"""Measures are registry functions; weight snapshots let a measure be computed later from the store.

A toy measure is added by one `register` call (in a real project: one function in measures.py), a
run asks for it through RunConfig.measures, and the same value comes back from the run's stored
snapshots: a snapshot at step s holds the weights before update s, which history entry s measures.
"""
import numpy as np
import pytest
import torch

from grok_core import measures
from grok_core.config import RunConfig
from grok_core.remeasure import measure_snapshots
from grok_core.runner import train_batch
from grok_core.store import RunStore
from grok_core.train import Trainer, metric_names, snapshot_steps

BASE = RunConfig(p=11, d_model=16, n_heads=2, d_mlp=32, frac_train=0.5, n_steps=30, lr=1e-2)


@pytest.fixture
def toy(monkeypatch):
    """A measure that is not recorded by default: the largest |logit| scale proxy, max |W_U| per run."""
    monkeypatch.setitem(measures.MEASURES, "max_unembed",
                        measures.Measure(lambda ctx: ctx.w["W_U"].abs().flatten(1).amax(1), default=False))
    return "max_unembed"


def test_history_names_follow_the_registry():
    assert metric_names(BASE) == ("train_loss", "test_loss", "train_acc", "test_acc", "block_acc", "leftover_acc",
                                  "med", "med_ref", "weight_norm")
    assert metric_names(BASE.replace(model="mlp")) == metric_names(BASE) + ("med_hidden",)


def test_a_toy_measure_is_recorded_when_a_run_asks(toy):
    cfg = BASE.replace(measures=toy)
    assert cfg.key() != BASE.key() and metric_names(cfg)[-1] == toy
    t = Trainer([cfg], "cpu")
    t.run(progress=False)
    h = t.histories()[0]
    assert np.isfinite(h[toy]).all() and len(h[toy]) == cfg.n_steps
    with pytest.raises(ValueError, match="measures='nonesuch' is not allowed"):
        BASE.replace(measures="nonesuch")


def test_snapshot_steps_are_log_spaced_and_start_at_zero():
    assert snapshot_steps(BASE.replace(n_steps=1000, snapshots=5)).tolist() == [0, 1, 10, 100, 1000]
    assert snapshot_steps(BASE.replace(n_steps=1000, snapshots=2)).tolist() == [0, 1000]      # the final weights
    assert snapshot_steps(BASE.replace(n_steps=1000, snapshots=1)).tolist() == [0]
    assert snapshot_steps(BASE.replace(n_steps=30, snapshots=40)).tolist()[:3] == [0, 1, 2]
    assert snapshot_steps(BASE.replace(n_steps=30, snapshots=40))[-1] == 30
    assert snapshot_steps(BASE).tolist() == []
    assert snapshot_steps(BASE.replace(snapshots=1)).tolist() == [0]


def test_snapshots_do_not_change_training():
    a, b = Trainer([BASE], "cpu"), Trainer([BASE.replace(snapshots=6)], "cpu")
    a.run(progress=False)
    b.run(progress=False)
    assert torch.equal(a.flat, b.flat) and np.array_equal(a.history.numpy(), b.history.numpy(), equal_nan=True)
    assert torch.equal(b.snaps[0, -1], b.flat[0].detach())        # the last snapshot: the final weights


def test_a_measure_added_later_is_computed_from_stored_snapshots(tmp_path, toy):
    store = RunStore(tmp_path)
    cfg = BASE.replace(snapshots=5)
    (run,) = train_batch([cfg], store, device="cpu", progress=False)
    got = measure_snapshots(store, cfg, ("test_acc", "weight_norm", toy))
    steps = got["step"].tolist()
    assert steps == snapshot_steps(cfg).tolist()
    # recorded in training at the same steps (the last snapshot is after the last update: no history entry)
    for name in ("test_acc", "weight_norm"):
        np.testing.assert_allclose(got[name][:-1], run.history[name][steps[:-1]], rtol=1e-6, atol=1e-7, err_msg=name)
    recorded = Trainer([cfg.replace(measures=toy)], "cpu")
    recorded.run(progress=False)
    np.testing.assert_allclose(got[toy][:-1], recorded.histories()[0][toy][steps[:-1]], rtol=1e-6)


def test_snapshots_survive_a_resume(tmp_path):
    cfg = BASE.replace(snapshots=8, n_steps=40)
    full = Trainer([cfg], "cpu")
    full.run(progress=False)
    ckpt = tmp_path / "ckpt.pt"
    Trainer([cfg], "cpu").run(ckpt_path=ckpt, stop_at=17, progress=False)
    again = Trainer([cfg], "cpu")
    assert again.resume(ckpt) and again.run(progress=False)
    assert torch.equal(again.snaps, full.snaps)


def test_float16_snapshots_are_stored_as_float16(tmp_path):
    store = RunStore(tmp_path)
    cfg = BASE.replace(snapshots=3, snapshot_dtype="float16")
    train_batch([cfg], store, device="cpu", progress=False)
    snaps = store.snapshots(cfg)
    assert snaps["weights"].dtype == torch.float16 and snaps["weights"].shape[0] == len(snapshot_steps(cfg))


def test_a_run_without_snapshots_says_so(tmp_path):
    store = RunStore(tmp_path)
    train_batch([BASE], store, device="cpu", progress=False)
    with pytest.raises(ValueError, match="no stored snapshots"):
        measure_snapshots(store, BASE, ("test_acc",))
