"""The 2-hot MLP of Prieto et al. and the stability chapter: homogeneity, the measures that apply to it, the
per-tensor NLM cosine on a hand case, and the chapter's checks and verdict rule."""
import pytest
import torch

from grok_core.chapters import setup
from grok_core.chapters import stability as chapter
from grok_core.config import RunConfig
from grok_core.measures import MEASURES
from grok_core.models import build_model
from grok_core.train import metric_names


def test_logits_are_homogeneous_of_degree_three_in_the_weights():
    """No biases: scaling every weight by c scales every logit by c^3 (float64), so growing the weights along
    themselves changes no prediction (the NLM direction)."""
    cfg = RunConfig(p=7, model="twohot", d_mlp=16)
    model = build_model(cfg)
    flat = model.init_params(cfg)[None].double()
    w, w2 = model.layout.views(flat), model.layout.views(2 * flat)
    torch.testing.assert_close(model.head(w2, model.trunk(w2)), 8 * model.head(w, model.trunk(w)), rtol=1e-12, atol=0)


def test_the_embedding_measures_do_not_apply_and_naming_one_is_refused():
    cfg = RunConfig(p=7, model="twohot", d_mlp=16)
    names = metric_names(cfg)
    assert "med" not in names and "med_ref" not in names and "test_acc" in names
    assert "med" in metric_names(RunConfig(p=7))
    with pytest.raises(ValueError, match="no token embedding"):
        metric_names(cfg.replace(measures="embed_eff_dim"))
    with pytest.raises(ValueError, match="operand_offset"):
        build_model(cfg.replace(operand_offset=2))


def test_nlm_cosine_per_tensor_on_a_hand_case():
    """Gradient -w on W_1 (cosine 1) and orthogonal to w on W_2 and W_3 (cosine 0): the mean is 1/3; the global
    cosine weighs W_1 by its share of the norm."""
    cfg = RunConfig(p=3, model="twohot", d_mlp=2)
    model = build_model(cfg)
    flat = torch.zeros(1, model.layout.size, dtype=torch.float64)
    grad = torch.zeros_like(flat)
    v = model.layout.views(flat)
    g = model.layout.views(grad)
    v["W_1"][:] = 1.0
    g["W_1"][:] = -1.0
    for name in ("W_2", "W_3"):
        v[name][..., 0] = 1.0
        g[name][..., 1] = 1.0
    ctx = type("Ctx", (), {"model": model, "grad": grad, "flat": flat})()
    assert MEASURES["nlm_cosine_tensors"].fn(ctx).item() == pytest.approx(1 / 3, abs=1e-12)
    n1, n_all = v["W_1"].numel(), (flat != 0).sum().item()
    assert MEASURES["nlm_cosine"].fn(ctx).item() == pytest.approx(n1 / n_all, abs=1e-12)


@pytest.mark.parametrize("given,match", [(dict(prec_bits="16,8"), "prec_bits"), (dict(prec_fracs="0.4,1.2"), "prec_fracs"),
                                         (dict(mlp_eps=0.0), "mlp_eps"), (dict(long_steps=0), "long_steps")])
def test_bad_settings_are_refused_before_training(given, match):
    with pytest.raises(ValueError, match=match):
        setup("stability", "quick", given)


def setting(part, loss="ce", bits=32, transform="none", wd=0.0, frac=0.4, grok=(None, None), late=(0.01, 0.01),
            at_sc=(0.001, 0.001), peak=(0.8, 0.8), sc50=(100, 100)):
    return {"part": part, "loss": loss, "bits": bits, "transform": transform, "wd": wd, "frac": frac, "runs": 2,
            "n_steps": 1000, "test_acc_95_at": list(grok), "late_test_acc": list(late), "test_acc_at_sc_50": list(at_sc),
            "peak_nlm": list(peak), "sc_50_at": list(sc50)}


def test_the_precision_text_names_the_gpu_sum_only_for_equal_collapse_on_a_gpu():
    from types import SimpleNamespace
    prec = [setting("precision", bits=16, sc50=(300, 300)), setting("precision", bits=32, sc50=(300, 300)),
            setting("precision", bits=64, sc50=(700, 700))]
    gpu, cpu = [SimpleNamespace(meta={"device": "NVIDIA H200"})], [SimpleNamespace(meta={"device": "cpu (x86_64)"})]
    assert "median SC 50 % step 300 / 300 / 700" in chapter.precision_text(prec, gpu)
    assert "CUDA" in chapter.precision_text(prec, gpu) and "CUDA" not in chapter.precision_text(prec, cpu)
    prec[0] = setting("precision", bits=16, sc50=(200, 200))                   # float16 sooner: nothing to explain
    assert "CUDA" not in chapter.precision_text(prec, gpu)


def test_each_claim_of_the_rule_is_flipped_by_its_numbers():
    base = [setting("fig1"), setting("fig1", bits=64, sc50=(500, 500)),
            setting("fig1", loss="stablemax", grok=(10, 20)), setting("fig1", loss="stablemax", bits=64, grok=(10, None)),
            setting("fig1", transform="orthogonal", grok=(5, 6))]
    F = chapter.findings(base)
    assert F == {"collapse": True, "alignment": True, "sooner": True, "stablemax": True, "orthogonal": True}
    assert chapter.verdict(F) == "reproduced"
    flipped = chapter.findings([setting("fig1", late=(0.5, 0.5), peak=(0.1, 0.1))] + base[1:])
    assert not flipped["collapse"] and not flipped["alignment"]
    assert not chapter.findings([base[0], setting("fig1", bits=64, sc50=(50, 50))] + base[2:])["sooner"]
    assert not chapter.findings(base[:3] + [setting("fig1", loss="stablemax", bits=64)] + base[4:])["stablemax"]
    prec = [setting("precision", bits=b, late=(a, a)) for b, a in ((16, 0.1), (32, 0.2), (64, 0.3))]
    assert chapter.findings(base + prec)["precision"]
    assert not chapter.findings(base + prec[:2] + [setting("precision", bits=64, late=(0.15, 0.15))])["precision"]
    assert chapter.findings(base + prec[:2] + [setting("precision", bits=64, late=(0.195, 0.195))])["precision"]  # noise
    assert "precision" not in chapter.findings(base + prec[:1])                 # one precision: not tested
    assert chapter.verdict({"a": True, "b": False}) == "partly reproduced"
