"""Checkpoints: sealed with a sha256 of their bytes and checked whole before any trainer state changes; an
unusable one is moved aside and training restarts from step 0; a full disk keeps the previous one; a signal
checkpoints the step in flight; a batch killed while its runs are being stored retrains nothing."""
import errno
import os
import signal

import numpy as np
import pytest
import torch

from grok_core.config import RunConfig
from grok_core.runner import load_or_train
from grok_core.store import CheckpointError, RunStore, TrainingInterrupted, read_checkpoint, seal_checkpoint
from grok_core.train import Trainer

TINY = dict(p=7, d_model=8, n_heads=2, d_mlp=16, frac_train=0.5, n_steps=12)


def half_trained(path, cfgs=None, step=5) -> Trainer:
    t = Trainer(cfgs or [RunConfig(**TINY)], "cpu")
    t.run(ckpt_path=path, stop_at=step, progress=False)
    return t


def untouched(t: Trainer) -> bool:
    """The trainer is as built: step 0, initial weights, zero moments, empty history."""
    fresh = Trainer(t.configs, "cpu")
    return (t.step == 0 and t.step_t.item() == 0 and torch.equal(t.flat.detach(), fresh.flat.detach())
            and not t.optimizer.m.any() and not t.optimizer.v.any() and bool(t.history.isnan().all()))


def test_every_sampled_bit_flip_is_refused(tmp_path):
    ck = tmp_path / "c.pt"
    half_trained(ck)
    good = ck.read_bytes()
    assert read_checkpoint(ck)[0]["step"] == 5
    for pos in np.linspace(0, len(good) - 1, 97).astype(int):
        bad = bytearray(good)
        bad[pos] ^= 1 << (pos % 8)
        ck.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError):
            read_checkpoint(ck)


@pytest.mark.parametrize("where", [0.0, 0.25, 0.5, 0.75, 0.9, -30, -1])     # share of the length, or from the end
def test_a_flipped_bit_is_refused_and_the_checkpoint_moved_aside(tmp_path, where):
    ck = tmp_path / "c.pt"
    half_trained(ck)
    data = bytearray(ck.read_bytes())
    pos = int(where * len(data)) if isinstance(where, float) else len(data) + where
    data[pos] ^= 1 << (pos % 8)
    ck.write_bytes(bytes(data))
    t = Trainer([RunConfig(**TINY)], "cpu")
    with pytest.warns(UserWarning, match=r"unreadable checkpoint .*c\.pt: .*; moved to c\.pt\.unusable-.*from step 0"):
        assert t.resume(ck) is False
    assert untouched(t) and not ck.exists() and len(list(tmp_path.glob("c.pt.unusable-*"))) == 1


def sealed(path, state: dict):
    torch.save(state, path)
    seal_checkpoint(path)


@pytest.mark.parametrize("damage, reason", [
    ("history_width", "history is"), ("history_length", "history is"), ("flat_dtype", "flat is"),
    ("m_shape", "m is"), ("step_past_end", "step 13 lies outside"), ("step_float", "step 5.0"),
    ("missing_field", "fields"), ("foreign_keys", "different set of runs"), ("old_format", "no checksum")])
