"""Per-run stopping: the rule, and a batch whose runs stop at their own steps and leave it (compaction) giving each
run exactly what it gives trained alone to its stop; checkpoints and the store keep every stopped run.

Alone against batched is "the same arithmetic in another order" (other batch mates pad the train rows to other
lengths, so the matmuls have other shapes): compared in float64 at TOL = 1e-10, float64's epsilon times 1e6, as
derived in test_speed_faithfulness. The stop steps are compared exactly: they are read from test accuracies,
fractions of the test rows, which move only if some logit margin is within ~1e-10 of a tie.
Resumed against uninterrupted, and stopping against the same run without a rule, are the same operations on one
machine: bitwise.
"""
import shutil

import numpy as np
import pytest
import torch

from grok_core.batch import BatchData
from grok_core.config import RunConfig
from grok_core.kernels import RowIndex
from grok_core.runner import load_or_train
from grok_core.stopping import StopRule, check_interval
from grok_core.store import RunStore, read_checkpoint, seal_checkpoint
from grok_core.train import Trainer

TOL = 1e-10
F64 = torch.float64
# p = 11 grows test accuracy past 0.3 at different steps in different seeds, and never in others (checked below)
RULE = dict(stop_acc=0.3, stop_hold=20, stop_after=7)
BASE = RunConfig(p=11, d_model=16, n_heads=2, d_mlp=32, frac_train=0.6, n_steps=160, lr=1e-2,
                 record_dense=50, record_every=3, snapshots=4, **RULE)
SEEDS = [BASE.replace(init_seed=s, split_seed=s) for s in range(6)]
NO_RULE = {k: 0 for k in RULE}


def outcomes(trainer: Trainer) -> dict:
    """key -> RunResult of every run the trainer has trained to its end (after run())."""
    return {r.config.key(): r for r in trainer.stopped + trainer.results()}


def train(configs, dtype=torch.float32, **kw) -> Trainer:
    t = Trainer(configs, "cpu", dtype=dtype, **kw)
    t.run(progress=False)
    return t


def live_sizes(trainer: Trainer) -> list[int]:
    """Train step by step; the batch's row count after each step."""
    sizes = []
    while not trainer.done:
        trainer.train_step()
        sizes.append(len(trainer.rows))
    return sizes


def assert_same_run(a, b, tol=0.0):
    assert a.stop == b.stop
    assert a.history.keys() == b.history.keys()
    for k in a.history:
        np.testing.assert_allclose(a.history[k], b.history[k], rtol=tol, atol=tol * 1e-2, equal_nan=True, err_msg=k)
    torch.testing.assert_close(a.weights, b.weights, rtol=tol, atol=tol * 1e-2)
    assert (a.snapshots is None) == (b.snapshots is None)
    if a.snapshots is not None:
        assert torch.equal(a.snapshots["step"], b.snapshots["step"])
        torch.testing.assert_close(a.snapshots["weights"], b.snapshots["weights"], rtol=tol, atol=tol * 1e-2)


# -- the rule -------------------------------------------------------------------------------------------------
def rule_after(accs, steps=None, **kw) -> StopRule:
    r = StopRule(RunConfig(p=5, n_steps=100, **(RULE | kw)))
    r.see(steps if steps is not None else range(len(accs)), accs)
    return r


def test_the_hold_is_met_once_it_has_lasted_stop_hold_steps():
    accs = [0.1] * 10 + [0.5] * 20 + [0.2] + [0.5] * 25
    r = rule_after(accs)
    assert (r.held_from, r.met_at, r.stop_at) == (31, 51, 51 + 1 + 7)           # the dip at step 30 restarts it
    assert rule_after([0.1, 0.3, 0.2], stop_hold=0).met_at == 1                 # >= counts, read as recorded
    assert rule_after([0.5] * 20).met_at is None                                # steps 0..19 hold 19 steps only
    assert rule_after([float("nan")] * 50).met_at is None
    thin = rule_after([0.5] * 5, steps=[0, 10, 20, 30, 40])                     # recorded steps only
    assert (thin.held_from, thin.met_at) == (0, 20)


