"""Models: parameter counts, the fast forward against the plain reference forward, run independence."""
import math

import pytest
import torch

from grok_core.config import RunConfig
from grok_core.measures import MEASURES, MeasureContext
from grok_core.kernels import RowIndex, _inverse_sum, linear, row_chunks, take, take_all
from grok_core.models import build_model, model_class


@pytest.mark.parametrize("kw", [dict(), dict(n_layers=2), dict(n_layers=3, act="gelu"), dict(use_pos=False),
                                dict(operand_offset=5, n_layers=2), dict(embed_init="onehot", d_model=32),
                                dict(model="mlp", d_mlp=24), dict(model="mlp", operand_offset=3, act="gelu"),
                                dict(model="twohot", d_mlp=24), dict(model="onlymlp", d_mlp=8)])
def test_fast_forward_equals_reference_forward(kw):
    """The factorised forward training uses is the paper's forward (models/*.reference_logits), in float64."""
    cfg = RunConfig(p=11, d_model=kw.pop("d_model", 16), n_heads=4, **kw)
    model = build_model(cfg)
    flat = torch.stack([model.init_params(cfg.replace(init_seed=s)) for s in range(2)]).double()
    w = model.layout.views(flat) | {k: v.double() for k, v in model.buffers(2).items()}
    logits = model.head(w, model.trunk(w))
    for r in range(2):
        torch.testing.assert_close(logits[r], model.reference_logits(w, r), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kw", [dict(), dict(n_layers=3, operand_offset=2), dict(model="mlp", d_mlp=32),
                                dict(model="twohot", d_mlp=32), dict(model="onlymlp", d_mlp=8)])
