// The theory chapter's slider figure, drawn in the page with SVG: no kernel, no network, no library.
// grokbookEmbeddingSlider(root, data): root holds .ges-pcs, .ges-curves (empty <svg>s), .ges-range
// (<input type=range>), .ges-play (<button>) and .ges-label; data is {step, xy, share} (the frames of
// grok_core/embedding_frames.py) and {curves: {step, train_acc, test_acc, med}}.
function grokbookEmbeddingSlider(root, data) {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const el = (tag, attrs, parent) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  };
  const text = (s, attrs, parent) => { const t = el("text", attrs, parent); t.textContent = s; return t; };
  const p = data.xy[0].length;
  const colour = i => `hsl(${Math.round(330 * i / p)}, 75%, 45%)`;

  // left: the operand embeddings in the frame's two leading principal components
  const pcs = root.querySelector(".ges-pcs");
  const R = 130, C = 150;
  el("circle", {cx: C, cy: C, r: R, fill: "none", stroke: "#ccc", "stroke-dasharray": "3 3"}, pcs);
  const ring = el("polygon", {fill: "none", stroke: "#999", "stroke-width": 0.8}, pcs);
  const dots = [];
  for (let i = 0; i < p; i++) dots.push(el("circle", {r: 4, fill: colour(i)}, pcs));
  const labelled = [0, 1, 2].map(k => Math.round(k * p / 3));
  const names = labelled.map(i => text(String(i), {"font-size": 12, fill: colour(i)}, pcs));

  // right: accuracy and MED over training, on a log-step axis, with the frame's step marked
  const cv = root.querySelector(".ges-curves");
  const W = 420, H = 300, L = 40, B = 40, T = 30, Rm = 10;
  const steps = data.curves.step, last = steps[steps.length - 1];
  const lx = s => Math.log10(1 + s), xMax = lx(last);
  const X = s => L + (W - L - Rm) * lx(s) / xMax, Y = v => H - B - (H - B - T) * v;
  el("line", {x1: L, y1: Y(0), x2: W - Rm, y2: Y(0), stroke: "#444"}, cv);
  el("line", {x1: L, y1: Y(0), x2: L, y2: Y(1), stroke: "#444"}, cv);
  for (let d = 1; d <= last; d *= 10) {
    el("line", {x1: X(d), y1: Y(0), x2: X(d), y2: Y(1), stroke: "#eee"}, cv);
    text(d >= 1000 ? `${d / 1000}k` : String(d), {x: X(d), y: Y(0) + 16, "font-size": 12, "text-anchor": "middle"}, cv);
  }
  for (const v of [0, 0.5, 1]) text(String(v), {x: L - 6, y: Y(v) + 4, "font-size": 12, "text-anchor": "end"}, cv);
  text("step", {x: (L + W) / 2, y: H - 6, "font-size": 12, "text-anchor": "middle"}, cv);
  const medMax = Math.max(...data.curves.med.filter(Number.isFinite)) || 1;
  const series = [["train_acc", "#0072B2", "train accuracy", 1], ["test_acc", "#D55E00", "test accuracy", 1],
                  ["med", "#009E73", "MED / its max", medMax]];
  series.forEach(([key, col, name, scale], k) => {
    const pts = data.curves[key].map((v, i) => `${X(steps[i]).toFixed(1)},${Y(v / scale).toFixed(1)}`);
    el("polyline", {points: pts.join(" "), fill: "none", stroke: col, "stroke-width": 1.6}, cv);
    el("line", {x1: L + 8 + 125 * k, y1: 10, x2: L + 26 + 125 * k, y2: 10, stroke: col, "stroke-width": 2}, cv);
    text(name, {x: L + 30 + 125 * k, y: 14, "font-size": 11}, cv);
  });
  const marker = el("line", {y1: Y(0), y2: Y(1), stroke: "#222", "stroke-dasharray": "4 3"}, cv);

  const range = root.querySelector(".ges-range"), label = root.querySelector(".ges-label");
  range.max = String(data.step.length - 1);
  function show(k) {
    const xy = data.xy[k];
    const at = xy.map(([x, y]) => [C + R * x, C - R * y]);
    at.forEach(([x, y], i) => { dots[i].setAttribute("cx", x.toFixed(1)); dots[i].setAttribute("cy", y.toFixed(1)); });
    ring.setAttribute("points", at.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "));
    labelled.forEach((i, j) => { names[j].setAttribute("x", at[i][0] + 6); names[j].setAttribute("y", at[i][1] - 6); });
    marker.setAttribute("x1", X(data.step[k])); marker.setAttribute("x2", X(data.step[k]));
    label.textContent = `step ${data.step[k].toLocaleString("en")} (frame ${k + 1} of ${data.step.length}): ` +
      `the two components hold ${Math.round(100 * data.share[k])} % of the embeddings' variance`;
    root.dataset.frame = String(k);
  }
  range.addEventListener("input", () => show(Number(range.value)));
  let timer = null;
  const play = root.querySelector(".ges-play");
  play.addEventListener("click", () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; return; }
    if (Number(range.value) >= data.step.length - 1) range.value = "0";
    play.textContent = "pause";
    timer = setInterval(() => {
      const k = Number(range.value) + 1;
      if (k >= data.step.length) { clearInterval(timer); timer = null; play.textContent = "play"; return; }
      range.value = String(k);
      show(k);
    }, 350);
  });
  range.value = "0";
  show(0);
}
