"""Our batched SGLD estimate of the local learning coefficient against devinterp's (its 1.x API) on one trained run.

Both run the same chain (w ← w − ε/2 (nβ∇L + γ(w − w*)) + √ε ξ, draws after a burn-in, λ̂ = nβ (mean L − L(w*)))
with the measure's settings, but from different noise, so they are compared as two samples of chains; a chain with a
doubled step must be told apart by the same rule, or the comparison could not fail.
"""
import math

import pytest
import torch

from grok_core import llc
from grok_core.config import RunConfig
from grok_core.train import Trainer

devinterp_sampler = pytest.importorskip("devinterp.slt.sampler")
from devinterp.optim.sgld import SGLD  # noqa: E402

CHAINS = 16
# a two-sample z statistic above 4.5 has probability < 1e-5 when both estimators have the same law
Z = 4.5


CFG = RunConfig(p=23, d_model=16, n_heads=2, d_mlp=32, frac_train=0.5, n_steps=300, lr=1e-2)


def mean_train_loss(t: Trainer):
    """flat [run, d] -> [run]: each run's mean train loss, as the trainer computes it (float64)."""
    d = t.data

    def loss(flat):
        per_sample = t.loss_fn(t._logits(t._weights(flat), d.train_ij, t.base_train), d.train_labels)
        return (per_sample * d.train_w).sum(-1)
    return loss


def trained_run():
    """One small run trained a few hundred steps in float64: its weights [1, d], loss, and train-set size."""
    t = Trainer([CFG], "cpu", cuda_graph=False, dtype=torch.float64)
    t.run()
    return t.flat.detach().clone(), mean_train_loss(t), int((t.data.train_w > 0).sum())


def ours(flat, n, step):
    """CHAINS chains at once: the run's weights as CHAINS rows of one batch, each with its own noise seed."""
    batch = Trainer([CFG] * CHAINS, "cpu", cuda_graph=False, dtype=torch.float64)
    return llc.sgld_llc(mean_train_loss(batch), flat.expand(CHAINS, -1), n, step=step, seeds=list(range(CHAINS)))


def devinterps(flat, loss, n):
    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(flat.clone())

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(1)), batch_size=1)
    out = devinterp_sampler.estimate_learning_coeff_with_summary(
        Flat(), data, evaluate=lambda model, _batch: loss(model.w)[0], sampling_method=SGLD,
        optimizer_kwargs=dict(lr=llc.STEP, localization=llc.PULL, nbeta=n / math.log(n)),
        num_draws=llc.DRAWS - llc.BURN_IN, num_burnin_steps=llc.BURN_IN, num_chains=CHAINS, seed=0, verbose=False)
    return torch.tensor([out[f"llc-chain/{i}"] for i in range(CHAINS)], dtype=torch.float64)


def z(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.mean() - b.mean()).abs() / (a.var() / len(a) + b.var() / len(b)).sqrt())


@pytest.mark.slow
def test_our_llc_has_devinterps_law_and_a_doubled_step_does_not():
    flat, loss, n = trained_run()
    theirs = devinterps(flat, loss, n)
    same, doubled = ours(flat, n, llc.STEP), ours(flat, n, 2 * llc.STEP)
    assert theirs.mean() > 0 and same.mean() > 0
    assert z(same, theirs) < Z, (same.mean(), theirs.mean())
    assert z(doubled, theirs) > Z, (doubled.mean(), theirs.mean())