def test_a_checkpoint_that_does_not_fit_changes_nothing_and_training_restarts(tmp_path, damage, reason):
    ck = tmp_path / "c.pt"
    half_trained(ck)
    state, _ = read_checkpoint(ck)
    if damage == "history_width":
        state["history"] = state["history"][..., :-1]
    elif damage == "history_length":
        state["history"] = state["history"][:, :-1]
    elif damage == "flat_dtype":
        state["flat"] = state["flat"].double()
    elif damage == "m_shape":
        state["m"] = state["m"][:, :-1]
    elif damage == "step_past_end":
        state["step"] = 13
    elif damage == "step_float":
        state["step"] = 5.0
    elif damage == "missing_field":
        del state["v"]
    elif damage == "foreign_keys":
        state["keys"] = ["0123456789abcdef"]
    if damage == "old_format":          # as older code wrote them: no configs, no seal
        torch.save({k: state[k] for k in ("keys", "step", "flat", "m", "v", "history")}, ck)
    else:
        sealed(ck, state)
    t = Trainer([RunConfig(**TINY)], "cpu")
    with pytest.warns(UserWarning, match=rf"checkpoint .*c\.pt: .*{reason}.*moved to c\.pt\.unusable-"):
        assert t.resume(ck) is False
    assert untouched(t) and not ck.exists() and len(list(tmp_path.glob("c.pt.unusable-*"))) == 1
    t.run(ckpt_path=ck, progress=False)
    fresh = Trainer([RunConfig(**TINY)], "cpu")
    fresh.run(progress=False)
    assert not t.history.isnan()[..., :4].any()
    torch.testing.assert_close(t.history, fresh.history, rtol=0, atol=0, equal_nan=True)


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_so_in_one_line(tmp_path, monkeypatch):
    ck = tmp_path / "c.pt"
    t = half_trained(ck, step=4)
    before = ck.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=r"no space left on the device for checkpoint .*c\.pt \(.* MB free\); "
                                      r"the previous checkpoint is kept") as err:
        t.run(ckpt_path=ck, ckpt_every=2, progress=False)
    assert err.value.errno == errno.ENOSPC and "\n" not in str(err.value)
    assert ck.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    monkeypatch.undo()
    again = Trainer([RunConfig(**TINY)], "cpu")
    assert again.resume(ck) and again.step == 4


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_checkpoints_the_step_in_flight(tmp_path, monkeypatch, sig):
    ck = tmp_path / "c.pt"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    step = Trainer.train_step

    def step_then_signal(self):
        step(self)
        if self.step == 7:
            os.kill(os.getpid(), sig)
    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    t = Trainer([RunConfig(**TINY)], "cpu")
    with pytest.raises(TrainingInterrupted) as got:
        t.run(ckpt_path=ck, ckpt_every=5, progress=False)
    assert (got.value.signum, got.value.step, got.value.checkpoint) == (sig, 7, ck)
    assert str(got.value) == (f"interrupted at step 7 of 12; checkpoint written to {ck}; "
                              "run the same command again to resume from there")
    assert read_checkpoint(ck)[0]["step"] == 7
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def count_steps(monkeypatch) -> list[int]:
    """The steps trained from now on, in order."""
    seen, step = [], Trainer.train_step

    def counted(self):
        seen.append(self.step)
        step(self)
    monkeypatch.setattr(Trainer, "train_step", counted)
    return seen


def test_a_batch_killed_between_storing_its_runs_retrains_nothing(store, monkeypatch, tmp_path):
    cfgs = [RunConfig(**TINY, init_seed=s) for s in range(2)]
    put = RunStore.put

    def put_then_die(self, cfg, *args, **kwargs):
        if any(self.entry(c.key()).exists() for c in cfgs):
            raise RuntimeError("killed")
        return put(self, cfg, *args, **kwargs)
    monkeypatch.setattr(RunStore, "put", put_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        load_or_train(cfgs, store=store, progress=False)
    monkeypatch.setattr(RunStore, "put", put)
    [lost] = [r for r, c in enumerate(cfgs) if store.get(c) is None]
    steps = count_steps(monkeypatch)
    [second] = load_or_train([cfgs[lost]], store=store, progress=False)     # the run not stored, alone
    assert steps == [] and not list(store.ckpt_dir.glob("*.pt"))
    monkeypatch.undo()
    fresh = load_or_train(cfgs, store=RunStore(tmp_path / "fresh"), progress=False)
    for k, v in fresh[lost].history.items():
        np.testing.assert_array_equal(second.history[k], v, err_msg=k)


def test_a_run_asked_for_alone_resumes_from_its_batchs_checkpoint(store, monkeypatch, tmp_path):
    cfgs = [RunConfig(**TINY, init_seed=s) for s in range(2)]
    half_trained(store.checkpoint_path(cfgs), cfgs, step=5)
    steps = count_steps(monkeypatch)
    [second] = load_or_train([cfgs[1]], store=store, progress=False, device="cpu")    # where half_trained ran
    assert steps == list(range(5, 12)) and store.get(cfgs[0]) is not None     # the batch is finished whole
    monkeypatch.undo()
    fresh = load_or_train(cfgs, store=RunStore(tmp_path / "fresh"), progress=False, device="cpu")
    for k, v in fresh[1].history.items():
        np.testing.assert_array_equal(second.history[k], v, err_msg=k)
