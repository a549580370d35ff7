"""Kumar et al.'s polynomial regression (grok_core.lazy_rich) and the lazy_rich chapter's rule.

Equivalences are checked in float64: the closed-form NTK against the definition by torch.func, the hand-written
gradient against autograd, the closed-form linearised model against its GD iterated step by step, and a run alone
against the same run beside batch mates (1e-10: a mate changes nothing but the order of no sums at all here, every
product being per run, so the bound is generous). Each check is shown to fail for a wrong input.
"""
import math

import numpy as np
import pytest
import torch

from grok_core.chapters import lazy_rich as chapter
from grok_core.chapters import setup
from grok_core.lazy_rich import measures
from grok_core.lazy_rich.config import LazyRichConfig
from grok_core.lazy_rich.data import make_data
from grok_core.lazy_rich.model import empirical_ntk, init_weights, ntk, output_and_grad, raw_output
from grok_core.lazy_rich.train import LazyRichStore, LazyRichTrainer, load_or_train, recorded_steps

SMALL = LazyRichConfig(d=6, n_train=9, n_test=7, width=5, alpha=2.0, eps=0.7, n_steps=30, n_records=8)


def _batch(cfg, dtype=torch.float64):
    d = make_data(cfg)
    W = init_weights(cfg.seed, cfg.width, cfg.d)[None].to(dtype)
    a = torch.tensor([[cfg.alpha]], dtype=dtype)
    e = torch.tensor([[[cfg.eps]]], dtype=dtype)
    return d, W, a, e


def test_the_closed_form_ntk_is_the_definition():
    d, W, a, e = _batch(SMALL)
    x, x2 = d.x_train[None], d.x_test[None]

    def f(w, pts):
        return a[0, 0] * raw_output(w[None], pts[None], e)[0]
    K = ntk(W, x, x2, a, e)[0]
    torch.testing.assert_close(K, empirical_ntk(f, W[0], x[0], x2[0]), rtol=1e-12, atol=1e-14)
    wrong = ntk(W, x, x2, a, e * 1.01)[0]                  # another eps: another kernel
    assert not torch.allclose(wrong, K, rtol=1e-6)


def test_the_gradient_is_autograds():
    d, W, a, e = _batch(SMALL)
    x, y = d.x_train[None], d.y_train[None]
    f0 = raw_output(W, x, e)
    Wg = (W + 0.1 * torch.randn_like(W)).requires_grad_()
    _, loss, grad = output_and_grad(Wg, x, y, f0, a, e)
    (auto,) = torch.autograd.grad(loss.sum(), Wg)
    torch.testing.assert_close(grad, auto, rtol=1e-12, atol=1e-14)


def test_measures_on_a_hand_computed_case():
    y = torch.tensor([[1.0, -1.0, 0.0]], dtype=torch.float64)
    target = y[:, :, None] * y[:, None, :]                 # y y^T is perfectly aligned: alignment 1
    assert measures.alignment(target, y).item() == pytest.approx(1.0, abs=1e-15)
    # K = I: centred kernel H (norm sqrt(2)), y~^T H y~ = |y~|^2 = 2, so A = 2 / (sqrt(2) * 2)
    assert measures.alignment(torch.eye(3, dtype=torch.float64)[None], y).item() == pytest.approx(1 / math.sqrt(2), abs=1e-15)
    K0 = torch.tensor([[[3.0, 0.0], [0.0, 4.0]]])
    assert measures.relative_change(K0 + torch.tensor([[[0.0, 1.0], [0.0, 0.0]]]), K0).item() == pytest.approx(0.2)
    assert measures.weight_norm(torch.tensor([[[3.0, 4.0]]])).item() == 5.0
    # kernel regression with K = diag(1, 2) on train, K_xX = [[1, 1]]: f = 0 + [1, 1] diag(1, 1/2) [2, 4] = 4
    f = measures.kernel_regression(torch.diag(torch.tensor([1.0, 2.0]))[None].double(),
                                   torch.tensor([[[1.0, 1.0]]]).double(), torch.tensor([[2.0, 4.0]]).double(),
                                   torch.zeros(1, 1).double())
    assert f.item() == pytest.approx(4.0, abs=1e-14)