def test_trunk_on_chosen_rows_equals_the_full_table_at_those_rows(kw):
    """Training runs the trunk on each run's own train rows; it must agree with the whole table."""
    cfg = RunConfig(p=11, d_model=16, n_heads=4, **kw)
    model = build_model(cfg)
    flat = torch.stack([model.init_params(cfg.replace(init_seed=s)) for s in range(3)]).double()
    w = model.layout.views(flat)
    g = torch.Generator().manual_seed(0)
    rows = torch.stack([torch.randperm(cfg.p ** 2, generator=g)[:40] for _ in range(3)])     # [run, 40]
    full = model.trunk(w)
    part = model.trunk(w, rows // cfg.p, rows % cfg.p)
    torch.testing.assert_close(part, torch.gather(full, 1, rows[..., None].expand(-1, -1, full.shape[-1])),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("add", [None, "bias", "full"])
def test_chunked_linear_equals_one_product_with_gradients(add, compiled):
    """With few runs `linear` cuts the rows into chunks; values and all gradients stay those of x @ W + add,
    eager (the product adds) and compiled (the addition comes after it)."""
    g = torch.Generator().manual_seed(1)
    R, n, d_in, d_out = 2, 1024, 8, 5
    assert row_chunks(R, n) == 4 and row_chunks(R, n + 1) == 1 and row_chunks(32, n) == 1
    x, W = torch.randn(R, n, d_in, generator=g, dtype=torch.double), torch.randn(R, d_in, d_out, generator=g, dtype=torch.double)
    a = {None: None, "bias": torch.randn(R, d_out, generator=g, dtype=torch.double),
         "full": torch.randn(R, n, d_out, generator=g, dtype=torch.double)}[add]
    ins = [t.requires_grad_() for t in (x, W, a) if t is not None]
    out = (torch.compile(linear, fullgraph=True) if compiled else linear)(x, W, a)
    ref = torch.bmm(x, W) + (0 if a is None else a if add == "full" else a[:, None])
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    gy = torch.randn(R, n, d_out, generator=g, dtype=torch.double)
    for a_grad, r_grad in zip(torch.autograd.grad(out, ins, gy), torch.autograd.grad(ref, ins, gy)):
        torch.testing.assert_close(a_grad, r_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("onehot", [False, True])
@pytest.mark.parametrize("R,n", [(3, 40), (2, 512)])
def test_take_by_row_index_has_the_gather_gradient(onehot, R, n):
    """Both backwards without atomic adds (inverse table, one-hot product, whole or in row chunks) give the
    gradient of a plain gather in float64: values held by many rows, by one, by none."""
    g = torch.Generator().manual_seed(2)
    p = 7
    idx = torch.randint(0, p - 1, (R, n), generator=g)                # value p - 1 is held by no row
    idx[1] = 2                                                         # one run: every row holds the same value
    x = torch.randn(R, p, 4, 5, generator=g, dtype=torch.double, requires_grad=True)
    gy = torch.randn(R, n, 4, 5, generator=g, dtype=torch.double)
    ri = RowIndex(idx, p, onehot=onehot)
    if onehot:
        S = row_chunks(R, n)
        assert S == (1 if n == 40 else 2)
        assert ri.inv is None and ri.onehot.shape == (R * S, p, n // S)
        assert torch.equal(ri.onehot.sum(1), torch.ones(R * S, n // S))
    else:
        assert ri.onehot is None and ri.inv.shape == (R, p, n)
    ref = torch.gather(x, 1, idx[..., None, None].expand(-1, -1, 4, 5))
    out = take(x, ri)
    assert torch.equal(out, ref) and torch.equal(take(x, idx), ref)
    torch.testing.assert_close(torch.autograd.grad(out, x, gy)[0], torch.autograd.grad(ref, x, gy)[0],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("how", ["inverse", "onehot", "plain"])
def test_take_all_equals_one_take_per_table(how):
    """Several tables of different shapes by the same rows (concatenated into one gather on the CPU, except
    through a one-hot RowIndex): each comes back in its own shape with its own gather's values and gradient."""
    g = torch.Generator().manual_seed(3)
    p, R, n = 7, 2, 30
    idx = torch.randint(0, p, (R, n), generator=g)
    tables = {"v": torch.randn(R, p, 4, 3, generator=g, dtype=torch.double, requires_grad=True),
              ("score", 2, 0): torch.randn(R, p, 4, generator=g, dtype=torch.double, requires_grad=True),
              "x": torch.randn(R, p, 6, generator=g, dtype=torch.double, requires_grad=True)}
    by = idx if how == "plain" else RowIndex(idx, p, onehot=how == "onehot")
    out = take_all(tables, by, p)
    assert list(out) == list(tables)
    gys = {k: torch.randn(y.shape, generator=g, dtype=torch.double) for k, y in out.items()}
    for k, x in tables.items():
        ref = take(x, idx)
        assert out[k].shape == (R, n, *x.shape[2:]) and torch.equal(out[k], ref)
        got = torch.autograd.grad(out[k], x, gys[k], retain_graph=True)[0]
        torch.testing.assert_close(got, torch.autograd.grad(ref, x, gys[k])[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("onehot", [False, True])
@pytest.mark.parametrize("kw", [dict(n_layers=2), dict(model="mlp", d_mlp=32)])
def test_trunk_gradient_by_row_index_equals_plain_indices(kw, onehot):
    cfg = RunConfig(p=11, d_model=16, n_heads=4, **kw)
    model = build_model(cfg)
    flat = torch.stack([model.init_params(cfg.replace(init_seed=s)) for s in range(2)]).double().requires_grad_()
    rows = torch.stack([torch.randperm(cfg.p ** 2, generator=torch.Generator().manual_seed(s))[:50] for s in range(2)])
    i, j = rows // cfg.p, rows % cfg.p
    grads = []
    for a, b in ((i, j), (RowIndex(i, cfg.p, onehot), RowIndex(j, cfg.p, onehot))):
        w = model.layout.views(flat)
        grads.append(torch.autograd.grad(model.head(w, model.trunk(w, a, b)).square().sum(), flat)[0])
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_layers", [1, 3])
def test_logits_on_chunked_rows_equal_the_full_table(n_layers):
    """512 rows for 2 runs: the head's and the trunk's products run chunked; the logits do not change."""
    cfg = RunConfig(p=23, d_model=16, n_heads=4, n_layers=n_layers)
    model = build_model(cfg)
    flat = torch.stack([model.init_params(cfg.replace(init_seed=s)) for s in range(2)]).double()
    w = model.layout.views(flat)
    g = torch.Generator().manual_seed(0)
    rows = torch.stack([torch.randperm(cfg.p ** 2, generator=g)[:512] for _ in range(2)])
    assert row_chunks(2, 512) > 1
    full = model.head(w, model.trunk(w))
    part = model.head(w, model.trunk(w, rows // cfg.p, rows % cfg.p))
    torch.testing.assert_close(part, torch.gather(full, 1, rows[..., None].expand(-1, -1, cfg.p)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kw,count", [(dict(n_layers=1), 222_592), (dict(n_layers=2), 419_840),
                                      (dict(n_layers=3), 617_088), (dict(n_layers=4), 814_336),
                                      (dict(d_model=256, d_mlp=512), 575_744), (dict(d_model=256, d_mlp=1024), 838_400),
                                      (dict(model="mlp"), 522_081)])
def test_parameter_counts_match_the_paper_models(kw, count):
    cfg = RunConfig(p=97, **kw)
    assert build_model(cfg).layout.size == count
    assert model_class(cfg.model).n_params(cfg) == count          # the planner's count, without a model


def test_init_scale_and_seeding():
    cfg = RunConfig(p=97)
    model = build_model(cfg)
    a, b = model.init_params(cfg), model.init_params(cfg)
    assert torch.equal(a, b)
    assert not torch.equal(a, model.init_params(cfg.replace(init_seed=1)))
    W_U = model.layout.views(a[None])["W_U"]
    assert abs(W_U.std().item() - 1 / math.sqrt(128)) < 0.005
    assert model.layout.views(a[None])["0.b_in"].abs().max() == 0


def test_toeplitz_and_circulant_embeddings():
    cfg = RunConfig(p=5, d_model=8, n_heads=2, embed_init="toeplitz")
    W = build_model(cfg).layout.views(build_model(cfg).init_params(cfg)[None])["W_E"][0] * math.sqrt(8)
    for r in range(cfg.d_vocab):
        for c in range(8):
            assert W[r, c] == W[0, abs(r - c)]
    cfg = cfg.replace(embed_init="circulant")
    W = build_model(cfg).layout.views(build_model(cfg).init_params(cfg)[None])["W_E"][0]
    assert torch.equal(W[1], torch.roll(W[0], 1))


def test_onehot_embedding_is_a_frozen_buffer():
    cfg = RunConfig(p=5, d_model=8, n_heads=2, embed_init="onehot")
    model = build_model(cfg)
    assert "W_E" not in model.layout.shapes
    W = model.buffers(1)["W_E"][0]
    assert torch.equal(W[:6, :6], torch.eye(6)) and W.sum() == 6


def test_mlp_hidden_med_uses_the_diagonal_inputs():
    cfg = RunConfig(p=7, model="mlp", d_model=8, d_mlp=16, operand_offset=2)
    model = build_model(cfg)
    w = model.layout.views(model.init_params(cfg)[None].double())
    toks = torch.stack([torch.arange(7), torch.arange(7) + 2, torch.full((7,), cfg.d_vocab - 1)], 1)
    h = torch.relu(w["W_E"][0][toks].reshape(7, -1) @ w["W_1"][0] + w["b_1"][0])          # hidden1 of (i, i + d, =)
    expected = (torch.roll(h, -1, 0) - h).norm(dim=-1).mean()
    ctx = MeasureContext(cfg, model, w, flat=None, losses=None, accuracies=None)
    got = MEASURES["med_hidden"].fn(ctx)[0]
    assert got.item() == pytest.approx(expected.item())


def test_the_cpu_inverse_sum_adds_the_masked_gathers_terms_in_its_order():
    """float32, bit for bit: on a CPU the inverse table's sum copies rows (its filler an appended zero row) where a
    masked gather was used before; the same terms in the same order, so training's numbers do not change."""
    g = torch.Generator().manual_seed(4)
    R, p, n = 3, 11, 300
    idx = torch.randint(0, p - 1, (R, n), generator=g)
    inv = RowIndex(idx, p, onehot=False).inv
    grad = torch.randn(R, n, 8, generator=g)
    real = (inv < n)[..., None]
    rows = torch.gather(grad, 1, inv.clamp(max=n - 1).view(R, -1, 1).expand(-1, -1, 8)).view(R, p, -1, 8)
    assert torch.equal(_inverse_sum(inv, grad), torch.where(real, rows, 0.0).sum(2))
