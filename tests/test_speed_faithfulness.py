"""The fast trainer keeps the semantics: a run trains the same alone or inside a batch, its optimiser
is torch's AdamW with the warm-up schedule, and on CUDA the captured graph equals the eager step.

Alone against batched is a claim of "the same arithmetic": padding a run's train rows to its batch mates'
changes only matmul shapes, hence the order of float sums. So it is checked in float64, where the order
costs ~1e-16 per operation. Over 100 steps the dynamics amplify it: in float32 the same comparison gave
1.1e-7 relative on an Intel CPU and 4e-5 on an AMD one, i.e. up to ~300x float32's epsilon. TOL = 1e-10 is
float64's epsilon (1.1e-16) times 1e6, over 1000x that amplification, and far below what a real bug gives:
a run swapped for its batch mate or padded rows given weight both exceed 1e-3 (the negative tests below).
"""
import math

import pytest
import torch

from grok_core.config import RunConfig
from grok_core.runner import _partition, batch_cost, plan, runs_that_fit
from grok_core.budget import bytes_per_run
from grok_core.train import Trainer
from grok_core.updates import adamw_schedule

SMALL = RunConfig(p=23, d_model=32, n_heads=4, frac_train=0.4, n_steps=100, init_seed=5, split_seed=5)
TOL = 1e-10
# torch's AdamW and ours apply the same formula in another order; in float64 they met to the last bit over 30
# steps (in float32 they were 9.6e-7 apart, next to the old 1e-6 tolerance): 1e-12 leaves the order room
ADAMW_TOL = 1e-12
F64 = torch.float64
KINDS = [dict(), dict(n_layers=2), dict(model="mlp", d_mlp=64)]


def _max_rel(a, b):
    return float(((a - b).abs().max() / b.abs().max().clamp_min(1e-300)))


def _gap(alone: Trainer, batch: Trainer, r: int) -> float:
    """Largest relative difference over every recorded metric (but block_acc, NaN for a random split)
    between the run trained alone and row r of the batch, and of their parameter vectors."""
    h1, h2 = alone.history[0], batch.history[r]
    gaps = [_max_rel(h2[:, k], h1[:, k]) for k, name in enumerate(alone.metrics) if name != "block_acc"]
    return max(gaps + [_max_rel(batch.flat[r].detach(), alone.flat[0].detach())])


def _alone_and_batched(cfg, corrupt=None):
    """The run alone and inside a batch of 4 (other seeds and train shares, so padded train rows), float64."""
    others = [cfg.replace(init_seed=10 + r, split_seed=10 + r, frac_train=0.3 + 0.1 * r) for r in range(3)]
    alone = Trainer([cfg], "cpu", dtype=F64)
    alone.run(progress=False)
    batch = Trainer(others[:1] + [cfg] + others[1:], "cpu", dtype=F64)
    if corrupt:
        corrupt(batch)
    batch.run(progress=False)
    assert alone.step == batch.step == cfg.n_steps
    assert torch.isfinite(alone.history[0, :, :4]).all()
    return alone, batch


@pytest.mark.parametrize("kw", KINDS)
def test_alone_and_batched_agree_over_100_steps(kw):
    alone, batch = _alone_and_batched(SMALL.replace(**kw))
    assert _gap(alone, batch, 1) < TOL


def test_the_comparison_fails_for_a_swapped_run():
    alone, batch = _alone_and_batched(SMALL.replace(n_steps=30))
    assert _gap(alone, batch, 1) < TOL
    assert _gap(alone, batch, 0) > 1e-3 and _gap(alone, batch, 2) > 1e-3


def test_the_comparison_fails_when_padded_rows_get_weight():
    def weigh_padding(batch):          # the padding rows of the run under test count like real rows
        w = batch.data.train_w[1]
        w[w == 0] = w.max()
    alone, batch = _alone_and_batched(SMALL.replace(n_steps=30), corrupt=weigh_padding)
    assert _gap(alone, batch, 1) > 1e-3


def test_optimiser_is_torch_adamw_with_warmup():
    """Our flat AdamW against torch.optim.AdamW + LambdaLR(min(s/10, 1)) on the same loss, 30 steps, float64."""
    cfg = SMALL.replace(n_steps=30, lr=3e-3, wd=0.5)
    ours = Trainer([cfg], "cpu", dtype=F64)
    ref = Trainer([cfg], "cpu", dtype=F64)
    param = torch.nn.Parameter(ref.flat.detach().clone())
    opt = torch.optim.AdamW([param], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.wd, eps=1e-8,
                            foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / cfg.warmup_steps, 1))
    for _ in range(30):
        ours.train_step()
        loss, _row = ref._forward(param, record=False)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    torch.testing.assert_close(ours.flat.detach(), param.detach(), rtol=0, atol=ADAMW_TOL)
    assert ours.step_t.item() == ours.step == 30


