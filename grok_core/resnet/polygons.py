"""The polygon-sum image set of the paper's ResNet-18 experiment (Figs 6-7), drawn with Pillow.

Eleven symbols (blank, 3- to 12-gon); every ordered 2x2 mosaic of them is one 224x224 image
(11^4 = 14,641), labelled with the total number of sides. Two modes:
  faithful  the released generator: radius cap measured in whole-image coordinates (three cells get
            radius -56: larger, point-reflected polygons touching the cell border), JPEG quality 75,
            a 52-way head;
  clean     radius 46 in every cell, lossless, 49 classes (labels 0..48).
The set is one uint8 tensor [image, 3, H, W] (2.2 GB at 224 px), cached on disk with checksums.
Smaller `image_size`s are the same 224-px drawings (after the JPEG round trip) downsampled.
Pillow is imported only where images are drawn, so that ResNetConfig and the `grok` command, which need
only the set's sizes, run without it.
"""
from __future__ import annotations

import io
import itertools
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..store import atomic_dir, results_root, sha256_file

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

MODES = ("faithful", "clean")
SYMBOLS = (0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)   # number of sides; 0 is the blank symbol
N_IMAGES = len(SYMBOLS) ** 4                       # 14,641
CANVAS = 224                                       # the released images' size in pixels
CELL = CANVAS // 2                                 # one mosaic cell: 112 px
CELL_RADIUS = 46                                   # nominal polygon radius in a mosaic cell
DICT_RADIUS = 90                                   # polygon radius in a dictionary entry
JPEG_QUALITY = 75                                  # Pillow's default, used by the released generator
N_CLASSES = {"faithful": 52, "clean": 49}          # head width: the released 52, or labels 0..48
# Bump when the drawing changes (same mode and size, different pixels): old caches then stop matching.
DATA_VERSION = 1


def check_mode(mode: str):
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not allowed; choose one of {', '.join(map(repr, MODES))}")


def check_image_size(image_size: int):
    if not isinstance(image_size, int) or isinstance(image_size, bool) or not 8 <= image_size <= CANVAS:
        raise ValueError(f"image_size={image_size!r} is not allowed; the images are drawn at {CANVAS} px and can be "
                         f"downsampled to an integer size between 8 and {CANVAS}")


# -- drawing ------------------------------------------------------------------------------------------
def polygon_vertices(center: tuple[float, float], sides: int, radius: float) -> list[tuple[float, float]]:
    """Vertex k at angle 2*pi*k/sides from +x (image y points down); a negative radius reflects through the centre."""
    cx, cy = center
    return [(cx + radius * math.cos(2 * math.pi * k / sides), cy + radius * math.sin(2 * math.pi * k / sides))
            for k in range(sides)]


def draw_symbol(draw: ImageDraw.ImageDraw, center: tuple[float, float], sides: int, radius: float):
    """White polygon with a black 1-px outline, then a black 1-px spoke from the centre to every vertex."""
    if sides < 3:          # the blank symbol
        return
    points = polygon_vertices(center, sides, radius)
    draw.polygon(points, outline="black", fill="white")
    for pt in points:
        draw.line([center, pt], fill="black")


def cell_radius(q: int, mode: str) -> float:
    """Radius used in cell q (0 TL, 1 TR, 2 BL, 3 BR).

    The released generator caps the radius by the distance from the centre to the border of a
    112-px box, but measures it in whole-image coordinates: min(cx, cy, 112 - cx, 112 - cy) is +56
    for the top-left cell and -56 for the other three, so those draw with radius min(46, -56) = -56.
    """
    if mode == "clean":
        return CELL_RADIUS
    cx, cy = cell_center(q)
    return min(CELL_RADIUS, min(cx, cy, CELL - cx, CELL - cy))


def cell_center(q: int) -> tuple[int, int]:
    return (q % 2) * CELL + CELL // 2, (q // 2) * CELL + CELL // 2


def draw_mosaic(symbols: tuple[int, int, int, int], mode: str = "faithful", jpeg: bool = True) -> Image.Image:
    """One 224x224 RGB mosaic: symbols in the cells TL, TR, BL, BR.

    In faithful mode the image goes through the JPEG round trip unless jpeg=False (the drawing alone).
    """
    from PIL import Image, ImageDraw
    check_mode(mode)
    img = Image.new("RGB", (CANVAS, CANVAS), "white")
    draw = ImageDraw.Draw(img)
    for q, sides in enumerate(symbols):
        draw_symbol(draw, cell_center(q), sides, cell_radius(q, mode))
    if mode == "faithful" and jpeg:
        img = jpeg_round_trip(img)
    return img


