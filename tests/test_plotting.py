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


def test_png_is_drawn_at_png_dpi_and_declared_at_css_dpi(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    fig, axes = plotting.figure(2, height=2.5)
    axes[0, 0].plot([0, 1], [0, 1])
    plotting.show_figure(fig, "a caption", "Figure 1")
    image, caption = shown
    width, height = plotting.png_size(image.data)
    assert plotting.PNG_DPI >= 150
    # cropped to its content, a book-width figure is about BOOK_WIDTH inches wide at PNG_DPI
    assert abs(width - plotting.BOOK_WIDTH * plotting.PNG_DPI) < 0.1 * plotting.BOOK_WIDTH * plotting.PNG_DPI
    assert image.width == round(width * plotting.CSS_DPI / plotting.PNG_DPI)
    assert image._repr_png_()[1] == {"width": image.width}
    assert caption.data == "**Figure 1.** a caption"
    assert not plt.get_fignums()   # closed


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
