"""The shared figure style: figures are shown as PNGs with twice the dots of their declared width, log-step axes
keep step 0 and thin curves evenly in log(step), and a legend put below its axes lies outside them."""
import matplotlib

matplotlib.use("Agg")   # noqa: E402  (a test process has no display; notebooks keep the inline backend)

import numpy as np
import pytest
from matplotlib import pyplot as plt

from grok_core import plotting


class FakeRun:
    def __init__(self, steps, values):
        self.history = {"step": np.asarray(steps), "test_acc": np.asarray(values, dtype=float)}


@pytest.fixture(autouse=True)
def style():
    with matplotlib.rc_context():
        plotting.use_style()
        yield
    plt.close("all")


def test_a_figure_is_glued_as_a_png_at_png_dpi_declared_at_css_dpi_with_its_figure_block(monkeypatch):
    import base64

    from myst_nb.ext.glue import GLUE_PREFIX

    shown, glued = [], []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.setattr("myst_nb.ext.glue.ipy_display", lambda bundle, raw, metadata: glued.append((bundle, metadata)))
    fig, axes = plotting.figure(2, height=2.5)
    axes[0, 0].plot([0, 1], [0, 1])
    plotting.show_figure(fig, "a caption\n\nwith a break", "ch-curves", "two panels of lines")
    (image, image_meta), (block, block_meta) = glued
    data = image["image/png"]
    width, height = plotting.png_size(base64.b64decode(data) if isinstance(data, str) else data)
    assert plotting.PNG_DPI >= 150
    # cropped to its content, a book-width figure is about BOOK_WIDTH inches wide at PNG_DPI
    assert abs(width - plotting.BOOK_WIDTH * plotting.PNG_DPI) < 0.1 * plotting.BOOK_WIDTH * plotting.PNG_DPI
    assert image_meta["image/png"] == {"width": round(width * plotting.CSS_DPI / plotting.PNG_DPI)}
    # the image is shown in the notebook (display=True), the figure block only glued, for the book
    assert image_meta["scrapbook"] == {"name": "ch-curves", "mime_prefix": ""}
    assert block_meta["scrapbook"] == {"name": "ch-curves-figure", "mime_prefix": GLUE_PREFIX}
    assert block[GLUE_PREFIX + "text/markdown"] == ("::::{glue:figure} ch-curves\n:name: ch-curves\n"
                                                    ":alt: two panels of lines\na caption with a break\n::::\n")
    assert [c.data for c in shown] == ["a caption\n\nwith a break"]
    assert not plt.get_fignums()   # closed


@pytest.mark.parametrize("name, caption, alt, error", [
    ("Ch Curves", "c", "a", "figure name='Ch Curves' is not allowed"),
    ("ch-curves", "c", "", "a figure needs a alt"),
    ("ch-curves", " ", "a", "a figure needs a caption"),
    ("ch-curves", "c", "one\ntwo", "alt text must be one line"),
])
def test_a_figure_block_refuses_a_bad_name_and_missing_or_broken_text(name, caption, alt, error):
    with pytest.raises(ValueError, match=error):
        plotting.figure_markdown(name, caption, alt)


def test_runs_caption_names_shared_seeds_once():
    from types import SimpleNamespace

    def run(i, s, key):
        return SimpleNamespace(config=SimpleNamespace(init_seed=i, split_seed=s), key=key)
    shared = {g: [run(i, s, f"{g}{i}{s}") for i in range(4) for s in range(2)] for g in ("a", "b", "c")}
    assert plotting.runs_caption(shared) == "Every setting: init seeds 0–3 × split seeds 0, 1; 8 runs each."
    apart = {"a": [run(0, 0, "k1")], "b": [run(1, 0, "k2")]}
    assert plotting.runs_caption(apart) == "a: init seeds 0 × split seed 0; config hash `k1`; b: init seeds 1 × split seed 0; config hash `k2`."


def test_png_size_rejects_other_data():
    with pytest.raises(ValueError):
        plotting.png_size(b"GIF89a" + bytes(20))


def test_style_fonts_are_at_least_ten_points():
    for key in ("font.size", "axes.labelsize", "legend.fontsize", "xtick.labelsize", "ytick.labelsize"):
        assert float(matplotlib.rcParams[key]) >= 10


def test_step_labels():
    assert [plotting._step_label(x) for x in (0, 10, 100, 1000, 2500, 30000)] == ["0", "10", "100", "1k", "2.5k", "30k"]


def test_thin_log_keeps_the_first_and_last_step_and_spreads_evenly_in_log_step():
    steps = np.arange(30001)
    idx = plotting._thin_log(steps, max_points=300)
    assert idx[0] == 0 and idx[-1] == 30000
    assert len(idx) <= 302 and np.all(np.diff(idx) > 0)
    # the first two of the 4.5 decades hold more than a sixth of the points
    assert np.sum(steps[idx] < 100) > 50
    # uniform thinning would keep about 1 of them
    assert np.sum(steps[plotting._thin(len(steps), 300)] < 100) <= 1
    assert np.array_equal(plotting._thin_log(np.arange(10), max_points=300), np.arange(10))


def test_plot_runs_on_a_log_step_axis_thins_in_log_step():
    steps = np.arange(30001)
    runs = [FakeRun(steps, np.linspace(0, 1, len(steps)) ** s) for s in (1, 2)]
    fig, ax = plt.subplots()
    plotting.log_steps(ax, n_steps=30000)
    line = plotting.plot_runs(ax, runs, "test_acc", max_points=400)
    x = line.get_xdata()
    assert ax.get_xscale() == "symlog" and ax.get_xlim() == (0, 30000)
    assert x[0] == 0 and x[-1] == 30000 and np.sum(x < 100) > 50
    fig, ax = plt.subplots()
    x_lin = plotting.plot_runs(ax, runs, "test_acc", max_points=400).get_xdata()
    assert np.sum(x_lin < 100) <= 2


def test_log_steps_is_shared_by_sharex_axes():
    fig, axes = plotting.figure(2, nrows=2, sharex=True)
    plotting.log_steps(axes[0][0])
    assert all(ax.get_xscale() == "symlog" for ax in axes.ravel())


def test_legend_below_lies_under_the_axes_and_their_x_label():
    fig, axes = plotting.figure(2, nrows=2, height=2.0, sharex=True)
    for i, ax in enumerate(axes.ravel()):
        ax.plot([0, 1], [0, i], label=f"line {i}")
    axes[1][0].set_xlabel("step")
    top = axes[0][0]
    top.plot([0, 1], [1, 0], label="only on top")
    leg = plotting.legend_below(axes[1][0], ncols=2, handles_from=top)
    assert [t.get_text() for t in leg.get_texts()] == ["line 0", "only on top"]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ax_box, leg_box = axes[1][0].get_window_extent(r), leg.get_window_extent(r)
    label_box = axes[1][0].xaxis.label.get_window_extent(r)
    assert leg_box.y1 <= label_box.y0 + 1 and leg_box.y1 < ax_box.y0
    fig_box = fig.bbox
    assert leg_box.y0 >= fig_box.y0 - 1   # constrained layout made room inside the figure


def test_md_table_keeps_a_cell_with_a_pipe_in_its_column():
    from markdown_it import MarkdownIt

    html = MarkdownIt().enable("table").render(plotting.md_table([["0.43", "a"]], ["track |ρ|", "x"]))
    assert html.count("</th>") == 2 and ">track |ρ|</th>" in html and html.count("</td>") == 2
