"""Lottery tickets (grok_core.tickets) and what they stand on: the symmetric split, the OnlyMLP, magnitude and random
masks, the rewind to the base's init, mask semantics in training, and bad values refused before anything trains."""
import math
import random

import pytest
import torch

from grok_core.config import RunConfig
from grok_core.models import build_model, model_class
from grok_core.runner import load_or_train
from grok_core.splits import make_split, split_sizes
from grok_core.store import RunStore
from grok_core.tickets import (magnitude_mask, n_kept, prunable, random_mask, random_mask_seed, rescale_factor,
                               threshold_margin)
from grok_core.train import Trainer, snapshot_steps


# -- the symmetric split ---------------------------------------------------------------------------------------
def test_symmetric_split_counts_and_pairs_are_the_papers():
    """p = 67: 2,278 unordered pairs i <= j, int(0.4 * 2278) = 911 train, 1,367 test; no pair in both, none i > j,
    and train is the first 911 of the i-major list of pairs i <= j shuffled by random.Random(split_seed)."""
    cfg = RunConfig(p=67, split="symmetric", frac_train=0.4, split_seed=3)
    s = make_split(cfg)
    assert (len(s.train_idx), len(s.test_idx)) == split_sizes(cfg) == (911, 1367)
    i, j = torch.arange(67).repeat_interleave(67), torch.arange(67).repeat(67)
    assert not (s.train_mask & s.test_mask).any()
    assert int((s.train_mask | s.test_mask).sum()) == 2278
    assert torch.equal(s.train_mask | s.test_mask, i <= j)          # the mirror pairs i > j are in neither
    pairs = [a * 67 + b for a in range(67) for b in range(67) if a <= b]
    random.Random(3).shuffle(pairs)
    assert s.train_idx.tolist() == pairs[:911] and sorted(s.test_idx.tolist()) == sorted(pairs[911:])
    assert not s.block_mask.any() and torch.equal(s.leftover_mask, s.test_mask)


def test_symmetric_split_takes_no_split_param_and_batches_test_accuracy_over_its_own_test_pairs():
    with pytest.raises(ValueError, match="split_param"):
        RunConfig(p=7, split="symmetric", split_param=1)
    from grok_core.batch import BatchData
    cfgs = [RunConfig(p=7, split="symmetric", frac_train=0.5), RunConfig(p=7, split="random", frac_train=0.5)]
    d = BatchData(cfgs, torch.device("cpu"), torch.float64)
    assert d.n_train == [14, 24] and d.n_test == [14, 25]
    assert d.part_div[:, 1].tolist() == [14.0, 25.0]                # the test part counts its real pairs only


# -- the OnlyMLP -------------------------------------------------------------------------------------------------
def test_onlymlp_has_the_papers_shapes_count_and_init_scale():
    cfg = RunConfig(p=67, model="onlymlp", d_model=500, d_mlp=48)
    model = build_model(cfg)
    assert model.layout.shapes == {"W_E": (67, 500), "W_in": (500, 48), "W_out": (48, 500), "W_U": (500, 67)}
    assert model.layout.size == model_class("onlymlp").n_params(cfg) == 115_000
    w = model.layout.views(model.init_params(cfg)[None])
    for name, fan_in in (("W_E", 67), ("W_in", 500), ("W_out", 48), ("W_U", 500)):
        assert abs(w[name].std().item() * math.sqrt(fan_in) - 1) < 0.05
    with pytest.raises(ValueError, match="operand_offset"):
        build_model(cfg.replace(operand_offset=2))


# -- pruning -----------------------------------------------------------------------------------------------------
def _layout(**kw):
    return build_model(RunConfig(p=11, d_model=16, n_heads=4, **kw)).layout


def test_prunable_entries_are_the_weight_matrices_not_the_biases():
    layout = _layout()                                    # the transformer: b_in and b_out are biases
    where = prunable(layout)
    biases = sum(math.prod(s) for n, s in layout.shapes.items() if ".b_" in n)
    assert int((~where).sum()) == biases == 64 + 16
    assert bool(prunable(_layout(model="onlymlp", d_mlp=8)).all())


@pytest.mark.parametrize("k,n,kept", [(0.4, 115_000, 46_000), (1.0, 10, 10), (0.25, 10, 2), (0.35, 10, 4), (1e-9, 10, 1)])
def test_n_kept_is_the_nearest_integer_and_at_least_one(k, n, kept):
    assert n_kept(n, k) == kept


def test_magnitude_mask_keeps_exactly_the_count_and_the_largest_magnitudes():
    layout = _layout(model="onlymlp", d_mlp=8)
    w = torch.randn(layout.size, generator=torch.Generator().manual_seed(0))
    for k in (0.1, 0.37, 0.5, 1.0):
        m = magnitude_mask(w, layout, k)
        kept = m.bool()
        assert int(kept.sum()) == n_kept(layout.size, k)
        assert k == 1.0 or w[kept].abs().min() > w[~kept].abs().max()


