"""ResNet-18 on the polygon-sum images (paper Figs 6-7): config, device-side preprocessing, training loop.

The released recipe: Adam (lr 1e-3, coupled L2 1e-4 on every parameter), batch 200, 25 % of the
images for training, resize 256 / centre-crop 224 / ImageNet normalisation, train accuracy counted
on the fly in train mode (each batch's predictions before its update), test accuracy in eval mode.
Changes, all recorded in the config: training from scratch (no ImageNet download), a seeded split
and batch order, images decoded once into one uint8 tensor and preprocessed once on the device,
optional bf16 autocast and channels-last, checkpoint/resume for runs longer than one command.

    python -m grok_core.resnet_train --n-epochs 4000 --amp-bf16 --channels-last --time-limit 540
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import HashedConfig
from . import polygons
from .models.resnet import build_resnet18
from .store import Run, RunStore, atomic_file, code_commit

# Bump when the training semantics change (same config, different numbers).
RESNET_SEMANTICS_VERSION = 1
IMAGE_SIZES = tuple(range(32, polygons.CANVAS + 1, 32))   # 32, 64, ..., 224: ResNet-18 downsamples by 32
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_RATIO = 256 / 224                                    # the released Resize(256) before CenterCrop(224)


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


# -- data -------------------------------------------------------------------------------------------------
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


# -- store ------------------------------------------------------------------------------------------------
class ResNetStore(RunStore):
    """The run store for ResNetConfig entries: same entry layout and atomic writes, read back as ResNetConfig.

    Entries live in <results root>/resnet-runs, apart from the modular-task runs, whose listing
    tools expect a RunConfig in every entry; checkpoints share <results root>/checkpoints.
    """

    def __init__(self, root=None):
        super().__init__(root, config_cls=ResNetConfig, runs_subdir="resnet-runs")

    def resnet_checkpoint(self, cfg: ResNetConfig) -> Path:
        return self.ckpt_dir / f"resnet-{cfg.trajectory_key()}.pt"


# -- training ---------------------------------------------------------------------------------------------
def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class ResNetTrainer:
    """Mini-batch training of one ResNet-18 run; history on the host, one sync per epoch."""

    def __init__(self, cfg: ResNetConfig, device=None, data: tuple[torch.Tensor, torch.Tensor] | None = None,
                 data_root=None, eval_batch: int = 1000):
        self.cfg = cfg
        self.device = torch.device(device) if device is not None else default_device()
        self.eval_batch = eval_batch
        dev = self.device
        images, labels = data if data is not None else load_data(cfg, data_root)
        n = len(labels)
        if images.shape[1:] != (3, cfg.image_size, cfg.image_size):
            raise ValueError(f"images have shape {tuple(images.shape)}, expected [n, 3, {cfg.image_size}, "
                             f"{cfg.image_size}]")
        train_idx, test_idx = polygons.train_test_split(n, cfg.frac_train, cfg.split_seed)
        self.n_train, self.n_test = len(train_idx), len(test_idx)
        pre = resize_crop(images.to(dev), cfg.image_size)                              # uint8, on the device
        self.train_x, self.train_y = pre[train_idx.to(dev)], labels[train_idx].to(dev)
        self.test_x, self.test_y = pre[test_idx.to(dev)], labels[test_idx].to(dev)
        del pre

        self.model = build_resnet18(cfg.n_classes, cfg.seed, cfg.width).to(dev)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.normalise = Normalise(cfg.channels_last).to(dev)
        # coupled L2, as torch.optim.Adam(weight_decay=...) in the released code; the fused kernel on GPUs
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    fused=dev.type == "cuda")
        # batch order: a CPU generator, so a run's order is the same on every device
        self.shuffle = torch.Generator().manual_seed(cfg.seed + 1_000_003)
        self.epoch = 0
        self.hist = {"train_acc": [], "train_loss": [], "elapsed_s": [], "eval_epoch": [], "test_acc": [],
                     "test_loss": []}
        self.train_s = self.eval_s = 0.0      # measured seconds, summed over resumed segments
        self.segments = 0

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.amp_bf16)

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_epoch(self):
        """One pass over the train set in shuffled batches; accuracy from each batch's pre-update predictions."""
        cfg, model = self.cfg, self.model
        model.train()
        perm = torch.randperm(self.n_train, generator=self.shuffle).to(self.device)
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        loss_sum = torch.zeros((), dtype=torch.float32, device=self.device)
        for i in range(0, self.n_train, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            x, y = self.normalise(self.train_x[idx]), self.train_y[idx]
            with self._autocast():
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            correct += (logits.argmax(1) == y).sum()
            loss_sum += loss.detach().float() * len(y)
        self.epoch += 1
        return correct.item() / self.n_train, loss_sum.item() / self.n_train

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """Test accuracy and mean loss in eval mode (BatchNorm running statistics)."""
        self.model.eval()
        correct, loss_sum = 0, 0.0
        for i in range(0, self.n_test, self.eval_batch):
            x, y = self.normalise(self.test_x[i:i + self.eval_batch]), self.test_y[i:i + self.eval_batch]
            with self._autocast():
                logits = self.model(x).float()
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        return correct / self.n_test, loss_sum / self.n_test

    def due_eval(self, epoch: int) -> bool:
        return epoch == 1 or epoch % self.cfg.eval_every == 0 or epoch == self.cfg.n_epochs

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.n_epochs

    def run(self, ckpt_path=None, ckpt_every: int = 200, deadline: float | None = None, stop_at: int | None = None,
            log_every: int = 0) -> bool:
        """Train to n_epochs (or stop_at, or until time.time() >= deadline); True when all epochs are done.

        With ckpt_path a checkpoint is written every ckpt_every epochs and when stopping early.
        """
        end = self.cfg.n_epochs if stop_at is None else min(stop_at, self.cfg.n_epochs)
        self.segments += 1
        while self.epoch < end:
            self._sync()
            t0 = time.perf_counter()
            acc, loss = self.train_epoch()                      # .item() syncs
            t1 = time.perf_counter()
            self.train_s += t1 - t0
            self.hist["train_acc"].append(acc)
            self.hist["train_loss"].append(loss)
            if self.due_eval(self.epoch):
                test_acc, test_loss = self.evaluate()
                self.eval_s += time.perf_counter() - t1
                self.hist["eval_epoch"].append(self.epoch)
                self.hist["test_acc"].append(test_acc)
                self.hist["test_loss"].append(test_loss)
            self.hist["elapsed_s"].append(self.train_s + self.eval_s)
            if log_every and (self.epoch % log_every == 0 or self.epoch == end):
                last = f"test {self.hist['test_acc'][-1]:.4f} (ep {self.hist['eval_epoch'][-1]})" \
                    if self.hist["test_acc"] else ""
                print(f"epoch {self.epoch}/{self.cfg.n_epochs}  train {acc:.4f}  loss {loss:.4f}  {last}  "
                      f"{self.epochs_per_s():.3f} ep/s", flush=True)
            if ckpt_path and self.epoch % ckpt_every == 0 and not self.done:
                self.save_checkpoint(ckpt_path)
            if deadline is not None and time.time() >= deadline:
                break
        if ckpt_path:
            self.save_checkpoint(ckpt_path)
        return self.done

    def epochs_per_s(self) -> float:
        """Training epochs per second of measured training time (evaluation excluded)."""
        return self.epoch / self.train_s if self.train_s > 0 else float("nan")

    # -- checkpoints ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"trajectory_key": self.cfg.trajectory_key(), "config": self.cfg.to_dict(), "epoch": self.epoch,
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "opt": _to_cpu(self.opt.state_dict()), "shuffle": self.shuffle.get_state(),
                "hist": {k: list(v) for k, v in self.hist.items()},
                "train_s": self.train_s, "eval_s": self.eval_s, "segments": self.segments}

    def load_state_dict(self, state: dict):
        if state["trajectory_key"] != self.cfg.trajectory_key():
            raise ValueError("checkpoint belongs to a different run (trajectory keys differ)")
        if state["epoch"] > self.cfg.n_epochs:
            raise ValueError(f"checkpoint is at epoch {state['epoch']}, past n_epochs={self.cfg.n_epochs}; "
                             "ask for at least that many epochs or move the checkpoint away")
        self.model.load_state_dict(state["model"])
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt.load_state_dict(state["opt"])
        self.shuffle.set_state(state["shuffle"])
        self.epoch = int(state["epoch"])
        self.hist = {k: list(v) for k, v in state["hist"].items()}
        self.train_s, self.eval_s, self.segments = state["train_s"], state["eval_s"], int(state["segments"])

    def save_checkpoint(self, path):
        """Atomic: written to a temporary file, then renamed over the old checkpoint."""
        with atomic_file(path) as tmp:
            torch.save(self.state_dict(), tmp)

    def resume(self, path) -> bool:
        """Load a checkpoint if one exists and is readable; a damaged one is ignored with a warning."""
        path = Path(path)
        if not path.exists():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            warnings.warn(f"ignoring unreadable checkpoint {path}: {err}")
            return False
        self.load_state_dict(state)
        return True

    def history(self) -> dict[str, np.ndarray]:
        h = self.hist
        return {"epoch": np.arange(1, self.epoch + 1, dtype=np.int32),
                "train_acc": np.asarray(h["train_acc"], dtype=np.float64),
                "train_loss": np.asarray(h["train_loss"], dtype=np.float64),
                "elapsed_s": np.asarray(h["elapsed_s"], dtype=np.float64),
                "eval_epoch": np.asarray(h["eval_epoch"], dtype=np.int32),
                "test_acc": np.asarray(h["test_acc"], dtype=np.float64),
                "test_loss": np.asarray(h["test_loss"], dtype=np.float64)}


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def grok_epoch(history: dict, threshold: float = 0.95) -> int | None:
    """First evaluated epoch with test accuracy >= threshold, or None (the paper's Fig 7 jump is 0.4 -> 1)."""
    hit = np.nonzero(np.asarray(history["test_acc"]) >= threshold)[0]
    return int(history["eval_epoch"][hit[0]]) if len(hit) else None