def test_a_stop_at_or_past_the_budget_is_no_stop():
    r = rule_after([0.5] * 95, stop_after=3)
    assert r.met_at == 20 and r.stop_at == 24
    late = rule_after([0.1] * 79 + [0.5] * 21, stop_after=0)
    assert late.met_at == 99 and late.stop_at is None and late.meta()["stopped_at"] is None
    assert "n_steps reached; the hold was met at step 99" in late.meta()["stop_reason"]
    assert rule_after([0.1] * 5).meta() == {
        "stopped_at": None, "stop_held": None,
        "stop_reason": "n_steps reached; the rule (test_acc >= 0.3 at every recorded step for 20 steps, then 7 more "
                       "steps) was not met"}


def test_the_accuracy_is_read_often_enough_to_stop_on_time():
    assert check_interval([BASE]) == 8 and check_interval([BASE.replace(stop_after=5000)]) == 100
    assert check_interval([BASE.replace(stop_after=0), BASE.replace(**{k: 0 for k in RULE})]) == 1


# -- batches --------------------------------------------------------------------------------------------------
def test_a_batch_with_stops_gives_each_run_what_it_gives_alone_and_shrinks():
    mates = [SEEDS[0].replace(frac_train=0.4, init_seed=9), SEEDS[1].replace(**NO_RULE)]   # other padding, no rule
    batch = Trainer(SEEDS + mates, "cpu", dtype=F64)
    sizes = live_sizes(batch)
    got = outcomes(batch)
    stops = sorted(r.stop["stopped_at"] for r in got.values() if r.stop and r.stop["stopped_at"] is not None)
    assert len(set(stops)) >= 3 and len(stops) < len(SEEDS) + 1       # runs stop at three steps; others do not
    # each stop takes its run out of the batch at its step: one fewer row from then on
    assert [sizes[s - 1] for s in stops] == list(range(len(SEEDS) + 2 - 1, len(SEEDS) + 2 - 1 - len(stops), -1))
    assert sizes[-1] == len(SEEDS) + 2 - len(stops) and batch.step == BASE.n_steps
    for c in SEEDS + mates:
        alone = outcomes(train([c], F64))[c.key()]
        assert_same_run(got[c.key()], alone, TOL)
        assert len(got[c.key()].history["step"]) == int((batch.record_steps < (alone.stop.get("stopped_at") or 10 ** 9)).sum())


def test_compaction_keeps_the_initial_state_that_centred_outputs_and_measures_read():
    """output_centre subtracts each run's initial logits on its (padded) rows and param_move reads its initial
    weights: both are gathered with the runs (and the logits cut to the new padding: train shares 0.6 and 0.5 pad to
    128 and 64 rows, so the batch's padding shrinks when the one run of 0.6, which stops, leaves)."""
    cfgs = [c.replace(output_centre=True, measures="param_move", stop_acc=0.2, frac_train=0.6 if i == 2 else 0.5)
            for i, c in enumerate(SEEDS)]
    batch = Trainer(cfgs, "cpu", dtype=F64)
    padded = batch.data.train_idx.shape[1]
    sizes = live_sizes(batch)
    assert min(sizes) < len(cfgs) and batch.data.train_idx.shape[1] < padded
    for c in cfgs:
        assert_same_run(outcomes(batch)[c.key()], outcomes(train([c], F64))[c.key()], TOL)