def test_the_linearised_model_in_closed_form_is_its_gd_step_by_step():
    d, W, a, e = _batch(SMALL)
    x, xt, y = d.x_train[None], d.x_test[None], d.y_train[None]
    K, Kxt = ntk(W, x, x, a, e), ntk(W, xt, x, a, e)
    rate = torch.tensor([2 * SMALL.lr * SMALL.width / (SMALL.n_train * SMALL.alpha ** 2)], dtype=torch.float64)
    steps = [0, 1, 5, 30]
    train, test = measures.linearised_outputs(K, Kxt, y, torch.zeros_like(y), torch.zeros(1, SMALL.n_test,
                                              dtype=torch.float64), rate, steps)
    # the linearised model f = J0 dW trained by GD on mean((f - y)^2) / alpha^2 with the step lr * N
    J = torch.func.jacrev(lambda w: a[0, 0] * raw_output(w[None], x, e)[0])(W[0]).flatten(1)
    Jt = torch.func.jacrev(lambda w: a[0, 0] * raw_output(w[None], xt, e)[0])(W[0]).flatten(1)
    dW = torch.zeros(J.shape[1], dtype=torch.float64)
    got = {}
    for s in range(31):
        got[s] = (J @ dW, Jt @ dW)
        dW -= SMALL.lr * SMALL.width * J.T @ (2 * (J @ dW - y[0]) / SMALL.n_train) / SMALL.alpha ** 2
    for k, s in enumerate(steps):
        torch.testing.assert_close(train[0, k], got[s][0], rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(test[0, k], got[s][1], rtol=1e-9, atol=1e-11)
    assert not torch.allclose(test[0, 2], got[6][1], rtol=1e-6)        # one step off is told apart


def _run(configs, r):
    t = LazyRichTrainer(configs, "cpu", dtype=torch.float64)
    t.run()
    return torch.stack(t._rows, 1)[r], t.W[r]


def test_a_run_does_not_depend_on_its_batch_mates():
    mates = [SMALL.replace(alpha=0.25, seed=3, data_seed=4), SMALL.replace(eps=2.0, lr=0.1, seed=5)]
    alone, w_alone = _run([SMALL], 0)
    for mate in mates:
        beside, w_beside = _run([mate, SMALL], 1)
        torch.testing.assert_close(beside, alone, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(w_beside, w_alone, rtol=1e-10, atol=1e-12)
    other, _ = _run([SMALL, mates[0]], 1)
    assert not torch.allclose(other, alone, rtol=1e-6)                  # the mate's own run differs


@pytest.mark.parametrize("field,value,message", [
    ("alpha", 0.0, "alpha=0.0 is not allowed; the output scale must be > 0"),
    ("alpha", -1.0, "alpha=-1.0 is not allowed; the output scale must be > 0"),
    ("alpha", math.inf, "alpha=inf is not allowed; it must be a finite number"),
    ("eps", -0.5, "eps=-0.5 is not allowed; phi's quadratic coefficient must be >= 0"),
    ("width", 0, "width=0 is not allowed; it must be an integer >= 1"),
    ("d", 0, "d=0 is not allowed; it must be an integer >= 1"),
    ("n_test", 1, "n_test=1 is not allowed; it must be an integer >= 2"),
    ("lr", 0.0, "lr=0.0 is not allowed; it must be > 0"),
    ("n_records", 50, "n_records=50 is not allowed with n_steps=30; there are only 31 steps to record (0..n_steps)"),
    ("width", 2.5, "width=2.5 is not allowed; it must be an integer"),
])
def test_bad_values_are_refused_in_one_line(field, value, message):
    with pytest.raises(ValueError) as err:
        SMALL.replace(**{field: value})
    assert str(err.value) == message


@pytest.mark.parametrize("given,message", [
    (dict(alphas=[1.0, -2.0]), "alphas=[1.0, -2.0] is not allowed; output scales must be > 0"),
    (dict(b_alphas="0"), "b_alphas=[0.0] is not allowed; output scales must be > 0"),
    (dict(eps_values=[-1]), "eps_values=[-1.0] is not allowed; eps must be >= 0"),
    (dict(eps_alpha=3.0), "eps_alpha=3.0 is not allowed; it must be one of alphas"),
    (dict(width=0), "width=0 is not allowed; it must be an integer >= 1"),
    (dict(sweep_eps=-1.0), "eps=-1.0 is not allowed; phi's quadratic coefficient must be >= 0"),
])
def test_the_chapter_refuses_bad_settings_before_training(given, message):
    with pytest.raises(ValueError) as err:
        setup("lazy_rich", "quick", given)
    assert str(err.value).startswith(message)


def test_recorded_steps_are_log_spaced_from_zero_to_the_end():
    s = recorded_steps(SMALL.replace(n_steps=10000, n_records=6))
    assert s.tolist() == [0, 1, 10, 100, 1000, 10000]


def test_the_store_round_trip_and_missing_runs(tmp_path):
    store = LazyRichStore(tmp_path)
    with pytest.raises(LookupError, match="not in the store"):
        load_or_train([SMALL], store=store, train=False)
    [run] = load_or_train([SMALL], store=store)
    assert store.get(SMALL).history["step"].tolist() == recorded_steps(SMALL).tolist()
    assert run.history["train_loss"][0] == pytest.approx(1.0) and run.meta["k0_test_loss"] > 0
    assert load_or_train([SMALL], store=store, train=False)[0].key == SMALL.key()


def test_keys_tell_settings_apart_and_ignore_spelling():
    assert SMALL.key() == SMALL.replace(alpha=2).key()
    assert len({SMALL.key(), SMALL.replace(alpha=4.0).key(), SMALL.replace(centre=False).key()}) == 3


# -- the verdict's rule ---------------------------------------------------------------------------------------------
def _settings(delays: dict, lazy_ratio=1.0, move_ratio=0.01, eps_delays=(4.0, 2.0)) -> list[dict]:
    """Synthetic exported settings: per alpha one seed with the given delay (None: never)."""
    out = []
    for i, (a, d) in enumerate(sorted(delays.items())):
        last = i == len(delays) - 1
        out.append({"setting": "A", "sweep": "alpha", "alpha": a, "eps": 0.25, "delay": [d],
                    "test_loss_end": [lazy_ratio * 0.6 if last else 0.05], "lin_test_loss_end": [0.6],
                    "kernel_move_end": [move_ratio if last else 1.0]})
    out += [{"setting": "A", "sweep": "eps", "alpha": 1.0, "eps": e, "delay": [d]} for e, d in zip((0.25, 4.0), eps_delays)]
    return out


GOOD = dict(delays={0.03: 1.0, 1.0: 6.0, 16.0: None})


def test_the_rule_reproduced_when_all_four_tests_hold():
    F = chapter.findings(_settings(**GOOD))
    assert all(F[t] for t in chapter.TESTS) and chapter.verdict(F) == "reproduced"


@pytest.mark.parametrize("change,failed", [
    (dict(delays={0.03: 2.5, 1.0: 6.0, 16.0: None}), "rich"),
    (dict(lazy_ratio=0.7), "lazy"),
    (dict(move_ratio=0.2), "lazy"),
    (dict(eps_delays=(2.0, None)), "eps_shrinks"),
])
def test_each_test_flips_the_verdict_to_partly(change, failed):
    F = chapter.findings(_settings(**(GOOD | change)))
    assert not F[failed] and chapter.verdict(F) == "partly reproduced"


def test_no_grokking_is_not_reproduced():
    F = chapter.findings(_settings(delays={0.03: 1.0, 1.0: 2.9, 16.0: None}))
    assert not F["grokking"] and chapter.verdict(F) == "not reproduced"
    F = chapter.findings(_settings(delays={0.03: 1.0, 1.0: 6.0, 16.0: None}, lazy_ratio=2, eps_delays=(1, 2)))
    F["rich"] = False
    assert chapter.verdict(F) == "not reproduced"                       # grokking alone is not enough


def test_a_runs_facts_on_a_constructed_history():
    """Train loss reaches 0.01 at step 10, test loss half the K_0 level (0.3 of 0.6) at step 100: delay 10."""
    from grok_core.store import Run

    steps = np.array([0, 1, 10, 100, 1000], dtype=np.int32)
    h = {"step": steps, "train_loss": np.array([1, 0.5, 0.01, 0.001, 0.0]), "test_loss": np.array([1, 0.9, 0.7, 0.3, 0.1]),
         **{m: np.arange(5.0) for m in ("lin_test_loss", "alignment", "kernel_move", "param_move", "weight_norm")}}
    f = chapter.a_facts(Run(SMALL, h, {"k0_test_loss": 0.6}))
    assert (f["fit_step"], f["gen_step"], f["delay"], f["test_loss_at_fit"]) == (10, 100, 10.0, 0.7)
    assert chapter.a_facts(Run(SMALL, h, {"k0_test_loss": 0.1}))["gen_step"] is None         # never below 0.05