def test_magnitude_ties_go_to_the_earlier_entry_and_biases_are_always_kept():
    layout = _layout()
    where = prunable(layout)
    w = torch.where(where, 1.0, 100.0)                     # every prunable entry ties; the biases are largest
    w[torch.nonzero(where).flatten()[-1]] = 2.0             # one clear winner, last of all
    m = magnitude_mask(w, layout, 0.01)
    n = n_kept(int(where.sum()), 0.01)
    idx = torch.nonzero(where).flatten()
    assert bool(m[~where].eq(1).all())
    assert torch.nonzero(m[idx]).flatten().tolist() == list(range(n - 1)) + [len(idx) - 1]


def test_threshold_margin_counts_the_weights_rounding_could_move_across_the_threshold():
    """Planted magnitudes: the kept count's threshold is 1.0; entries at 1 ± 0.5 rel are inside, at 1 ± 2 rel not; the
    biases (not prunable) never count. And a float16 copy of random weights changes the mask only inside the margin."""
    layout = _layout(model="onlymlp", d_mlp=8)
    where = torch.nonzero(prunable(layout)).flatten()
    rel, n = 1e-3, len(where)
    keep = n_kept(n, 0.5)
    w = torch.full((layout.size,), 5.0, dtype=torch.float64)
    w[where] = torch.where(torch.arange(n) < keep, 3.0, 0.1).double()
    w[where[keep - 1]] = 1.0                                   # the threshold: the smallest kept magnitude
    w[where[[0, keep]]] = torch.tensor([1 + rel / 2, -(1 - rel / 2)], dtype=torch.float64)   # inside, either side
    w[where[[1, keep + 1]]] = torch.tensor([1 + 2 * rel, 1 - 2 * rel], dtype=torch.float64)   # outside
    assert threshold_margin(w, layout, 0.5, rel) == (3, keep)
    x = torch.randn(layout.size, generator=torch.Generator().manual_seed(5))
    moved = magnitude_mask(x, layout, 0.4) != magnitude_mask(x.half().float(), layout, 0.4)
    near, _ = threshold_margin(x.half().float(), layout, 0.4, 2.0 ** -10)
    assert int(moved.sum()) <= 2 * near


def test_random_mask_keeps_the_same_count_and_is_seeded():
    layout = _layout(model="onlymlp", d_mlp=8)
    a, b = random_mask(layout, 0.3, 5), random_mask(layout, 0.3, 5)
    assert torch.equal(a, b) and int(a.sum()) == n_kept(layout.size, 0.3)
    assert not torch.equal(a, random_mask(layout, 0.3, 6))
    assert random_mask_seed(0) != 0 and random_mask_seed(0) != random_mask_seed(1)


def test_rescale_factor_matches_the_tickets_norm_in_l1_and_l2():
    layout = _layout(model="onlymlp", d_mlp=8)
    w0 = torch.randn(layout.size, generator=torch.Generator().manual_seed(1))
    m = random_mask(layout, 0.3, 2)
    for norm, q in (("l1", 1), ("l2", 2)):
        c = rescale_factor(w0, m, layout, norm)
        assert math.isclose(torch.linalg.vector_norm(c * w0.double(), q).item(),
                            torch.linalg.vector_norm((m * w0).double(), q).item(), rel_tol=1e-12)


# -- tickets from a stored base ---------------------------------------------------------------------------------
BASE = dict(p=11, model="onlymlp", d_model=24, d_mlp=8, split="symmetric", frac_train=0.5, lr=1e-2, n_steps=30,
            snapshot_at="10,30")


@pytest.fixture
def base_run(store):
    cfg = RunConfig(**BASE)
    load_or_train([cfg], store=store, progress=False)
    return cfg


def _ticket(base, **kw):
    return RunConfig(**(BASE | dict(snapshot_at="", n_steps=20, param_mask="magnitude", ticket_base=base.key(),
                                    ticket_step=30, keep_fraction=0.3) | kw))


def test_ticket_starts_from_the_base_init_on_its_survivors_and_keeps_masked_weights_and_adam_state_zero(base_run, store):
    snaps = store.snapshots(base_run)
    assert snaps["step"].tolist() == [10, 30]
    ticket = _ticket(base_run)
    t = Trainer([ticket], "cpu", dtype=torch.float64)
    mask = t.mask[0].bool()
    assert torch.equal(mask.float(), magnitude_mask(snaps["weights"][1].float(), t.model.layout, 0.3).double())
    init = build_model(base_run).init_params(base_run).double()
    assert torch.equal(t.flat[0].detach()[mask], init[mask]) and bool((t.flat[0].detach()[~mask] == 0).all())
    t.run(progress=False)
    assert bool((t.flat[0].detach()[~mask] == 0).all())
    assert bool((t.optimizer.m[0][~mask] == 0).all()) and bool((t.optimizer.v[0][~mask] == 0).all())
    assert bool((t.flat[0].detach()[mask] != init[mask]).all())          # the survivors trained


