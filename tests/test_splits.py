"""Splits: the released code's algorithm, the spec's size table, masks, shrink warnings.

Run: pytest tests/test_splits.py
"""
import random
import warnings

import pytest
import torch

from grok_core.config import RunConfig
from grok_core.splits import draws_nothing, make_split, split_sizes
from grok_core.tasks import labels, tokens


def released_code_split(p, frac, seed, block):
    """The released code's procedure on a list of triples: filter, random.seed, random.shuffle, slice."""
    triples = [(i, j, p) for i in range(p) for j in range(p)]
    forced = [t for t in triples if block(t[0], t[1])]
    rest = [t for t in triples if not block(t[0], t[1])]
    random.seed(seed)
    random.shuffle(rest)
    n = int(frac * p * p)
    return rest[:n], forced + rest[n:]


@pytest.mark.parametrize("split,param,block", [
    ("random", 0, lambda i, j: False),
    ("square", 4, lambda i, j: i <= 4 and j <= 4),
    ("strip", 3, lambda i, j: i <= 3),
])
@pytest.mark.parametrize("seed", [0, 11])
def test_split_reproduces_the_released_shuffle(split, param, block, seed):
    p, frac = 13, 0.3
    train, test = released_code_split(p, frac, seed, block)
    s = make_split(RunConfig(p=p, split=split, split_param=param, frac_train=frac, split_seed=seed))
    assert s.train_idx.tolist() == [i * p + j for i, j, _ in train]
    assert s.test_idx.tolist() == [i * p + j for i, j, _ in test]


@pytest.mark.parametrize("split,param,block,train,test,outside", [
    ("random", 0, 0, 2822, 6587, 6587),
    ("square", 30, 961, 2822, 6587, 5626),
    ("square", 60, 3721, 2822, 6587, 2866),
    ("square", 67, 4624, 2822, 6587, 1963),
    ("strip", 40, 3977, 2822, 6587, 2610),
    ("strip", 60, 5917, 2822, 6587, 670),
])
def test_sizes_at_p97_frac03_match_the_spec_table(split, param, block, train, test, outside):
    s = make_split(RunConfig(p=97, split=split, split_param=param, frac_train=0.3))
    assert int(s.block_mask.sum()) == block
    assert len(s.train_idx) == train and len(s.test_idx) == test
    assert int(s.leftover_mask.sum()) == outside
    assert not s.shrunk


@pytest.mark.parametrize("split,param,train", [("square", 85, 2013), ("strip", 67, 2813)])
def test_train_shrinks_to_the_remainder_with_a_warning(split, param, train):
    with pytest.warns(UserWarning, match="fewer than"):
        s = make_split(RunConfig(p=97, split=split, split_param=param, frac_train=0.3))
    assert s.shrunk and len(s.train_idx) == train
    assert int(s.leftover_mask.sum()) == 0           # everything outside the block trains


def test_masks_partition_the_table_and_block_is_test_only():
    s = make_split(RunConfig(p=11, split="square", split_param=3, frac_train=0.5, split_seed=4))
    assert not (s.train_mask & s.test_mask).any()
    assert (s.train_mask | s.test_mask).all()
    assert not (s.block_mask & s.train_mask).any()
    assert int(s.block_mask.sum()) == 16
    block = s.block_mask.view(11, 11)
    assert block[:4, :4].all() and block.sum() == 16
    assert torch.equal(s.test_idx[:16], torch.nonzero(s.block_mask).flatten())   # block first, i-major


def test_split_seed_changes_the_split_only():
    a = make_split(RunConfig(p=11, split_seed=0))
    b = make_split(RunConfig(p=11, split_seed=1))
    c = make_split(RunConfig(p=11, split_seed=0, init_seed=5))
    assert not torch.equal(a.train_idx, b.train_idx)
    assert torch.equal(a.train_idx, c.train_idx)


def test_tokens_and_labels_layout():
    t = tokens(5, operand_offset=3)
    assert t.shape == (25, 3)
    assert t[7].tolist() == [1, 2 + 3, 5 + 3]            # pair (1, 2): (i, j + d, '=' = p + d)
    assert labels("add", 5)[7] == 3
    assert labels("subtract", 5)[5 * 1 + 3] == (1 - 3) % 5


@pytest.mark.parametrize("fn,f", [
    ("add", lambda x, y: x + y), ("subtract", lambda x, y: x - y), ("mul", lambda x, y: x * y),
    ("x2_y2", lambda x, y: x * x + y * y), ("x2_xy_y2", lambda x, y: x * x + x * y + y * y),
    ("x_plus_y_sq", lambda x, y: (x + y) ** 2), ("x3_y3", lambda x, y: x ** 3 + y ** 3),
    ("x3_xy_y3", lambda x, y: x ** 3 + x * y + y ** 3),
])
def test_functions_match_python_integers_even_for_large_p(fn, f):
    p = 1999                                                # x^3 near 8e9: reduction keeps int64 safe
    got = labels(fn, p).view(p, p)
    for i, j in [(0, 0), (1, 2), (1998, 1998), (1234, 77), (500, 1999 - 1)]:
        assert got[i, j] == f(i, j) % p


def test_class_counts_at_p97_match_the_spec():
    assert len(labels("x_plus_y_sq", 97).unique()) == 49
    counts = torch.bincount(labels("x2_xy_y2", 97))
    assert counts[0] == 193 and (counts[1:] == 96).all()


@pytest.mark.parametrize("cfg", [RunConfig(p=97, frac_train=0.3), RunConfig(p=97, split="square", split_param=45),
                                 RunConfig(p=97, split="strip", split_param=67), RunConfig(p=23, frac_train=0.7,
                                                                                           split="square", split_param=20)])
def test_split_sizes_without_building_the_split(cfg):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        sp = make_split(cfg)
    assert split_sizes(cfg) == (len(sp.train_idx), len(sp.test_idx))


@pytest.mark.parametrize("split,param", [("random", 0), ("square", 0), ("square", 3), ("strip", 0), ("strip", 3)])
def test_the_test_set_is_never_empty(split, param):
    """frac_train < 1 and a block of at least one pair leave test pairs at any setting: no check is needed."""
    cfg = RunConfig(p=5, split=split, split_param=param, frac_train=0.999999)
    assert len(make_split(cfg).test_idx) == split_sizes(cfg)[1] >= 1


@pytest.mark.parametrize("split,param,fixed", [("strip", 67, True), ("strip", 60, False), ("square", 85, True),
                                               ("square", 60, False), ("random", 0, False)])
def test_a_split_that_takes_its_whole_remainder_draws_the_same_pairs_for_every_seed(split, param, fixed):
    cfg = RunConfig(split=split, split_param=param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        same = torch.equal(make_split(cfg).train_mask, make_split(cfg.replace(split_seed=1)).train_mask)
    assert draws_nothing(cfg) is fixed and same is fixed
