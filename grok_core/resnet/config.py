"""ResNetConfig: one ResNet-18 run on the polygon-sum images, validated, hashed into its run key.

The defaults are the released recipe: Adam (lr 1e-3, coupled L2 1e-4 on every parameter), batch 200, 25 % of
the images for training, at 224 px. Our changes are fields too: training from scratch, a seeded split and
batch order, optional bf16 autocast and channels-last.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import HashedConfig
from . import polygons

# Bump when the training semantics change (same config, different numbers).
RESNET_SEMANTICS_VERSION = 1
IMAGE_SIZES = tuple(range(32, polygons.CANVAS + 1, 32))   # 32, 64, ..., 224: ResNet-18 downsamples by 32


@dataclass(frozen=True)
class ResNetConfig(HashedConfig):
    """One ResNet-18 run. Defaults are the released recipe (faithful data), trained from scratch."""
    # data
    mode: str = "faithful"         # faithful (released generator quirks, 52-way head) | clean (49 classes)
    image_size: int = 224          # network input; smaller sizes are downsampled drawings (multiple of 32)
    n_images: int = 0              # 0: all 14,641 mosaics; else a seeded random subset of this many
    frac_train: float = 0.25       # share of the images used for training (released: 3,660 of 14,641)
    split_seed: int = 0            # seeds the subset and the train/test split
    # model and optimisation
    n_classes: int = 0             # 0: 52 (faithful) or 49 (clean)
    width: int = 64                # channels of the first stage; 64 is ResNet-18 (smaller: quick CPU checks only)
    seed: int = 0                  # model init and batch order
    n_epochs: int = 4000
    batch_size: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-4     # coupled L2 (Adam's weight_decay), on every parameter
    eval_every: int = 20           # test accuracy after epoch 1 and every eval_every epochs
    amp_bf16: bool = False         # bf16 autocast for forward and loss (GPU option)
    channels_last: bool = False    # NHWC memory layout (GPU option)

    def __post_init__(self):
        polygons.check_mode(self.mode)
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size={self.image_size!r} is not allowed; ResNet-18 takes a multiple of 32 "
                             f"between 32 and 224: {', '.join(map(str, IMAGE_SIZES))}")
        if not isinstance(self.frac_train, (int, float)) or isinstance(self.frac_train, bool) \
                or not 0 < self.frac_train < 1:
            raise ValueError(f"frac_train={self.frac_train!r} is not allowed; it must lie in the open interval (0, 1)")
        if self.n_images != 0 and not 2 <= self.n_images <= polygons.N_IMAGES:
            raise ValueError(f"n_images={self.n_images!r} is not allowed; use 0 (all {polygons.N_IMAGES}) "
                             f"or a count between 2 and {polygons.N_IMAGES}")
        n = self.n_images or polygons.N_IMAGES
        if not 1 <= int(self.frac_train * n) <= n - 1:
            raise ValueError(f"frac_train={self.frac_train!r} is not allowed with {n} images: "
                             f"int(frac_train * n) = {int(self.frac_train * n)} leaves an empty train or test set")
        if self.n_classes == 0:
            object.__setattr__(self, "n_classes", polygons.N_CLASSES[self.mode])
        if self.n_classes < 49:
            raise ValueError(f"n_classes={self.n_classes!r} is not allowed; labels run up to 48, so it must be >= 49 "
                             "(or 0 for the mode's default)")
        for name in ("split_seed", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must be >= 0")
        for name in ("n_epochs", "batch_size", "eval_every", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} is not allowed; it must be >= 1")
        if not self.lr > 0 or not self.weight_decay >= 0:
            raise ValueError(f"lr={self.lr!r}, weight_decay={self.weight_decay!r} are not allowed; "
                             "need lr > 0 and weight_decay >= 0")

    def key_tags(self) -> dict:
        return {"semantics": RESNET_SEMANTICS_VERSION, "kind": "resnet"}

    def trajectory_key(self) -> str:
        """The key without n_epochs: runs that differ only in length share their first epochs (and checkpoint)."""
        return self.replace(n_epochs=1).key()
