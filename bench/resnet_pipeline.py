"""ResNet-18 input pipeline: the released one (decode JPEG files with PIL every epoch) beside ours.

Usage (from the repository root):
    python bench/resnet_pipeline.py --n-images 400 --epochs 2                        # data only, CPU
    python bench/resnet_pipeline.py --model --amp-bf16 --channels-last --out bench/results/resnet_pipeline.json

released: the images as files (written once by grok_core.polygons.export_files, the released layout); every
  epoch each train image is opened with PIL, converted to RGB, resized to 256 (bilinear), centre-cropped to
  224, scaled to [0, 1] and normalised on the host, batched by 200 in one process, then copied to the device.
ours: the decoded images as one uint8 tensor on the device, resized and cropped once; each batch is a gather
  plus normalisation on the device.
With --model each batch also goes through a ResNet-18 forward, backward and Adam step, so the numbers are
whole epochs; without it they are the input pipeline alone. The released resize is reproduced with PIL and
numpy, not imported from elsewhere.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from grok_core.resnet import polygons                                                # noqa: E402
from grok_core.resnet.data import IMAGENET_MEAN, IMAGENET_STD, Normalise, resize_crop  # noqa: E402
from grok_core.resnet.model import build_resnet18                                    # noqa: E402

MEAN = np.array(IMAGENET_MEAN, dtype=np.float32)[:, None, None]
STD = np.array(IMAGENET_STD, dtype=np.float32)[:, None, None]


def released_item(path: Path) -> np.ndarray:
    """One image as the released transform gives it: float32 [3, 224, 224], normalised."""
    img = Image.open(path).convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
    x = np.asarray(img, dtype=np.float32)[16:240, 16:240].transpose(2, 0, 1) / 255.0
    return (x - MEAN) / STD


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(args, device):
    """A training step on a batch (x float [b, 3, 224, 224] on device, y); a no-op without --model."""
    if not args.model:
        return lambda x, y: x.sum()
    model = build_resnet18(52).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4, fused=device.type == "cuda")

    def step(x, y):
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp_bf16):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss
    return step


def bench_released(files, labels, args, device, step) -> list[float]:
    times = []
    g = torch.Generator().manual_seed(0)
    for _ in range(args.epochs):
        sync(device)
        t0 = time.perf_counter()
        for idx in torch.randperm(len(files), generator=g).split(args.batch_size):
            x = torch.from_numpy(np.stack([released_item(files[i]) for i in idx.tolist()])).to(device)
            step(x, labels[idx].to(device))
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def bench_ours(images, labels, args, device, step) -> tuple[float, list[float]]:
    sync(device)
    t0 = time.perf_counter()
    x_all = resize_crop(images.to(device), polygons.CANVAS)
    y_all = labels.to(device)
    norm = Normalise().to(device)
    sync(device)
    setup = time.perf_counter() - t0
    times = []
    g = torch.Generator().manual_seed(0)
    for _ in range(args.epochs):
        sync(device)
        t0 = time.perf_counter()
        for idx in torch.randperm(len(y_all), generator=g).to(device).split(args.batch_size):
            step(norm(x_all[idx]), y_all[idx])
        sync(device)
        times.append(time.perf_counter() - t0)
    return setup, times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=3660, help="images per epoch (3,660 = the released train set)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=200)
    ap.add_argument("--model", action="store_true", help="include ResNet-18 forward/backward/Adam in each batch")
    ap.add_argument("--amp-bf16", action="store_true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    idx = torch.randperm(polygons.N_IMAGES, generator=torch.Generator().manual_seed(0))[:args.n_images]

    t0 = time.perf_counter()
    images = polygons.render(idx, "faithful")
    draw_s = time.perf_counter() - t0
    labels = polygons.all_labels()[idx]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        polygons.export_files(tmp, "faithful", indices=idx)
        export_s = time.perf_counter() - t0
        files = [Path(tmp) / "out-shape-img" / f"{i + 1}.jpg" for i in idx.tolist()]
        rel = bench_released(files, labels, args, device, make_step(args, device))
    setup, ours = bench_ours(images, labels, args, device, make_step(args, device))

    # after the first (warm-up) epoch
    rel_s, ours_s = float(np.median(rel[1:] or rel)), float(np.median(ours[1:] or ours))
    res = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else
           f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
           "torch": torch.__version__, "n_images": args.n_images, "batch_size": args.batch_size, "model": args.model,
           "amp_bf16": args.amp_bf16, "channels_last": args.channels_last, "draw_s": round(draw_s, 3),
           "export_files_s": round(export_s, 3), "ours_setup_s": round(setup, 3),
           "released_epoch_s": [round(t, 3) for t in rel], "ours_epoch_s": [round(t, 3) for t in ours],
           "released_images_per_s": round(args.n_images / rel_s, 1), "ours_images_per_s": round(args.n_images / ours_s, 1),
           "speedup": round(rel_s / ours_s, 2)}
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
