"""The members for Doshi et al. ("To grok or not to grok"): the x² MLP, label corruption as a label transform, the
neuron IPR and the accuracies on corrupted and clean training pairs as registry measures, and post-hoc pruning;
each on hand-computed cases, each keeping a run apart from its batch mates (float64, as in test_step_extensions.py).
"""
import math

import numpy as np
import pytest
import torch

from grok_core.batch import BatchData
from grok_core.config import RunConfig
from grok_core.measures import MEASURES, MeasureContext, neuron_ipr, spectrum_ipr
from grok_core.models import build_model
from grok_core.pruning import ipr_order, pruning_curve
from grok_core.splits import make_split
from grok_core.tasks import corrupted_count, labels
from grok_core.train import Trainer, metric_names

P = 97
BASE = RunConfig(p=11, model="quadratic", act="square", d_mlp=24, frac_train=0.5, n_steps=30, lr=1e-2, wd=0.0,
                 warmup_steps=0, loss="mse", label_transform="corrupt", corrupt_share=0.4, corrupt_seed=3,
                 measures="corrupted_acc,corrupted_rule_acc,clean_acc")
MATES = (dict(init_seed=7, split_seed=3, corrupt_seed=5, lr=2e-2), dict(init_seed=9, corrupt_share=0.8, wd=5.0))


