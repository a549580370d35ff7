"""The progress-measure pipeline's training: a batch cut off while storing a run resumes from its checkpoint, and the
records are those of an uninterrupted pipeline (same CPU, same arithmetic: equal)."""
import numpy as np
import pytest

from grok_core import progress
from grok_core.config import RunConfig

# p = 11 passes 0.3 test accuracy at different steps in different seeds (tests/test_stopping.py)
BASE = RunConfig(p=11, d_model=16, n_heads=2, d_mlp=32, frac_train=0.6, n_steps=160, lr=1e-2, record_dense=50,
                 record_every=3, snapshots=4, stop_acc=0.3, stop_hold=20, stop_after=7)
SEEDS = [BASE.replace(init_seed=s, split_seed=s) for s in range(4)]


class Cut(Exception):
    pass


def test_a_pipeline_cut_off_while_storing_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    whole = progress.store(tmp_path / "whole")
    progress.train_and_measure(SEEDS, whole, "cpu", most_expensive=1, ckpt_every=10)
    want = progress.load_records(SEEDS, whole)
    stops = sorted(r.meta.get("stopped_at") or BASE.n_steps for r in want)
    assert stops[0] < stops[-1]                            # runs stop at different steps: one is cut off mid-batch

    cut = progress.store(tmp_path / "cut")
    real, calls = progress._store_measured, []

    def store_or_cut(*args):
        calls.append(1)
        if len(calls) == 2:
            raise Cut
        return real(*args)
    monkeypatch.setattr(progress, "_store_measured", store_or_cut)
    with pytest.raises(Cut):
        progress.train_and_measure(SEEDS, cut, "cpu", most_expensive=1, ckpt_every=10)
    assert sum(cut.entry(c.key()).exists() for c in SEEDS) == 1 and any(cut.ckpt_dir.glob("*.pt"))
    monkeypatch.setattr(progress, "_store_measured", real)
    assert progress.train_and_measure(SEEDS, cut, "cpu", most_expensive=1, ckpt_every=10).startswith("3 runs")
    assert not any(cut.ckpt_dir.glob("*.pt"))
    for a, b in zip(want, progress.load_records(SEEDS, cut)):
        assert a.meta.get("stopped_at") == b.meta.get("stopped_at")
        assert a.history.keys() == b.history.keys()
        for name in a.history:
            assert np.array_equal(a.history[name], b.history[name], equal_nan=True), name
    resumed = [r for r in progress.load_records(SEEDS, cut) if "resumed_at_step" in r.meta]
    assert resumed and all(r.meta["resumed_at_step"] % 10 == 0 for r in resumed)
