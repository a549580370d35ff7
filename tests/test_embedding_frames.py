"""The theory chapter's slider figure: snapshot weights -> operand embeddings (by the model's layout) -> two leading
principal components, each frame turned to match the one before; and the self-contained HTML that shows them."""
import json
import math

import numpy as np
import pytest
import torch

from grok_core import interactive
from grok_core.config import RunConfig
from grok_core.embedding_frames import align, embedding_frames, leading_components, operand_embeddings
from grok_core.models import build_model


def circle(p: int, d: int, k: int = 1, seed: int = 0, radius: float = 2.0) -> np.ndarray:
    """p points evenly on a circle of frequency k in a random plane of R^d, plus an offset."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, 2)))
    angle = 2 * np.pi * k * np.arange(p) / p
    return radius * np.stack([np.cos(angle), np.sin(angle)], 1) @ basis.T + rng.normal(size=d)


def test_points_on_a_circle_lie_wholly_in_their_two_leading_components():
    xy, share = leading_components(circle(11, 8, k=3))
    assert share == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(np.linalg.norm(xy, axis=1), 2.0)
    cloud = np.random.default_rng(1).normal(size=(97, 128))
    assert leading_components(cloud)[1] < 0.2          # an isotropic cloud spreads over many directions


def test_align_undoes_a_rotation_and_a_reflection_between_frames():
    xy, _ = leading_components(circle(13, 6) + np.random.default_rng(2).normal(scale=0.05, size=(13, 6)))
    t = 0.7
    turned = xy @ np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]) @ np.diag([1.0, -1.0])
    first, second = align([xy, turned])
    assert np.allclose(second, xy) and not np.allclose(turned, xy)


def test_frames_read_the_operand_rows_of_w_e_from_the_snapshots():
    cfg = RunConfig(p=11, d_model=16, n_steps=10)
    layout = build_model(cfg).layout
    weights = torch.zeros(2, layout.size, dtype=torch.float16)
    w_e = layout.views(weights)["W_E"]
    assert w_e.shape == (2, cfg.d_vocab, 16) and cfg.d_vocab > cfg.p
    w_e[0, :cfg.p] = torch.from_numpy(np.random.default_rng(3).normal(size=(11, 16)))
    w_e[1, :cfg.p] = torch.from_numpy(circle(11, 16, k=2))
    w_e[1, cfg.p:] = 50.0                              # the '=' token is not an operand: it must not count
    assert np.array_equal(operand_embeddings(cfg, weights)[1], w_e[1, :11].double().numpy())
    frames = embedding_frames(cfg, {"step": torch.tensor([0, 10], dtype=torch.int32), "weights": weights})
    assert frames["step"] == [0, 10] and len(frames["xy"]) == 2 and len(frames["xy"][1]) == 11
    assert frames["share"][1] == pytest.approx(1.0, abs=1e-3) and frames["share"][0] < 0.7
    assert np.allclose(np.linalg.norm(frames["xy"][1], axis=1), 1.0, atol=1e-3)   # scaled to unit radius
    assert frames["radius"][1] == pytest.approx(2.0, rel=1e-2)                      # float16 weights


def test_the_slider_html_carries_its_data_and_script_and_refuses_bad_input():
    frames = {"step": [0, 5], "xy": [[[1.0, 0.0]], [[0.0, 1.0]]], "share": [0.5, 0.9]}
    steps = np.arange(2001)
    history = {"step": steps, "train_acc": np.linspace(0, 1, 2001), "test_acc": np.full(2001, 0.5),
               "med": np.full(2001, np.nan)}
    html = interactive.embedding_slider(frames, history, "demo-slider", 'a "quoted" <b>description</b>')
    assert html.count("<script>") == 1 and "function grokbookEmbeddingSlider" in html
    assert 'aria-label="a &quot;quoted&quot; &lt;b>description&lt;/b>"' in html
    call = html.split('grokbookEmbeddingSlider(document.getElementById("demo-slider"), ', 1)[1]
    data = json.loads(call.rsplit(");\n</script>", 1)[0])
    assert data["step"] == [0, 5] and data["xy"] == frames["xy"]
    curves = data["curves"]
    assert curves["step"][0] == 0 and curves["step"][-1] == 2000 and len(curves["step"]) <= 302
    assert sum(s < 100 for s in curves["step"]) > 50      # spread in log(step), like the figure's axis
    assert curves["med"][0] is None                       # NaN becomes null, which JSON can carry
    with pytest.raises(ValueError, match="element_id='Demo slider' is not allowed"):
        interactive.embedding_slider(frames, history, "Demo slider", "d")
    with pytest.raises(ValueError, match="a slider needs at least 2 frames; got 1"):
        interactive.embedding_slider({"step": [0], "xy": [[[0, 0]]], "share": [1]}, history, "a", "d")


def test_a_closing_script_tag_in_the_data_cannot_end_the_script():
    frames = {"step": [0, 1], "xy": [[[0, 0]], [[0, 0]]], "share": [1, 1]}
    history = {"step": np.arange(3), "train_acc": [0, 1, 1], "test_acc": [0, 0, 1], "med": [1, 1, 1]}
    html = interactive.embedding_slider(dict(frames, share=["</script>", 1]), history, "a", "d")
    assert html.count("</script>") == 1
