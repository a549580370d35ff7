"""One figure style for every chapter of the book, plus the captions and tables shown with figures.

`use_style()` sets matplotlib's rcParams; `plot_runs` draws every run of a setting faintly with
the mean and a band of one standard deviation on top; `log_steps` gives an axis a logarithmic step
scale (for dynamics that sit in the first few thousand steps); `legend_below` puts a legend under
its axes instead of over the curves; `show_figure` shows a figure as a PNG of PNG_DPI dots per
inch (shown at CSS_DPI, so it stays sharp on phones and high-density screens) with its caption
(config hashes and seeds included) and glues it for the book as a numbered, linkable figure;
`md_table` renders rows as a Markdown table.
No numbers are computed here beyond means and spreads of what is passed in.
"""
from __future__ import annotations

import io
import re
import struct

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter

BOOK_WIDTH = 7.5          # inches: the width of the book's text column at 100 % zoom
PNG_DPI = 200             # dots per inch of the PNG a figure is shown as
CSS_DPI = 100             # CSS pixels per figure inch on the page: a 7.5 in figure is 750 px wide, 1500 dots
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
TRAIN_COLOR, TEST_COLOR, MED_COLOR = "#0072B2", "#D55E00", "#009E73"
SPLIT_COLORS = {"train": "#0072B2", "block": "#D55E00", "test": "#DDDDDD"}

STYLE = {
    "figure.dpi": CSS_DPI,
    "savefig.dpi": PNG_DPI,
    "figure.figsize": (BOOK_WIDTH, 3.0),
    "figure.constrained_layout.use": True,
    # sizes in points of a 7.5 in figure shown 750 px wide: 11 pt is about 15 px on a desktop screen,
    # and still legible when a phone shrinks the figure to its width
    "font.size": 11,
    "axes.titlesize": 11.5,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "lines.linewidth": 1.6,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
}


def use_style():
    """Apply the book's figure style (call once per notebook, after importing matplotlib)."""
    mpl.rcParams.update(STYLE)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def figure(ncols: int = 1, nrows: int = 1, height: float = 2.8, **kw):
    """A book-width figure with nrows x ncols panels, each `height` inches tall."""
    return plt.subplots(nrows, ncols, figsize=(BOOK_WIDTH, height * nrows), squeeze=False, **kw)


def _thin(n: int, max_points: int = 1500) -> slice:
    return slice(None, None, max(1, n // max_points))


def _thin_log(steps, max_points: int = 1500) -> np.ndarray:
    """Indices of at most about max_points entries of `steps`, evenly spaced in log(step): on a log-step axis a
    uniform thinning would keep too few of the early steps, where such an axis spends most of its width."""
    steps = np.asarray(steps)
    if len(steps) <= max_points:
        return np.arange(len(steps))
    first = max(float(steps[steps > 0].min()), 1.0) if np.any(steps > 0) else 1.0
    targets = np.geomspace(first, max(float(steps[-1]), first), max_points)
    idx = np.searchsorted(steps, targets).clip(0, len(steps) - 1)
    return np.unique(np.concatenate([[0], idx, [len(steps) - 1]]))


def _step_label(x, _pos=None) -> str:
    """Tick labels of a step axis: 0, 10, 100, 1k, 10k, 30k."""
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        v = x / 1000
        return f"{v:.0f}k" if v == int(v) else f"{v:g}k"
    return f"{x:g}"


def log_steps(ax, linthresh: float = 100, n_steps: int | None = None):
    """A logarithmic step axis for dynamics that sit in the first few thousand steps of a long run.

    Symmetric-log: linear from 0 to linthresh (step 0 stays on the axis), logarithmic above it. Call it before
    plot_runs, which then thins the curves evenly in log(step). n_steps, if given, ends the axis there.
    On axes created with sharex, one call sets the scale of all of them."""
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.5)
    ax.xaxis.set_major_locator(mpl.ticker.SymmetricalLogLocator(base=10, linthresh=linthresh))
    ax.xaxis.set_minor_locator(mpl.ticker.SymmetricalLogLocator(base=10, linthresh=linthresh,
                                                                subs=np.arange(2, 10)))
    ax.xaxis.set_major_formatter(FuncFormatter(_step_label))
    ax.set_xlim(left=0, right=n_steps)


def legend_below(ax, ncols: int = 3, handles_from=None, **kw):
    """The axes' legend under the axes (below its tick labels and x label) instead of over its curves.

    Constrained layout makes room for it. handles_from: another axes whose legend entries to use (a panel that
    lacks some of the lines, e.g. a bottom row that shares the settings of the row above)."""
    handles, labels = (handles_from or ax).get_legend_handles_labels()
    fm = mpl.font_manager.FontProperties
    tick = fm(size=mpl.rcParams["xtick.labelsize"]).get_size_in_points()
    label = fm(size=mpl.rcParams["axes.labelsize"]).get_size_in_points()
    below = mpl.rcParams["xtick.major.size"] + mpl.rcParams["xtick.major.pad"] + 1.3 * tick
    if ax.get_xlabel():
        below += mpl.rcParams["axes.labelpad"] + 1.3 * label
    offset = mpl.transforms.ScaledTranslation(0, -(below + 2) / 72, ax.figure.dpi_scale_trans)
    kw.setdefault("handlelength", 1.5)
    kw.setdefault("columnspacing", 1.0)
    return ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                     bbox_transform=ax.transAxes + offset, ncols=ncols, **kw)


