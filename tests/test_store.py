"""Run store: round trip, atomic entries (the first writer of a key wins), corrupt entries detected and
recomputed (never an entry being replaced), listings of sound entries only, a read-only store refused
before training, lookups without training."""
import errno
import gc
import json
import multiprocessing
import os
import shutil
import time
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


def test_put_leaves_no_temporary_files_and_the_first_entry_stays(store):
    """An entry never changes once it is there: a second put of its key returns the stored entry."""
    cfg = RunConfig(**SMALL)
    store.put(cfg, fake_history())
    again = store.put(cfg, fake_history(3))
    assert len(again.history["step"]) == 6 and len(store.get(cfg).history["step"]) == 6
    assert sorted(p.name for p in store.runs_dir.iterdir()) == [cfg.key()]


def test_list_holds_only_sound_entries_and_damaged_names_the_rest(store):
    a, b = RunConfig(**SMALL), RunConfig(**SMALL, init_seed=1)
    for c in (a, b):
        store.put(c, fake_history())
    for name in (f".tmp-{a.key()}-1-2", f".old-{a.key()}-1-3", f"{a.key()}.corrupt-4", "not-a-key"):
        shutil.copytree(store.entry(a.key()), store.runs_dir / name)      # leftovers that hold a sound meta.json
    for key, meta in (("0123456789abcdef", "[1, 2]"), ("fedcba9876543210", json.dumps({"key": "fedcba9876543210"}))):
        (store.runs_dir / key).mkdir()
        (store.runs_dir / key / "meta.json").write_text(meta)
    assert [m["key"] for m in store.list()] == sorted([a.key(), b.key()])
    assert store.damaged() == [("0123456789abcdef", "meta.json holds a list, not a mapping"),
                               ("fedcba9876543210", "meta.json has no config")]


def test_two_quarantines_of_one_key_in_one_second(store, monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1.7e9)
    cfg = RunConfig(**SMALL)
    for n in (3, 4):
        store.put(cfg, fake_history(n))
        (store.entry(cfg.key()) / "history.npz").write_bytes(b"damaged")
        with pytest.warns(UserWarning, match="damaged"):
            assert store.get(cfg) is None
    assert len(list(store.runs_dir.glob(cfg.key() + ".corrupt-*"))) == 2


def test_a_reader_never_moves_aside_an_entry_replaced_while_it_reads(store, monkeypatch):
    """The reader finds the entry damaged; meanwhile another process moves it aside and stores a sound one.
    The reader must return the sound one, not take it for the damaged one."""
    cfg = RunConfig(**SMALL)
    store.put(cfg, fake_history())
    d = store.entry(cfg.key())
    (d / "history.npz").write_bytes(b"damaged")
    read, replaced = RunStore._read, []

    def read_while_replaced(self, key, *args):
        try:
            return read(self, key, *args)
        finally:
            if not replaced:
                replaced.append(os.rename(d, d.with_name(cfg.key() + ".corrupt-elsewhere")))
                store.put(cfg, fake_history(4))
    monkeypatch.setattr(RunStore, "_read", read_while_replaced)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = store.get(cfg)
    assert run is not None and len(run.history["step"]) == 4
    assert sorted(p.name for p in store.runs_dir.iterdir()) == [cfg.key(), cfg.key() + ".corrupt-elsewhere"]


def _hammer(root: str, role: str, n: int) -> list[str]:
    """n puts or gets of one key; what went wrong (exceptions, warnings), as text."""
    store, cfg, problems = RunStore(root), RunConfig(**SMALL), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(n):
            try:
                run = store.put(cfg, fake_history()) if role == "put" else store.get(cfg)
                if run is not None and len(run.history["step"]) != 6:
                    problems.append("a short history")
            except Exception as err:   # noqa: BLE001 -- every failure is reported
                problems.append(f"{type(err).__name__}: {err}")
    return problems + [str(w.message) for w in caught]


@pytest.mark.slow
def test_concurrent_writers_and_readers_of_one_key(tmp_path):
    """Two processes storing one run over and over while two read it: no error, nothing moved aside, one entry."""
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        problems = pool.starmap(_hammer, [(str(tmp_path), "put", 60)] * 2 + [(str(tmp_path), "get", 150)] * 2)
    assert problems == [[]] * 4
    store, cfg = RunStore(tmp_path), RunConfig(**SMALL)
    assert [p.name for p in store.runs_dir.iterdir()] == [cfg.key()]
    assert len(store.get(cfg).history["step"]) == 6


def test_a_read_only_store_is_refused_before_anything_trains(tmp_path, monkeypatch):
    root = tmp_path / "read-only"
    root.mkdir()
    root.chmod(0o555)
    monkeypatch.setattr(Trainer, "train_step", lambda self: pytest.fail("trained before finding the store read-only"))
    if os.access(root, os.W_OK):           # as root permissions do not bind: refuse writing files there instead
        real_open = os.open

        def refuse(path, *args, **kwargs):
            if str(path).startswith(str(root)):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)
        monkeypatch.setattr(os, "open", refuse)
    try:
        with pytest.raises(OSError, match=r"run store at .* is not writable \(.*Permission denied\); nothing was trained"):
            load_or_train([RunConfig(**SMALL)], store=RunStore(root), device="cpu", progress=False)
    finally:
        root.chmod(0o755)


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


def test_results_at_names_the_root_within_its_block_only(tmp_path, monkeypatch):
    from grok_core.store import ENV_VAR, results_at, results_root
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "a"))
    with results_at(tmp_path / "b"):
        assert results_root() == tmp_path / "b" and RunStore().root == tmp_path / "b"
    assert results_root() == tmp_path / "a"
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(RuntimeError):
        with results_at(tmp_path / "c"):
            raise RuntimeError("inside")
    assert ENV_VAR not in os.environ