def jpeg_round_trip(img: Image.Image, quality: int = JPEG_QUALITY) -> Image.Image:
    """Encode as JPEG (Pillow's defaults otherwise, as in the released generator) and decode again."""
    from PIL import Image
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def dictionary_image(sides: int) -> Image.Image:
    """One entry of the dictionary figure (Fig 6 left): the symbol alone, radius 90, centred."""
    from PIL import Image, ImageDraw
    img = Image.new("RGB", (CANVAS, CANVAS), "white")
    c = CANVAS // 2
    # capped by the distance to the canvas border (112), so the radius stays 90
    draw_symbol(ImageDraw.Draw(img), (c, c), sides, min(DICT_RADIUS, c))
    return img


def dictionary_weight(sides: int, mode: str = "faithful") -> int:
    """The weight printed in the dictionary figure: sides - 1 in the released figure, sides in clean mode.

    The released labels count sides (not sides - 1) in both modes; clean mode prints what is summed.
    """
    check_mode(mode)
    if sides == 0:
        return 0
    return sides - 1 if mode == "faithful" else sides


def plot_dictionary(mode: str = "faithful", axes=None):
    """The 3x4 dictionary grid (11 entries), titled 'Shape n (Weight: w)' as in Fig 6; returns the figure."""
    import matplotlib.pyplot as plt
    if axes is None:
        fig, axes = plt.subplots(3, 4, figsize=(8, 6))
    else:
        fig = np.ravel(axes)[0].figure
    axes = np.ravel(axes)
    for ax, sides in zip(axes, SYMBOLS):
        ax.imshow(dictionary_image(sides))
        ax.set_title(f"Shape {max(sides, 1)} (Weight: {dictionary_weight(sides, mode)})", fontsize=9)
    for ax in axes:
        ax.axis("off")
    return fig


# -- the index <-> symbols <-> label maps (no drawing) --------------------------------------------------
def all_symbols() -> torch.Tensor:
    """[14641, 4] symbols (sides) of every mosaic, lexicographic over SYMBOLS (image i is file i+1 of the release)."""
    return torch.tensor(list(itertools.product(SYMBOLS, repeat=4)), dtype=torch.long)


def all_labels() -> torch.Tensor:
    """[14641] label of every mosaic: the total number of sides (blank counts 0)."""
    return all_symbols().sum(1)


# -- the dataset tensor ---------------------------------------------------------------------------------
def render(indices, mode: str = "faithful", image_size: int = CANVAS) -> torch.Tensor:
    """Draw the mosaics with the given indices: uint8 [n, 3, image_size, image_size]."""
    from PIL import Image
    check_mode(mode)
    check_image_size(image_size)
    symbols = all_symbols()
    idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    out = np.empty((len(idx), image_size, image_size, 3), dtype=np.uint8)
    for n, i in enumerate(idx.tolist()):
        img = draw_mosaic(tuple(symbols[i].tolist()), mode)
        if image_size != CANVAS:
            img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)   # antialiased when shrinking
        out[n] = np.asarray(img)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _render_chunk(args):
    return render(*args).numpy()


def render_all(mode: str = "faithful", image_size: int = CANVAS, workers: int | None = None) -> torch.Tensor:
    """Every mosaic, in index order; drawn in `workers` processes (default: all cores)."""
    workers = workers or os.cpu_count() or 1
    chunks = np.array_split(np.arange(N_IMAGES), max(1, workers * 4))
    if workers == 1:
        parts = [render(c, mode, image_size).numpy() for c in chunks]
    else:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_chunk, [(c, mode, image_size) for c in chunks]))
    return torch.from_numpy(np.concatenate(parts))


def cache_dir(root: str | Path | None = None) -> Path:
    """Default: <results root>/datasets (next to the run store, not committed)."""
    if root is not None:
        return Path(root)
    return results_root() / "datasets"


def cache_path(mode: str, image_size: int, root: str | Path | None = None) -> Path:
    return cache_dir(root) / f"polygons-{mode}-{image_size}px-v{DATA_VERSION}"


def _read_cache(d: Path) -> tuple[torch.Tensor, torch.Tensor]:
    meta = json.loads((d / "meta.json").read_text())
    for name, digest in meta["files"].items():
        if sha256_file(d / name) != digest:
            raise ValueError(f"{name} does not match its checksum")
    images = torch.from_numpy(np.load(d / "images.npy"))
    labels = torch.from_numpy(np.load(d / "labels.npy"))
    if images.shape != (N_IMAGES, 3, meta["image_size"], meta["image_size"]) or labels.shape != (N_IMAGES,):
        raise ValueError(f"unexpected shapes {tuple(images.shape)}, {tuple(labels.shape)}")
    if not torch.equal(labels, all_labels()):
        raise ValueError("labels do not match the symbol table")
    return images, labels