def test_snapshot_steps_merge_explicit_steps_and_refuse_bad_spellings():
    cfg = RunConfig(n_steps=100, snapshots=3, snapshot_at="5,100")
    assert snapshot_steps(cfg).tolist() == [0, 1, 5, 100]
    for bad in ("5, 100", "100,5", "5,5", "101", "a"):
        with pytest.raises(ValueError, match="snapshot_at"):
            RunConfig(n_steps=100, snapshot_at=bad)


def test_norm_matched_control_is_dense_with_its_init_scaled(base_run, store):
    l2 = _ticket(base_run, param_mask="none", init_rescale="l2")
    t = Trainer([l2], "cpu", dtype=torch.float64)
    assert t.mask is None
    init = build_model(base_run).init_params(base_run).double()
    m = magnitude_mask(store.snapshots(base_run)["weights"][1].float(), t.model.layout, 0.3).double()
    assert math.isclose(t.flat[0].detach().norm().item(), (m * init).norm().item(), rel_tol=1e-6)


@pytest.mark.parametrize("kw,match", [
    (dict(keep_fraction=0.0), "keep_fraction"), (dict(keep_fraction=1.5), "keep_fraction"),
    (dict(keep_fraction=-0.1), "keep_fraction"), (dict(ticket_base="nope"), "ticket_base"),
    (dict(param_mask="random", ticket_base="0123456789abcdef"), "ticket_base"),
    (dict(param_mask="none"), "ticket_base"), (dict(init_rescale="l3"), "init_rescale"),
    (dict(init_rescale="l1"), "init_rescale.*param_mask"), (dict(ticket_step=-1), "ticket_step"),
])
def test_bad_ticket_values_are_refused_naming_the_field(kw, match):
    fields = dict(p=11, model="onlymlp", d_model=24, d_mlp=8, param_mask="magnitude", ticket_base="0123456789abcdef",
                  keep_fraction=0.3) | kw
    with pytest.raises(ValueError, match=match):
        RunConfig(**fields)


def test_a_ticket_whose_base_is_missing_is_refused_before_anything_trains(store):
    dense = RunConfig(**(BASE | dict(snapshot_at="", init_seed=5)))
    ticket = RunConfig(**(BASE | dict(snapshot_at="", param_mask="magnitude", ticket_base="0123456789abcdef",
                                      ticket_step=30, keep_fraction=0.3)))
    with pytest.raises(ValueError, match="ticket_base='0123456789abcdef' is not in the run store"):
        load_or_train([dense, ticket], store=store, progress=False)
    assert store.get(dense) is None                            # the dense run of the same call did not train
    with pytest.raises(ValueError, match="not in the run store"):
        Trainer([ticket], "cpu")


def test_a_ticket_must_share_its_bases_init_and_name_a_kept_step(base_run):
    with pytest.raises(ValueError, match="init_seed differ"):
        Trainer([_ticket(base_run, init_seed=1)], "cpu")
    with pytest.raises(ValueError, match=r"ticket_step=20 .* keeps weights at steps \[10, 30\]"):
        Trainer([_ticket(base_run, ticket_step=20)], "cpu")
    masked = _ticket(base_run)
    load_or_train([masked], progress=False)
    with pytest.raises(ValueError, match="not a dense run"):
        Trainer([_ticket(base_run, ticket_base=masked.key())], "cpu")


def test_ticket_runs_are_independent_of_their_batch_mates(base_run):
    """A ticket, a random mask and a norm-matched control trained together give what each gives alone (float64)."""
    runs = [_ticket(base_run), _ticket(base_run, param_mask="random", ticket_base="", ticket_step=0, keep_fraction=0.5),
            _ticket(base_run, param_mask="none", init_rescale="l1", wd=0.0),
            RunConfig(**(BASE | dict(snapshot_at="", n_steps=20)))]
    together = Trainer(runs, "cpu", dtype=torch.float64)
    together.run(progress=False)
    for k, c in enumerate(runs):
        alone = Trainer([c], "cpu", dtype=torch.float64)
        alone.run(progress=False)
        torch.testing.assert_close(together.flat[k].detach(), alone.flat[0].detach(), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(torch.as_tensor(together.histories()[k]["test_loss"]),
                                   torch.as_tensor(alone.histories()[0]["test_loss"]), rtol=1e-9, atol=1e-12)