def test_a_stopped_run_is_the_run_without_a_rule_cut_at_its_stop_step():
    """stopped_at T: the weights after T updates, the history of the recorded steps before T, the snapshots up to T
    (and the weights one step later are another run's, far beyond TOL)."""
    cfg = SEEDS[0]
    stopped = outcomes(train([cfg]))[cfg.key()]
    T = stopped.stop["stopped_at"]
    assert T is not None and stopped.stop["stop_held"][1] + 1 + cfg.stop_after == T
    plain = Trainer([cfg.replace(**NO_RULE)], "cpu")
    plain.run(stop_at=T, progress=False)
    assert torch.equal(stopped.weights, plain.flat[0].detach())
    later = Trainer([cfg.replace(**NO_RULE)], "cpu")
    later.run(stop_at=T + 1, progress=False)
    assert not torch.allclose(stopped.weights, later.flat[0].detach(), rtol=1e3 * TOL, atol=0)
    for k, v in plain.histories()[0].items():
        np.testing.assert_array_equal(stopped.history[k], v, err_msg=k)
    assert stopped.snapshots["step"].tolist() == [s for s in plain.snapshot_steps.tolist() if s <= T]


def test_a_batch_without_a_rule_or_whose_rule_never_fires_trains_as_before(monkeypatch):
    plain = [c.replace(**NO_RULE) for c in SEEDS[:3]]
    unmet = [c.replace(stop_acc=1.0) for c in SEEDS[:3]]
    monkeypatch.setattr(Trainer, "_follow_rules", lambda self: pytest.fail("a batch without a rule read its history"))
    a = train(plain)
    monkeypatch.undo()
    b = train(unmet)
    assert b.rows == [0, 1, 2] and not b.stopped
    assert torch.equal(a.flat, b.flat)
    torch.testing.assert_close(a.history, b.history, rtol=0, atol=0, equal_nan=True)
    assert "rows" not in a.state_dict() and a.state_dict().keys() | {"rows", "finished"} == b.state_dict().keys()


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_a_checkpoint_after_stops_resumes_to_the_same_runs(tmp_path, share):
    """Interrupted after two runs stopped (with share 0.5 the stopped rows are still in the batch), resumed by a new
    Trainer: every run as uninterrupted, and each stopped run handed over once, before the checkpoint counting it."""
    full = train(SEEDS, compact_share=share)
    first_stops = sorted(r.stop["stopped_at"] for r in full.stopped)[:2]
    ck = tmp_path / "c.pt"
    handed = []

    def keep(result):
        handed.append(result.config.key())
        assert not ck.exists() or result.config.key() not in stopped_in(ck)
    part = Trainer(SEEDS, "cpu", compact_share=share)
    assert part.run(ckpt_path=ck, ckpt_every=5, stop_at=first_stops[1] + 3, on_finish=keep, progress=False) is False
    state = read_checkpoint(ck)[0]
    assert len(state["finished"]) == 2 and len(state["rows"]) == (6 - 2 if share == 0 else 6)
    again = Trainer(SEEDS, "cpu", compact_share=share)
    assert again.resume(ck) and again.step == first_stops[1] + 3 and again.rows == state["rows"]
    again.run(ckpt_path=ck, ckpt_every=5, on_finish=keep, progress=False)
    assert sorted(handed) == sorted(r.config.key() for r in full.stopped)
    resumed = {r.config.key(): r for r in part.stopped + again.stopped + again.results()}
    for key, r in outcomes(full).items():
        assert_same_run(resumed[key], r)


def stopped_in(ck) -> set[str]:
    state = read_checkpoint(ck)[0]
    return {state["keys"][i] for i in state["finished"]}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    """Checkpoints at step 150, after three stops: compacted (share 0) and with the stopped rows still in (share 1)."""
    out = {}
    for share in (0.0, 1.0):
        ck = tmp_path_factory.mktemp("ck") / "c.pt"
        Trainer(SEEDS, "cpu", compact_share=share).run(ckpt_path=ck, ckpt_every=5, stop_at=150,
                                                       on_finish=lambda r: None, progress=False)
        out[share] = read_checkpoint(ck)[0]
    return out