def fit_epoch(history: dict, threshold: float = 0.95, window: int = 20) -> int | None:
    """First epoch whose on-the-fly train accuracy, averaged over the last `window` epochs, is >= threshold."""
    acc = np.asarray(history["train_acc"], dtype=float)
    if len(acc) < window:
        return None
    hit = np.nonzero(np.convolve(acc, np.ones(window) / window, mode="valid") >= threshold)[0]
    return int(history["epoch"][hit[0] + window - 1]) if len(hit) else None


GROK_DELAY = 1000   # epochs from fitting to generalising that count as grokking (Fig. 7: about 2,700)


def grokking_verdict(history: dict, threshold: float = 0.95, min_delay: int = GROK_DELAY) -> dict:
    """Grokking is a delay: train accuracy reaches `threshold` early and test accuracy only much later.

    Returns the two epochs (fit_epoch, grok_epoch) and the kind: "grokking" (test follows at least
    min_delay epochs after train), "no delay" (test reaches it sooner, or before train does) or
    "not reached" (test never does)."""
    fit, gen = fit_epoch(history, threshold), grok_epoch(history, threshold)
    if gen is None:
        kind = "not reached"
    elif fit is not None and gen - fit >= min_delay:
        kind = "grokking"
    else:
        kind = "no delay"
    return {"fit": fit, "generalise": gen, "kind": kind}


