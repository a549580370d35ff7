"""Run store: round trip, atomic entries, corrupt entries detected and recomputed, lookups without training."""
import gc
import json
import warnings
import weakref

import numpy as np
import pytest
import torch

from grok_core.config import RunConfig
from grok_core.models import build_model
from grok_core.runner import load_or_train, train_batch
from grok_core.store import RunStore
from grok_core.train import Trainer

SMALL = dict(p=7, d_model=8, n_heads=2, d_mlp=16, frac_train=0.5, n_steps=6)


def fake_history(n=6):
    return {"step": np.arange(n, dtype=np.int32), "train_acc": np.linspace(0, 1, n, dtype=np.float32),
            "test_acc": np.zeros(n, np.float32)}


def test_round_trip_and_metadata(store):
    cfg = RunConfig(**SMALL)
    store.put(cfg, fake_history(), {"device": "cpu"})
    run = store.get(cfg)
    assert run.config == cfg and run.meta["device"] == "cpu" and run.meta["key"] == cfg.key()
    np.testing.assert_array_equal(run.history["train_acc"], fake_history()["train_acc"])
    assert store.get(cfg.replace(init_seed=1)) is None
    assert [m["key"] for m in store.list()] == [cfg.key()]


def test_put_leaves_no_temporary_files_and_replaces_atomically(store):
    cfg = RunConfig(**SMALL)
    store.put(cfg, fake_history())
    store.put(cfg, fake_history(3))
    assert len(store.get(cfg).history["step"]) == 3
    assert sorted(p.name for p in store.runs_dir.iterdir()) == [cfg.key()]


@pytest.mark.parametrize("damage", ["truncate_history", "flip_byte", "drop_meta", "bad_json", "wrong_key"])
def test_damaged_entry_is_quarantined_and_recomputed(store, damage):
    cfg = RunConfig(**SMALL)
    [first] = load_or_train([cfg], store=store, progress=False)
    d = store.entry(cfg.key())
    if damage == "truncate_history":
        (d / "history.npz").write_bytes((d / "history.npz").read_bytes()[:50])
    elif damage == "flip_byte":
        b = bytearray((d / "history.npz").read_bytes())
        b[len(b) // 2] ^= 0xFF
        (d / "history.npz").write_bytes(bytes(b))
    elif damage == "drop_meta":
        (d / "meta.json").unlink()
    elif damage == "bad_json":
        (d / "meta.json").write_text("{")
    else:
        meta = json.loads((d / "meta.json").read_text())
        meta["config"]["p"] = 11
        (d / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="damaged"):
        assert store.get(cfg) is None
    assert any(p.name.startswith(cfg.key() + ".corrupt") for p in store.runs_dir.iterdir())
    [again] = load_or_train([cfg], store=store, progress=False)
    np.testing.assert_array_equal(again.history["test_loss"], first.history["test_loss"])


def test_lookup_returns_stored_runs_without_training(store, monkeypatch):
    cfgs = [RunConfig(**SMALL, init_seed=s) for s in range(3)]
    runs = load_or_train(cfgs, store=store, progress=False)
    assert [r.config for r in runs] == cfgs
    assert runs[0].meta["batch_size"] == 3 and runs[0].meta["torch"]

    def boom(*a, **k):
        raise AssertionError("should not train")
    monkeypatch.setattr("grok_core.runner.train_batch", boom)
    again = load_or_train(cfgs, store=store)
    for a, b in zip(runs, again):
        np.testing.assert_array_equal(a.history["test_acc"], b.history["test_acc"])
    with pytest.raises(LookupError, match="not in the store"):
        load_or_train([RunConfig(**SMALL, init_seed=9)], store=store, train=False)


def test_bad_split_fails_before_any_training(store, monkeypatch):
    monkeypatch.setattr("grok_core.runner.train_batch", lambda *a, **k: pytest.fail("trained"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = RunConfig(p=7, split="strip", split_param=5, frac_train=0.9, n_steps=2)  # train = remainder
    with pytest.warns(UserWarning, match="fewer than"):
        with pytest.raises(LookupError):
            load_or_train([bad], store=store, train=False)


def test_results_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKBOOK_RESULTS", str(tmp_path / "elsewhere"))
    assert RunStore().root == tmp_path / "elsewhere"


def test_final_weights_are_stored_on_request(store):
    cfg = RunConfig(**SMALL)
    load_or_train([cfg], store=store, progress=False, save_weights=True)
    model = build_model(cfg)
    w = store.weights(cfg)
    assert w is not None and w.shape == (model.layout.size,)
    assert not torch.equal(w, model.init_params(cfg))            # the trained weights, not the init
    assert store.weights(cfg.replace(init_seed=5)) is None


def test_a_batch_frees_the_last_batchs_trainer_before_it_allocates(store):
    """A Trainer refers to itself through its step functions, so dropping it frees nothing until the garbage
    collector runs; a batch trained after a large one would otherwise hold both in device memory."""
    gc.disable()
    try:
        old = Trainer([RunConfig(**SMALL)], "cpu")
        gone = weakref.ref(old)
        del old
        assert gone() is not None                       # still held by its own cycle
        train_batch([RunConfig(**SMALL, init_seed=1)], store, "cpu", progress=False)
        assert gone() is None
    finally:
        gc.enable()