def refused(tmp_path, state: dict, reason: str):
    ck = tmp_path / "c.pt"
    torch.save(state, ck)
    seal_checkpoint(ck)
    with pytest.warns(UserWarning, match=reason):
        assert Trainer(SEEDS, "cpu").resume(ck) is False


@pytest.mark.parametrize("damage, reason", [
    (lambda s: s.update(rows=[]), "do not account for every run"),
    (lambda s: s.update(finished=s["finished"][1:]), "do not account for every run"),
    (lambda s: s.update(rows=s["rows"][::-1]), "rows is not an increasing list"),
    (lambda s: s.update(finished=[99]), "finished is not an increasing list"),
    (lambda s: s.pop("rows"), "fields"),
])
def test_a_stopping_checkpoint_that_does_not_account_for_its_runs_is_refused(tmp_path, checkpoints, damage, reason):
    state = dict(checkpoints[0.0])
    assert len(state["finished"]) >= 2 and len(state["rows"]) == len(SEEDS) - len(state["finished"])
    damage(state)
    refused(tmp_path, state, reason)


def test_a_checkpoint_missing_a_due_stop_is_refused(tmp_path, checkpoints):
    """A run whose rule says it stopped before the checkpoint's step, but which the checkpoint holds as training."""
    state = dict(checkpoints[1.0])
    assert state["rows"] == list(range(len(SEEDS)))
    gone, state["finished"] = state["finished"][0], state["finished"][1:]
    refused(tmp_path, state, f"run {gone} should have stopped at step")


def test_a_stopping_batch_checkpoints_only_with_somewhere_to_put_its_stopped_runs(tmp_path):
    with pytest.raises(ValueError, match="checkpointed only with on_finish"):
        Trainer(SEEDS[:1], "cpu").run(ckpt_path=tmp_path / "c.pt")


@pytest.mark.slow
def test_compiled_compaction_compiles_the_smaller_batch():
    """Compiled (on the CPU), the batch is cut once at least half its rows have stopped, and compiled again for the
    run left: each run as alone, eager, within TOL. (Every step recorded: one kind of step to compile per size.)"""
    cfgs = [c.replace(record_dense=0, record_every=1) for c in SEEDS[:2]]
    batch = Trainer(cfgs, "cpu", dtype=F64, compile=True)
    assert batch.compact_share == 0.5
    sizes = live_sizes(batch)
    assert sizes[0] == 2 and sizes[-1] == 1 and batch.step == BASE.n_steps
    for c in cfgs:
        assert_same_run(outcomes(batch)[c.key()], outcomes(train([c], F64))[c.key()], TOL)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("compile", [False, True])
def test_on_cuda_the_smaller_batch_is_captured_again(compile):
    """On a GPU, the step replayed as a CUDA graph (compiled too): after each compaction the graphs are captured
    again for the runs left; each run as alone on the same GPU without a graph, in float64, within TOL."""
    batch = Trainer(SEEDS, "cuda", dtype=F64, compile=compile)
    sizes = live_sizes(batch)
    assert batch.use_graph and sizes[0] == 6 and min(sizes) < 6 and batch.step == BASE.n_steps
    for c in SEEDS:
        alone = Trainer([c], "cuda", dtype=F64, cuda_graph=False)
        alone.run(progress=False)
        assert_same_run(outcomes(batch)[c.key()], outcomes(alone)[c.key()], TOL)


