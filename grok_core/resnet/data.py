"""The images a ResNet run trains on, prepared on the device: its subset of the polygon-sum set, the released
Resize(256) + CenterCrop(224) done once as uint8, and ToTensor + Normalize done per batch.

The released pipeline decodes and transforms every JPEG file every epoch; here the images are decoded once
into one uint8 tensor and preprocessed once on the device (bench/resnet_pipeline.py compares the two).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import polygons
from .config import ResNetConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RATIO = 256 / 224                                    # the released Resize(256) before CenterCrop(224)


def crop_geometry(image_size: int) -> tuple[int, int]:
    """(resized side, crop offset): 224 -> 256 and 16, the released Resize(256) + CenterCrop(224), scaled."""
    resized = round(image_size * RESIZE_RATIO)
    return resized, int(round((resized - image_size) / 2.0))


@torch.no_grad()
def resize_crop(images: torch.Tensor, image_size: int, chunk: int = 512) -> torch.Tensor:
    """uint8 [n, 3, s, s] -> uint8 [n, 3, s, s]: bilinear upsample to s*256/224, rounded to uint8
    (as the released pipeline's PIL resize does), then the centre crop. Runs on images.device, once."""
    resized, off = crop_geometry(image_size)
    out = torch.empty_like(images)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float()
        x = F.interpolate(x, size=(resized, resized), mode="bilinear", align_corners=False)
        x = x[:, :, off:off + image_size, off:off + image_size]
        out[i:i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


class Normalise(torch.nn.Module):
    """uint8 [batch, 3, s, s] -> float [batch, 3, s, s]: /255 then ImageNet mean/std (ToTensor + Normalize)."""

    def __init__(self, channels_last: bool = False):
        super().__init__()
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)))
        self.register_buffer("shift", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() * self.scale - self.shift
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def select_images(cfg: ResNetConfig) -> torch.Tensor:
    """Indices (into the 14,641 mosaics) this run uses: all, or a seeded sorted subset."""
    if cfg.n_images == 0:
        return torch.arange(polygons.N_IMAGES)
    g = torch.Generator().manual_seed(cfg.split_seed)
    return torch.randperm(polygons.N_IMAGES, generator=g)[:cfg.n_images].sort().values


def load_data(cfg: ResNetConfig, root=None, workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [n, 3, s, s] and labels [n] for the run's images (the full set from the disk cache)."""
    if cfg.n_images == 0:
        return polygons.load_dataset(cfg.mode, cfg.image_size, root=root, workers=workers)
    return polygons.load_subset(select_images(cfg), cfg.mode, cfg.image_size, root=root)