def plot_runs(ax, runs, key: str, color=None, label: str | None = None, scale: float = 1.0,
              band: bool = True, faint: bool = True, clip=None, max_points: int = 1500, log: bool = False):
    """Every run faint, the mean over runs as a line and mean ± sd as a band; returns the line.

    runs: Runs of one setting (equal lengths); key: a history entry; scale multiplies the values.
    On a log or symlog x axis (log_steps) the curves are thinned evenly in log(step).
    log: for a log-scaled y axis (losses): the geometric mean, and the band one sd of log10 either side.
    """
    data = np.stack([np.asarray(r.history[key], dtype=np.float64) for r in runs]) * scale   # [run, step]
    steps = np.asarray(runs[0].history["step"])
    sl = _thin_log(steps, max_points) if ax.get_xscale() in ("log", "symlog") else _thin(len(steps), max_points)
    x = steps[sl]
    if faint and len(runs) > 1:
        for row in data:
            ax.plot(x, row[sl], color=color, alpha=0.25, lw=0.6)
    if log:
        ax.set_yscale("log")
        logs = np.log10(np.maximum(data, np.finfo(np.float64).tiny))
        mean = 10 ** np.nanmean(logs, axis=0)
    else:
        mean = np.nanmean(data, axis=0)
    (line,) = ax.plot(x, mean[sl], color=color, label=label)
    if band and len(runs) > 1:
        if log:
            sd = np.nanstd(logs, axis=0, ddof=1)
            lo, hi = mean / 10 ** sd, mean * 10 ** sd
        else:
            sd = np.nanstd(data, axis=0, ddof=1)
            lo, hi = mean - sd, mean + sd
        if clip is not None:
            lo, hi = np.clip(lo, *clip), np.clip(hi, *clip)
        ax.fill_between(x, lo[sl], hi[sl], color=line.get_color(), alpha=0.18, lw=0)
    return line


def _seed_text(seeds) -> str:
    seeds = sorted(set(seeds))
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _seeds_of(runs) -> str:
    splits = sorted({r.config.split_seed for r in runs})
    return (f"init seeds {_seed_text(r.config.init_seed for r in runs)} × "
            f"split seed{'s' if len(splits) > 1 else ''} {_seed_text(splits)}")


def runs_caption(groups: dict, label=str, max_keys: int = 4) -> str:
    """Caption text naming the runs' init and split seeds: once, when every group has the same seeds (the
    chapter's Runs section lists their config hashes); else, per group, its seeds and the config hashes of its
    runs where there are at most max_keys (else their count)."""
    seeds = {name: (_seeds_of(runs), len(runs)) for name, runs in groups.items()}
    shared = set(seeds.values())
    if len(groups) > 1 and len(shared) == 1:
        text, n = next(iter(shared))
        return f"Every setting: {text}; {n} run{'s' * (n != 1)} each."
    parts = []
    for name, runs in groups.items():
        if len(runs) <= max_keys:
            keys = "config hash" + "es" * (len(runs) != 1) + " " + ", ".join(f"`{r.key}`" for r in runs)
        else:
            keys = f"{len(runs)} runs"
        parts.append(f"{label(name)}: {seeds[name][0]}; {keys}")
    return "; ".join(parts) + "."