def _write_cache(d: Path, images: torch.Tensor, labels: torch.Tensor, meta: dict):
    """Atomic: files go into a temporary folder that is renamed into place at the end."""
    with atomic_dir(d) as tmp:
        np.save(tmp / "images.npy", images.numpy())
        np.save(tmp / "labels.npy", labels.numpy())
        files = {n: sha256_file(tmp / n) for n in ("images.npy", "labels.npy")}
        (tmp / "meta.json").write_text(json.dumps({**meta, "files": files}, indent=1, sort_keys=True))


def load_dataset(mode: str = "faithful", image_size: int = CANVAS, root: str | Path | None = None,
                 cache: bool = True, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All 14,641 mosaics: (uint8 [N, 3, H, W], int64 labels [N]), from the cache or drawn and cached.

    A cache entry whose files do not match their checksums is discarded with a warning and redrawn.
    """
    check_mode(mode)
    check_image_size(image_size)
    d = cache_path(mode, image_size, root)
    if cache and d.exists():
        try:
            return _read_cache(d)
        except Exception as err:  # missing file, bad JSON, truncated array, wrong checksum ...
            warnings.warn(f"dataset cache {d} is damaged ({type(err).__name__}: {err}); drawing it again")
    t0 = time.time()
    images, labels = render_all(mode, image_size, workers), all_labels()
    if cache:
        import PIL
        _write_cache(d, images, labels, {"mode": mode, "image_size": image_size, "data_version": DATA_VERSION,
                                         "pillow": PIL.__version__, "draw_s": round(time.time() - t0, 2)})
    return images, labels


def load_subset(indices, mode: str = "faithful", image_size: int = CANVAS,
                root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Some mosaics only: sliced from the full cache when it exists, else drawn (not cached)."""
    idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    d = cache_path(mode, image_size, root)
    if d.exists():
        try:
            images, labels = _read_cache(d)
            return images[idx].clone(), labels[idx].clone()
        except Exception as err:
            warnings.warn(f"dataset cache {d} is damaged ({type(err).__name__}: {err}); drawing the subset")
    return render(idx, mode, image_size), all_labels()[idx]


def export_files(out_dir: str | Path, mode: str = "faithful", indices=None) -> Path:
    """The released layout, for pipelines that read files: out-shape-img/<i>.jpg (or .png in clean mode) and
    out-shape-txt/<i>.txt holding 'Total Weight: S', with i = index + 1.

    In faithful mode the JPEG bytes written are the ones whose decoding is the in-memory image.
    """
    check_mode(mode)
    out = Path(out_dir)
    (out / "out-shape-img").mkdir(parents=True, exist_ok=True)
    (out / "out-shape-txt").mkdir(parents=True, exist_ok=True)
    symbols, labels = all_symbols(), all_labels()
    idx = range(N_IMAGES) if indices is None else torch.as_tensor(indices).reshape(-1).tolist()
    for i in idx:
        img = draw_mosaic(tuple(symbols[i].tolist()), mode, jpeg=False)
        if mode == "faithful":
            img.save(out / "out-shape-img" / f"{i + 1}.jpg", format="JPEG", quality=JPEG_QUALITY)
        else:
            img.save(out / "out-shape-img" / f"{i + 1}.png")
        (out / "out-shape-txt" / f"{i + 1}.txt").write_text(f"Total Weight: {int(labels[i])}\n")
    return out


def train_test_split(n: int, frac_train: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random split: a permutation from torch.Generator(seed); the first int(frac * n) train.

    For n = 14,641 and frac 0.25 this is 3,660 / 10,981, the released sizes; the released split
    (torch.utils.data.random_split) draws the same permutation when given this generator.
    """
    if not isinstance(frac_train, (int, float)) or not 0 < frac_train < 1:
        raise ValueError(f"frac_train={frac_train!r} is not allowed; it must lie in the open interval (0, 1)")
    n_train = int(frac_train * n)
    if not 1 <= n_train <= n - 1:
        raise ValueError(f"frac_train={frac_train!r} is not allowed with {n} images: int(frac_train * n) = {n_train} "
                         "leaves an empty train or test set")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:n_train], perm[n_train:]
