"""Training one ResNet-18 run: mini-batch Adam as released, resumable from sealed checkpoints, into the run store.

The released recipe counts train accuracy on the fly in train mode (each batch's predictions before its
update) and test accuracy in eval mode; it is kept. Runs longer than one command are trained in segments
that resume from a checkpoint, checked against its sha256 seal before use.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..analysis import grok_epoch
from ..devices import default_device, device_name
from ..store import Run, RunStore, code_commit, resume_checkpoint, save_checkpoint
from . import polygons
from .config import RESNET_SEMANTICS_VERSION, ResNetConfig
from .data import Normalise, load_data, resize_crop
from .model import build_resnet18


class ResNetStore(RunStore):
    """The run store for ResNetConfig entries: same entry layout and atomic writes, read back as ResNetConfig.

    Entries live in <results root>/resnet-runs, apart from the modular-task runs, whose listing
    tools expect a RunConfig in every entry; checkpoints share <results root>/checkpoints.
    """

    def __init__(self, root=None):
        super().__init__(root, config_cls=ResNetConfig, runs_subdir="resnet-runs")

    def resnet_checkpoint(self, cfg: ResNetConfig) -> Path:
        return self.ckpt_dir / f"resnet-{cfg.trajectory_key()}.pt"


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
        save_checkpoint(path, self.state_dict())

    def resume(self, path) -> bool:
        """Load the checkpoint at path if there is one and its bytes match their seal (True). A damaged or unsealed
        one is moved aside with a warning and training starts at epoch 0 (False); one of a longer run raises."""
        return resume_checkpoint(path, self.load_state_dict, "epoch 0", misfit=())

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