def png_bytes(fig, dpi: int = PNG_DPI) -> bytes:
    """The figure as PNG bytes at `dpi`, cropped to its content like the notebook's inline display."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", data[16:24])


def figure_markdown(name: str, caption: str, alt: str | None) -> str:
    """The MyST of a numbered figure whose content is the glued output `name`: label `name` (for {numref}), alt
    text (None for HTML content, which carries its own), and a one-paragraph caption."""
    for what, text in (("name", name), ("alt", "-" if alt is None else alt), ("caption", caption)):
        if not text.strip():
            raise ValueError(f"a figure needs a {what}; got {text!r}")
    if not re.fullmatch(r"[a-z0-9_]+(-[a-z0-9_]+)*", name):
        raise ValueError(f"figure name={name!r} is not allowed; use lower-case words joined by '-' (it is a link label)")
    if alt is not None and "\n" in alt:
        raise ValueError("a figure's alt text must be one line")
    caption = " ".join(caption.split())          # one paragraph: a blank line would end the caption
    alt_line = "" if alt is None else f":alt: {alt}\n"
    return f"::::{{glue:figure}} {name}\n:name: {name}\n{alt_line}{caption}\n::::\n"


def show_figure(fig, caption: str, name: str, alt: str):
    """Show the figure and its caption in the notebook, and glue it for the book as a numbered figure; closes it.

    The PNG has PNG_DPI dots per inch and is declared CSS_DPI pixels per inch wide: a book-width figure takes the
    text column (and shrinks with it on a phone) while keeping twice the dots for zooming. The book places the
    figure where a Markdown cell reads `{glue:md} <name>-figure` (format myst); the cell calling this is tagged
    remove-output, so that the book shows the figure there only, numbered, with `name` as its link label."""
    from IPython.display import Image, Markdown, display
    from myst_nb import glue

    block = figure_markdown(name, caption, alt)
    data = png_bytes(fig)
    plt.close(fig)
    width = round(png_size(data)[0] * CSS_DPI / PNG_DPI)
    glue(name, Image(data=data, format="png", width=width), display=True)
    display(Markdown(caption))
    glue(f"{name}-figure", Markdown(block), display=False)


def show_html_figure(html: str, caption: str, name: str):
    """Like show_figure, for HTML content (an interactive figure that carries its own text alternative)."""
    from IPython.display import HTML, Markdown, display
    from myst_nb import glue

    block = figure_markdown(name, caption, None)
    glue(name, HTML(html), display=True)
    display(Markdown(caption))
    glue(f"{name}-figure", Markdown(block), display=False)


def no_figure(name: str, text: str):
    """Where a figure has nothing to draw: its place in the book (`{glue:md} <name>-figure`) shows `text`."""
    from IPython.display import Markdown, display
    from myst_nb import glue

    display(Markdown(text))
    glue(f"{name}-figure", Markdown(text), display=False)


def md_table(rows: list[list], headers: list[str], align: str | None = None) -> str:
    """Rows of already-formatted cells as a Markdown pipe table (align: one of l/r/c per column); a "|" in a cell
    (|ρ|, say) is escaped so that it stays in its column."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    lines = [line(headers), "| " + " | ".join(marks[a] for a in align) + " |"] + [line(row) for row in rows]
    return "\n".join(lines)


def show_md(text: str):
    """Display Markdown text (tables, computed sentences) as a cell output."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def fmt(x, digits: int = 1, pct: bool = False, none: str = "–") -> str:
    """A number for a table: None/NaN as a dash, fractions as percent when pct."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return none
    if pct:
        return f"{100 * x:.{digits}f}"
    return f"{x:.{digits}f}"


def draw_split(ax, split, p: int, title: str = ""):
    """The p x p table as an image: train pairs, the dug-out block, other test pairs (Fig 3)."""
    img = np.zeros((p, p, 3))
    rgb = {k: mpl.colors.to_rgb(v) for k, v in SPLIT_COLORS.items()}
    train = split.train_mask.numpy().reshape(p, p)
    block = split.block_mask.numpy().reshape(p, p)
    img[:] = rgb["test"]
    img[block] = rgb["block"]
    img[train] = rgb["train"]
    ax.imshow(img, origin="lower", interpolation="nearest", extent=(-0.5, p - 0.5, -0.5, p - 0.5))
    ax.set_xlabel("j (second operand)")
    ax.set_ylabel("i (first operand)")
    ax.set_title(title)
    ax.grid(False)
    ax.set_aspect("equal")


def split_legend(fig):
    from matplotlib.patches import Patch

    handles = [Patch(color=SPLIT_COLORS["train"], label="train"),
               Patch(color=SPLIT_COLORS["block"], label="test: dug-out block"),
               Patch(color=SPLIT_COLORS["test"], label="test: other pairs")]
    fig.legend(handles=handles, loc="outside lower center", ncols=3)


def fmt_pm(values, digits: int = 1, scale: float = 1.0, none: str = "–") -> str:
    """Mean ± sample sd of the non-None values (times scale); just the value for one; `none` for none."""
    v = np.array([x for x in values if x is not None and not (isinstance(x, float) and np.isnan(x))], dtype=float)
    v = v * scale
    if len(v) == 0:
        return none
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"