def train_resnet(cfg: ResNetConfig, store: ResNetStore | None = None, device=None, time_limit: float | None = None,
                 ckpt_every: int = 200, log_every: int = 0, data=None, data_root=None,
                 cudnn_benchmark: bool = True) -> Run | None:
    """Train (resuming a checkpoint) and store the run; None if the time limit stopped it first.

    time_limit counts seconds from the call; a stopped run leaves its checkpoint for the next call.
    """
    start = time.time()
    store = store or ResNetStore()
    found = store.get(cfg)
    if found is not None:
        return found
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cudnn_benchmark
    t_data = time.time()
    trainer = ResNetTrainer(cfg, device, data=data, data_root=data_root)
    data_s = time.time() - t_data
    ckpt = store.resnet_checkpoint(cfg)
    resumed = trainer.resume(ckpt)
    if log_every:
        print(f"{cfg.key()} on {device_name(device)}: {trainer.n_train} train / {trainer.n_test} test images, "
              f"data ready in {data_s:.1f} s, {'resumed at epoch ' + str(trainer.epoch) if resumed else 'fresh start'}",
              flush=True)
    deadline = start + time_limit if time_limit is not None else None
    finished = trainer.run(ckpt_path=ckpt, ckpt_every=ckpt_every, deadline=deadline, log_every=log_every)
    if not finished:
        return None
    hist = trainer.history()
    g = grok_epoch(hist)
    meta = {"kind": "resnet", "semantics": RESNET_SEMANTICS_VERSION, "code_commit": code_commit(),
            "device": device_name(device), "torch": torch.__version__,
            "cudnn_benchmark": bool(cudnn_benchmark and device.type == "cuda"), "fused_adam": device.type == "cuda",
            "train_s": round(trainer.train_s, 3), "eval_s": round(trainer.eval_s, 3),
            "epochs_per_s": round(trainer.epochs_per_s(), 5), "segments": trainer.segments,
            "n_train": trainer.n_train, "n_test": trainer.n_test, "grok_epoch_95": g,
            "grok_wall_s": None if g is None else round(float(hist["elapsed_s"][g - 1]), 3),
            "pretrained": False, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return store.put(cfg, hist, meta)


# -- moving a checkpoint between machines -------------------------------------------------------------------
def export_checkpoint(ckpt, out_dir, shard_mib: int = 15, parts=None) -> list[Path]:
    """Split a checkpoint into shards of at most shard_mib MiB plus a manifest with checksums.

    parts: the shard numbers to write (all by default), for carrying a large checkpoint in several goes.
    A full-width checkpoint (weights plus Adam's two moments, float32) is about 128 MiB: 9 shards of 15 MiB.
    """
    ckpt, out = Path(ckpt), Path(out_dir)
    data = ckpt.read_bytes()
    size = shard_mib << 20
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    manifest = {"name": ckpt.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "shards": [hashlib.sha256(c).hexdigest() for c in chunks]}
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{ckpt.name}.manifest.json"]
    written[0].write_text(json.dumps(manifest, indent=1))
    for i in (range(len(chunks)) if parts is None else parts):
        (out / f"{ckpt.name}.part{i:02d}").write_bytes(chunks[i])
        written.append(out / f"{ckpt.name}.part{i:02d}")
    return written


def import_checkpoint(src_dirs, dest_dir) -> Path | None:
    """Reassemble a checkpoint from shards spread over src_dirs into dest_dir (atomically); None if incomplete.

    Every shard and the whole file are checked against the manifest; a damaged shard raises ValueError.
    """
    srcs = [Path(d) for d in ([src_dirs] if isinstance(src_dirs, (str, Path)) else src_dirs)]
    manifests = sorted(m for d in srcs if d.exists() for m in d.glob("*.manifest.json"))
    if not manifests:
        return None
    man = json.loads(manifests[0].read_text())
    blobs = []
    for i, digest in enumerate(man["shards"]):
        found = [d / f"{man['name']}.part{i:02d}" for d in srcs if (d / f"{man['name']}.part{i:02d}").exists()]
        if not found:
            return None
        blob = found[0].read_bytes()
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ValueError(f"shard {found[0]} does not match its checksum")
        blobs.append(blob)
    data = b"".join(blobs)
    if len(data) != man["bytes"] or hashlib.sha256(data).hexdigest() != man["sha256"]:
        raise ValueError(f"reassembled {man['name']} does not match its manifest")
    dest = Path(dest_dir) / man["name"]
    with atomic_file(dest) as tmp:
        tmp.write_bytes(data)
    return dest


def _parts(text: str | None):
    """'0-3' -> range(0, 4); '8' -> range(8, 9); None -> None (all)."""
    if not text:
        return None
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train ResNet-18 on the polygon-sum images, resuming where the last "
                                             "call stopped; the finished run goes into the run store.")
    for f in dataclasses.fields(ResNetConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(flag, action="store_true")
        else:
            ap.add_argument(flag, type={"int": int, "float": float, "str": str}[f.type], default=f.default)
    ap.add_argument("--time-limit", type=float, default=None, help="seconds; stop and checkpoint after this")
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    ap.add_argument("--import-from", nargs="*", default=(), help="folders holding checkpoint shards from "
                    "--export-to; reassembled into the checkpoint folder when no local checkpoint exists")
    ap.add_argument("--export-to", default=None, help="after training, write the checkpoint as shards (and the "
                    "store entry, when finished) into this folder")
    ap.add_argument("--export-parts", default=None, help="shard numbers to write, e.g. 0-3 (default: all)")
    ap.add_argument("--export-only", action="store_true", help="train nothing: only export the existing checkpoint "
                    "(so that shards written by several calls come from one and the same checkpoint)")
    return ap


def config_from_args(args: argparse.Namespace) -> ResNetConfig:
    return ResNetConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ResNetConfig)})