def test_schedule_table():
    cfg = RunConfig(n_steps=15, warmup_steps=10)
    t = adamw_schedule(cfg).double()
    assert t[0, 0] == 0 and t[5, 0] == pytest.approx(0.5) and (t[10:, 0] == 1).all()
    assert t[0, 1] == pytest.approx(1 - 0.9, rel=1e-6)
    assert t[2, 2] == pytest.approx(math.sqrt(1 - 0.98 ** 3), rel=1e-6)


def test_resume_continues_the_device_counter(tmp_path):
    cfg = SMALL.replace(n_steps=20)
    full = Trainer([cfg], "cpu")
    full.run(progress=False)
    part = Trainer([cfg], "cpu")
    part.run(stop_at=7, ckpt_path=tmp_path / "c.pt", progress=False)
    again = Trainer([cfg], "cpu")
    assert again.resume(tmp_path / "c.pt") and again.step_t.item() == 7
    again.run(progress=False)
    torch.testing.assert_close(again.history, full.history, equal_nan=True, rtol=0, atol=0)


def test_thinned_recording_trains_the_same_run(tmp_path):
    """Recording fewer steps skips only the test rows: same parameters, same entries where recorded."""
    cfg = SMALL.replace(n_steps=40)
    thin_cfg = cfg.replace(record_dense=7, record_every=5)
    full, thin = Trainer([cfg], "cpu"), Trainer([thin_cfg], "cpu")
    full.run(progress=False)
    thin.run(stop_at=23, ckpt_path=tmp_path / "c.pt", progress=False)       # interrupted and resumed
    thin = Trainer([thin_cfg], "cpu")
    assert thin.resume(tmp_path / "c.pt") and thin.n_recorded == 7 + 3      # 0..6, then 10, 15, 20
    thin.run(progress=False)
    assert torch.equal(thin.flat, full.flat)
    steps = thin.histories()[0]["step"]
    assert list(steps) == [0, 1, 2, 3, 4, 5, 6, 10, 15, 20, 25, 30, 35, 39]
    torch.testing.assert_close(thin.history[0], full.history[0, steps], equal_nan=True, rtol=0, atol=0)


def test_train_step_past_the_end_raises():
    tr = Trainer([SMALL.replace(n_steps=2)], "cpu")
    tr.train_step()
    tr.train_step()
    with pytest.raises(RuntimeError):
        tr.train_step()


def test_planning_fills_batches_evenly_and_keeps_train_shares_apart():
    group = [SMALL.replace(init_seed=s) for s in range(64)]
    assert [len(b) for b in plan(group, 64, "cpu")] == [64]
    assert sorted(len(b) for b in _partition(group, 28)) == [21, 21, 22]     # as few batches as the memory allows
    assert sorted(len(b) for b in plan(group[:10], 4, "cpu")) == [3, 3, 4]
    # one batch pads every run to its largest train and test sets: shares 0.3 and 0.7 train apart
    mixed = [RunConfig(frac_train=f, init_seed=s) for f in (0.3, 0.7) for s in range(32)]
    batches = plan(mixed, 64, "cpu")
    assert sorted(sorted({c.frac_train for c in b}) for b in batches) == [[0.3], [0.7]]
    assert batch_cost(mixed) > sum(map(batch_cost, batches))
    assert runs_that_fit(SMALL, "cpu") is None
    big, small = RunConfig(p=379), RunConfig(p=97)
    assert bytes_per_run(big) > 10 * bytes_per_run(small)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_equals_eager_on_gpu():
    cfg = SMALL.replace(n_steps=30, record_dense=8, record_every=4)      # both kinds of step, two graphs
    cfgs = [cfg, cfg.replace(init_seed=1, split_seed=1, frac_train=0.5)]
    g = Trainer(cfgs, "cuda", cuda_graph=True)
    e = Trainer(cfgs, "cuda", cuda_graph=False)
    g.run(progress=False)
    e.run(progress=False)
    torch.testing.assert_close(g.history, e.history, equal_nan=True, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g.flat, e.flat, rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("graph", [True, False])
def test_measures_beside_the_backward_equal_measures_in_line(graph):
    """A recorded step's measures run on a side stream while the backward runs: they must still see the weights
    before the update (in float64; reading updated weights moves test_loss by far more than TOL)."""
    cfg = SMALL.replace(n_steps=30, record_dense=8, record_every=4)
    cfgs = [cfg, cfg.replace(init_seed=1, split_seed=1, frac_train=0.5)]
    beside = Trainer(cfgs, "cuda", cuda_graph=graph, dtype=F64)
    in_line = Trainer(cfgs, "cuda", cuda_graph=graph, dtype=F64)
    assert beside._side is not None
    in_line._side = None
    beside.run(progress=False)
    in_line.run(progress=False)
    for r in range(2):
        assert _max_rel(beside.history[r].nan_to_num(), in_line.history[r].nan_to_num()) < TOL
    assert _max_rel(beside.flat.detach(), in_line.flat.detach()) < TOL