# -- IPR -----------------------------------------------------------------------------------------------------------
def test_the_ipr_of_a_pure_cosine_is_one_and_of_a_flat_spectrum_its_minimum():
    x = torch.arange(P, dtype=torch.float64)
    cos = torch.cos(2 * math.pi * 5 * x / P + 0.3)
    assert spectrum_ipr(cos).item() == pytest.approx(1.0, abs=1e-12)
    assert spectrum_ipr(torch.ones(P, dtype=torch.float64)).item() == pytest.approx(1.0, abs=1e-12)
    delta = torch.zeros(P, dtype=torch.float64)
    delta[17] = 2.0                                           # |DFT| is 2 at every frequency: a flat spectrum
    assert spectrum_ipr(delta).item() == pytest.approx(1 / (P // 2 + 1), rel=1e-12)


def test_the_ipr_is_numpys_real_fft_formula():
    v = np.random.default_rng(0).normal(size=(3, 4, P))
    F = np.abs(np.fft.rfft(v, axis=-1))
    want = ((F / np.sqrt((F ** 2).sum(-1, keepdims=True))) ** 4).sum(-1)
    np.testing.assert_allclose(spectrum_ipr(torch.tensor(v)).numpy(), want, rtol=1e-12, atol=0)


def test_a_neurons_ipr_is_the_mean_of_its_three_and_a_dead_one_is_left_out_of_the_mean():
    cfg = RunConfig(p=P, model="quadratic", act="square", d_mlp=2)
    model = build_model(cfg)
    flat = torch.zeros(1, model.layout.size, dtype=torch.float64)
    w = model.layout.views(flat)
    x = torch.arange(P, dtype=torch.float64)
    w["W_in"][0, :P, 0] = torch.cos(2 * math.pi * 3 * x / P)              # U: one frequency
    w["W_in"][0, P:, 0] = torch.sin(2 * math.pi * 3 * x / P)              # V: one frequency
    w["W_out"][0, 0, 4] = 1.0                                              # W: a delta, a flat spectrum
    got = neuron_ipr(model, w)[0]
    assert got[0].item() == pytest.approx((2 + 1 / (P // 2 + 1)) / 3, rel=1e-12)
    assert math.isnan(got[1].item())                                        # neuron 1 is all zero
    ctx = MeasureContext(cfg, model, w, flat, None, None)
    assert MEASURES["mean_ipr"].fn(ctx).item() == pytest.approx(got[0].item(), rel=1e-12)
    assert "mean_ipr" in metric_names(cfg) and "mean_ipr" not in metric_names(RunConfig(p=7, model="twohot"))


# -- the model -------------------------------------------------------------------------------------------------------
def test_the_model_is_the_2hot_product_squared_without_biases_and_its_init_is_the_papers():
    cfg = RunConfig(p=7, model="quadratic", act="square", d_mlp=500)
    model = build_model(cfg)
    flat = model.init_params(cfg)
    assert model.layout.size == 2 * 7 * 500 + 500 * 7
    assert flat.std().item() == pytest.approx(0.5 / 1000 ** (1 / 3), rel=0.02)     # var 0.25 / (2N)^(2/3)
    w = model.layout.views(flat[None].double())
    torch.testing.assert_close(model.head(w, model.trunk(w))[0], model.reference_logits(w), rtol=1e-12, atol=1e-14)
    w2 = model.layout.views(2 * flat[None].double())
    torch.testing.assert_close(model.head(w2, model.trunk(w2)), 8 * model.head(w, model.trunk(w)), rtol=1e-12, atol=0)


# -- label corruption ------------------------------------------------------------------------------------------------
def _data(cfg):
    return BatchData([cfg], torch.device("cpu"), torch.float64)


def test_corruption_draws_exactly_the_first_floor_share_labels_and_leaves_test_alone():
    cfg = RunConfig(p=P, model="quadratic", act="square", frac_train=0.5, label_transform="corrupt", corrupt_share=0.35,
                    corrupt_seed=4)
    d = _data(cfg)
    n = d.n_train[0]
    k = math.floor(0.35 * n)
    assert n == 4704 and k == 1646 == corrupted_count(0.35, n)
    drawn = torch.randint(0, P, (k,), generator=torch.Generator().manual_seed(4))
    assert torch.equal(d.train_labels[0, :k], drawn)                              # reproducible from the seed
    assert torch.equal(d.train_labels[0, k:n], d.train_truth[0, k:n])             # the rest untouched
    truth = labels("add", P)
    assert torch.equal(d.train_truth[0, :n], truth[make_split(cfg).train_idx])
    assert torch.equal(d.test_labels[0], truth[d.test_idx[0]])                    # test labels are the task's
    changed = int((d.train_labels[0, :k] != d.train_truth[0, :k]).sum())
    assert changed == k - int((drawn == d.train_truth[0, :k]).sum())             # "corrupted" means label != truth
    assert 0.97 < changed / k < 1.0                                               # about 1 - 1/p of the draws
    other = _data(cfg.replace(corrupt_seed=5))
    assert not torch.equal(other.train_labels[0, :k], d.train_labels[0, :k])     # another seed, other labels
    assert (drawn == P - 1).any()                                                 # all p classes, p - 1 included


def test_the_count_reads_the_share_as_written():
    assert corrupted_count(0.29, 100) == 29 != int(0.29 * 100)
    assert corrupted_count(0.0, 50) == 0 and corrupted_count(1.0, 50) == 50 and corrupted_count(0.35, 10) == 3


@pytest.mark.parametrize("fields,match", [
    (dict(corrupt_share=-0.1), "corrupt_share"), (dict(corrupt_share=1.5), "corrupt_share"),
    (dict(label_transform="none"), "corrupt_share"), (dict(corrupt_seed=-1), "corrupt_seed"),
    (dict(act="relu"), "act='relu' is not allowed with model='quadratic'")])
def test_bad_corruption_and_model_settings_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        BASE.replace(**fields)


def test_corruption_fields_keep_the_keys_of_runs_without_them():
    plain = RunConfig()
    assert plain.replace(corrupt_share=0.0, corrupt_seed=0).key() == plain.key()
    assert BASE.key() != BASE.replace(corrupt_seed=4).key() != BASE.replace(corrupt_share=0.5).key()
    RunConfig.check_batchable([BASE, BASE.replace(**MATES[0]), BASE.replace(**MATES[1])])


# -- accuracy on corrupted and clean train pairs -----------------------------------------------------------------------
def test_the_corrupted_and_clean_accuracies_on_a_hand_case():
    """Four rows, the last padding: rows 0, 1 corrupted (label != truth), row 2 clean. Predictions: row 0 its
    corrupted label, row 1 the truth, row 2 right."""
    logits = torch.zeros(1, 4, 3, dtype=torch.float64)
    labels_, truth = torch.tensor([[1, 2, 0, 0]]), torch.tensor([[0, 0, 0, 1]])
    for row, cls in enumerate((1, 0, 0, 2)):
        logits[0, row, cls] = 1.0
    ctx = MeasureContext(None, None, {}, None, None, None, logits, labels_, torch.tensor([[1.0, 1.0, 1.0, 0.0]]),
                         train_truth=truth)
    assert MEASURES["corrupted_acc"].fn(ctx).item() == 0.5
    assert MEASURES["corrupted_rule_acc"].fn(ctx).item() == 0.5
    assert MEASURES["clean_acc"].fn(ctx).item() == 1.0
    none = MeasureContext(None, None, {}, None, None, None, logits, truth, torch.ones(1, 4), train_truth=truth)
    assert math.isnan(MEASURES["corrupted_acc"].fn(none).item())            # no corrupted rows: undefined


# -- runs stay apart ---------------------------------------------------------------------------------------------------
def _trained(configs):
    t = Trainer(configs, "cpu", dtype=torch.float64)
    t.run(progress=False)
    return t


def test_a_corrupted_run_does_not_depend_on_its_batch_mates():
    (h0, w0), (h1, w1) = ((t.histories()[0], t.flat[0].detach())
                          for t in (_trained([BASE, BASE.replace(**mate)]) for mate in MATES))
    assert all(np.allclose(h0[k], h1[k], rtol=1e-10, atol=1e-12, equal_nan=True) for k in h0)
    assert torch.allclose(w0, w1, rtol=1e-10, atol=1e-12)
    alone = _trained([BASE]).data
    mated = _trained([BASE.replace(**MATES[1]), BASE]).data
    n = alone.n_train[0]
    assert torch.equal(alone.train_labels[0, :n], mated.train_labels[1, :n])


def test_the_recorded_accuracies_split_the_train_accuracy_by_row_count():
    t = _trained([BASE])
    h, d = t.histories()[0], t.data
    n = d.n_train[0]
    bad = int((d.train_labels[0, :n] != d.train_truth[0, :n]).sum())
    np.testing.assert_allclose(h["train_acc"], (bad * h["corrupted_acc"] + (n - bad) * h["clean_acc"]) / n, rtol=1e-12)


# -- pruning -----------------------------------------------------------------------------------------------------------
def test_pruning_starts_at_the_models_accuracies_and_ends_with_zero_logits():
    t = _trained([BASE.replace(n_steps=60)])
    flat = t.flat[0].detach()
    curve = pruning_curve(BASE, flat, torch.arange(BASE.d_mlp))
    got = t.evaluate(flat[None], ("corrupted_acc", "clean_acc", "test_acc"))[0]
    np.testing.assert_allclose([curve[k][0] for k in ("corrupted_acc", "clean_acc", "test_acc")], got.numpy(), rtol=1e-12)
    d = t.data
    n = d.n_train[0]
    clean = d.train_labels[0, :n] == d.train_truth[0, :n]
    # no neuron left: every logit is 0 and argmax picks class 0
    assert curve["clean_acc"][-1] == pytest.approx((d.train_labels[0, :n][clean] == 0).double().mean().item(), abs=0)
    assert curve["test_acc"][-1] == pytest.approx((d.test_labels[0] == 0).double().mean().item(), abs=0)
    assert list(curve["removed"]) == list(range(BASE.d_mlp + 1))
    with pytest.raises(ValueError, match="permutation"):
        pruning_curve(BASE, flat, torch.zeros(BASE.d_mlp, dtype=torch.long))


def test_ipr_order_takes_dead_neurons_first_then_increasing_ipr():
    assert ipr_order(torch.tensor([0.5, float("nan"), 0.1, 0.9, 0.1])).tolist() == [1, 2, 4, 0, 3]