def train_command(cfg: ResNetConfig) -> str:
    """The command line that trains cfg: the mode and every setting that differs from its default."""
    default = ResNetConfig(mode=cfg.mode)
    parts = ["python -m grok_core.resnet_train", f"--mode {cfg.mode}"]
    for f in dataclasses.fields(ResNetConfig):
        value = getattr(cfg, f.name)
        if f.name == "mode" or value == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        parts.append(flag if value is True else f"{flag} {value}")
    return " ".join(parts)


def main(argv=None):
    ap = _parser()
    args = ap.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        ap.error(str(err))
    if args.threads:
        torch.set_num_threads(args.threads)
    store = ResNetStore()
    ckpt = store.resnet_checkpoint(cfg)
    if args.import_from and not ckpt.exists():
        got = import_checkpoint(args.import_from, ckpt.parent)
        print(f"imported checkpoint {got}" if got else "no complete checkpoint among the shards given")
    if args.export_only:
        run = store.get(cfg)
    else:
        run = train_resnet(cfg, store, device=args.device, time_limit=args.time_limit, ckpt_every=args.ckpt_every,
                           log_every=args.log_every)
    if args.export_to:
        out = Path(args.export_to)
        if ckpt.exists():
            written = export_checkpoint(ckpt, out, parts=_parts(args.export_parts))
            print("exported", ", ".join(p.name for p in written))
        if run is not None:
            entry = out / f"run-{run.key}"
            entry.mkdir(parents=True, exist_ok=True)
            for f in store.entry(run.key).iterdir():
                (entry / f.name).write_bytes(f.read_bytes())
            print(f"exported the store entry to {entry}")
    if run is None:
        print(f"not finished (epoch < {cfg.n_epochs}); checkpoint kept, run the same command again to continue")
        return 3
    print(json.dumps({"key": run.key, **{k: run.meta.get(k) for k in ("epochs_per_s", "train_s", "eval_s",
                                                                         "grok_epoch_95", "grok_wall_s", "device")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
