"""The book's one moving figure, as self-contained HTML: the data, its layout and a small hand-written script
(embedding_slider.js, beside this module) inline, so it works in the built book without a kernel or a network,
and in a notebook viewer that runs a trusted notebook's scripts.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).with_name("embedding_slider.js")
CURVES = ("train_acc", "test_acc", "med")


def curve_points(history: dict, max_points: int = 300) -> dict:
    """The run's accuracy and MED curves at at most about max_points steps, spread evenly in log(1 + step) (the
    figure's step axis), rounded to 4 decimals."""
    steps = np.asarray(history["step"])
    targets = np.geomspace(1, steps[-1] + 1, max_points) - 1
    idx = np.unique(np.concatenate([[0], np.searchsorted(steps, targets).clip(0, len(steps) - 1), [len(steps) - 1]]))
    out = {"step": steps[idx].astype(int).tolist()}
    for key in CURVES:
        v = np.asarray(history[key], dtype=np.float64)[idx]
        out[key] = [round(float(x), 4) if np.isfinite(x) else None for x in v]
    return out


def embedding_slider(frames: dict, history: dict, element_id: str, description: str) -> str:
    """HTML of the slider figure: the frames (grok_core.embedding_frames.embedding_frames) beside the run's
    curves; `description` is the figure's text alternative (aria-label) for readers who cannot see it."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", element_id):
        raise ValueError(f"element_id={element_id!r} is not allowed; use lower-case letters, digits and '-'")
    if len(frames["step"]) < 2:
        raise ValueError(f"a slider needs at least 2 frames; got {len(frames['step'])}")
    data = {k: frames[k] for k in ("step", "xy", "share")} | {"curves": curve_points(history)}
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    label = description.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return f"""<div class="grokbook-embedding" id="{element_id}" role="group" aria-label="{label}">
<div class="ges-panels" style="display:flex;flex-wrap:wrap;gap:0.5em;align-items:flex-start">
<svg class="ges-pcs" viewBox="0 0 300 300" style="flex:1 1 240px;max-width:320px" role="img"
 aria-label="operand embeddings in two principal components"></svg>
<svg class="ges-curves" viewBox="0 0 420 300" style="flex:2 1 300px;max-width:460px" role="img"
 aria-label="accuracy and MED against training step"></svg>
</div>
<div class="ges-controls" style="display:flex;flex-wrap:wrap;align-items:center;gap:0.6em;margin-top:0.3em">
<button type="button" class="ges-play">play</button>
<input type="range" class="ges-range" min="0" max="0" step="1" value="0" style="flex:1 1 200px" aria-label="snapshot">
<span class="ges-label" style="flex:1 1 100%;font-size:0.9em" aria-live="polite"></span></div>
<script>
{SCRIPT.read_text()}
grokbookEmbeddingSlider(document.getElementById("{element_id}"), {payload});
</script>
</div>"""