def test_the_data_of_a_compacted_batch_is_that_of_its_runs():
    """Gathered down to some runs, a batch's data is what those runs' own BatchData holds, tensor for tensor
    (runs of other train shares and splits: other padding), whether summed by inverse table or one-hot product."""
    cfgs = [SEEDS[0], SEEDS[1].replace(frac_train=0.3), SEEDS[2].replace(split="square", split_param=3),
            SEEDS[3].replace(split="strip", split_param=2, frac_train=0.7)]
    whole = BatchData(cfgs, torch.device("cpu"), F64)
    for rows in ([0, 2], [1, 3], [3]):
        got, want = whole.select(rows), BatchData([cfgs[r] for r in rows], torch.device("cpu"), F64)
        assert vars(got).keys() == vars(want).keys()
        for name, v in vars(want).items():
            if name.endswith("_ij"):               # RowIndex pairs (train) or tensor pairs (test)
                for a, b in zip(getattr(got, name), v):
                    a, b = (vars(x) if isinstance(x, RowIndex) else {"idx": x} for x in (a, b))
                    assert a.keys() == b.keys() and all(same(a[k], b[k]) for k in a), name
            else:
                assert same(getattr(got, name), v), name


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a.nan_to_num(-1), b.nan_to_num(-1))
    return a == b


# -- the store ------------------------------------------------------------------------------------------------
def test_stopped_runs_are_stored_at_once_and_a_kill_loses_none(store, monkeypatch, tmp_path):
    """Killed after the first stop, the stopped run is in the store already; the rerun resumes, stores the rest
    (the first not again) and gives what an uninterrupted batch gives; a stopped run lost from the store meanwhile is
    trained again."""
    cfgs = SEEDS[:4]
    fresh = {r.key: r for r in load_or_train(cfgs, store=RunStore(tmp_path / "fresh"), progress=False,
                                             ckpt_every=10)}
    first = min((r for r in fresh.values() if r.meta["stopped_at"] is not None), key=lambda r: r.meta["stopped_at"])
    step = Trainer.train_step

    def step_then_die(self):
        step(self)
        if self.step == first.meta["stopped_at"] + 12:
            raise RuntimeError("killed")
    monkeypatch.setattr(Trainer, "train_step", step_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        load_or_train(cfgs, store=store, progress=False, ckpt_every=10)
    monkeypatch.undo()
    stored = [c for c in cfgs if store.get(c) is not None]
    assert [c.key() for c in stored] == [first.key]
    entry = store.entry(first.key).stat().st_ino
    again = load_or_train(cfgs, store=store, progress=False, ckpt_every=10)
    assert store.entry(first.key).stat().st_ino == entry and not list(store.ckpt_dir.glob("*.pt"))
    for run in again:
        ref = fresh[run.key]
        assert {k: run.meta[k] for k in ("stopped_at", "stop_reason", "stop_held")} == \
               {k: ref.meta[k] for k in ("stopped_at", "stop_reason", "stop_held")}
        for k, v in ref.history.items():
            np.testing.assert_array_equal(run.history[k], v, err_msg=k)
    assert first.meta["stop_held"] and first.history["step"][-1] < first.meta["stopped_at"] < first.config.n_steps


def test_a_stopped_run_lost_from_the_store_before_the_resume_is_trained_again(store, monkeypatch):
    cfgs = SEEDS[:4]
    step = Trainer.train_step

    def step_then_die(self):
        step(self)
        if self.stopped and self.step == self.stopped[0].stop["stopped_at"] + 1:     # stored, checkpointed
            raise RuntimeError("killed")
    monkeypatch.setattr(Trainer, "train_step", step_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        load_or_train(cfgs, store=store, progress=False, ckpt_every=1)
    monkeypatch.undo()
    [first] = [c for c in cfgs if store.get(c) is not None]
    kept = store.get(first)
    shutil.rmtree(store.entry(first.key()))
    runs = load_or_train(cfgs, store=store, progress=False)
    assert [r.key for r in runs] == [c.key() for c in cfgs]
    again = store.get(first)
    assert again.meta["stopped_at"] == kept.meta["stopped_at"]
    # trained again beside the three others from their checkpoint, not beside the batch it first stopped in: the
    # float32 products then round differently (1e-5 relative after 160 steps on some CPUs, 0 on others); a wrong
    # resume (another step, other weights) moves the losses by far more than 1e-3
    for k, v in kept.history.items():
        np.testing.assert_allclose(again.history[k], v, rtol=1e-3, atol=1e-6, err_msg=k)
