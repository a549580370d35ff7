"""Full-batch training of many runs at once, with every-step metrics and checkpoint/resume.

One step, for all runs together:
  1. the model runs on each run's train rows (the trunk never leaves the rows it needs), with grad;
  2. on a recorded step (every step by default; RunConfig.record_dense / record_every thin it)
     the test rows are run too, without grad, and train/test loss and accuracy, block and
     leftover accuracy, MED and the weight norm are written into a device-side history buffer
     (the entry of step s is the model *before* update s, as in the released code; no host sync);
  3. the train loss is backpropagated;
  4. AdamW (decoupled, one parameter group: weight decay on everything) with the warm-up
     multiplier min(s / warmup, 1), so the first update has lr 0 while Adam's moments still
     take the first gradient (spec section 5).
Runs never mix: the loss is a sum of per-run losses and all kernels are batched over runs.
Recording changes nothing in training: a thinned run follows exactly the trajectory of a full one.

The step is written without host synchronisation and without Python numbers that change from
step to step: the step counter is a device tensor, and the warm-up multiplier and Adam's bias
corrections are read from a per-step table computed once in float64 (the same float32 values
torch's AdamW uses). On CUDA both kinds of step (with and without recording) are captured once
as CUDA graphs and replayed; the eager path runs the same code, so CPU and GPU follow one formula.
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import RunConfig
from .measures import med, med_reference, weight_norm
from .models import ONEHOT_MAX_P, ROW_ALIGN, RowIndex, build_model
from .splits import make_split
from .store import (CheckpointError, TrainingInterrupted, atomic_file, checkpoint_write_error, move_aside,
                    read_checkpoint, seal_checkpoint)
from .tasks import labels as task_labels

# cuBLAS is deterministic only with a fixed workspace; torch's deterministic mode refuses matmuls without it.
# It is read when CUDA starts, so it is set on import (a user's own setting wins).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

BASE_METRICS = ("train_loss", "test_loss", "train_acc", "test_acc", "block_acc", "leftover_acc",
                "med", "med_ref", "weight_norm")


def adamw_schedule(cfg: RunConfig, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[n_steps, 3]: per step s, the warm-up multiplier min(s / warmup, 1) and Adam's bias corrections
    1 - beta1^(s+1) and sqrt(1 - beta2^(s+1)), computed in float64 like torch's AdamW, stored in dtype."""
    s = torch.arange(cfg.n_steps, dtype=torch.float64)
    mult = torch.clamp(s / cfg.warmup_steps, max=1.0) if cfg.warmup_steps else torch.ones_like(s)
    t = s + 1
    bc1 = 1 - cfg.beta1 ** t
    bc2 = torch.sqrt(1 - cfg.beta2 ** t)
    return torch.stack([mult, bc1, bc2], -1).to(dtype)


def recorded_steps(cfg: RunConfig) -> torch.Tensor:
    """The steps whose metrics are kept: s < record_dense, s % record_every == 0, and the last."""
    s = torch.arange(cfg.n_steps)
    return s[(s < cfg.record_dense) | (s % cfg.record_every == 0) | (s == cfg.n_steps - 1)]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_strict_fp32():
    """Grokking curves are sensitive to numerics: no TF32 unless asked for explicitly."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Keep blocks up to `limit` bytes that torch frees on the CPU in the process's heap (glibc only).

    torch has no caching allocator on the CPU, and glibc serves each large tensor with a fresh mapping
    and returns the memory on free, so every step faults its activations in again, page by page: about
    a quarter of a training step of one run at p = 97 on two cores (bench/results/README.md). Raising
    glibc's mmap and trim thresholds lets the freed blocks be reused. Returns whether glibc took it."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):          # not glibc (macOS, Windows): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))


@contextlib.contextmanager
def deterministic_algorithms(on: bool = True):
    """torch's deterministic mode for the duration: on CUDA a gather's backward (a scatter-add) otherwise adds
    with atomics in any order, and compiled code autotunes reductions, so the same runs trained twice differ
    from step 2 on (measured on an H100; bench/results/README.md). The previous mode is restored on exit."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(on)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def metric_names(cfg: RunConfig) -> tuple[str, ...]:
    return BASE_METRICS + (("med_hidden",) if cfg.model == "mlp" else ())


def check_batchable(configs: list[RunConfig]):
    if not configs:
        raise ValueError("configs is empty; give at least one RunConfig")
    first = configs[0].batch_key()
    for c in configs[1:]:
        if c.batch_key() != first:
            diff = sorted({k for (k, v) in first} ^ {k for (k, v) in c.batch_key()} |
                          {k for (k, v), (k2, v2) in zip(first, c.batch_key()) if v != v2})
            raise ValueError(f"runs in one batch must share shapes and optimiser settings; these differ: {diff}")


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> torch.Tensor:
    """[run, n, p] logits, [run, n] labels -> [run, n] loss per sample, in the logits' dtype."""
    R, n, p = logits.shape
    flat, y = logits.reshape(R * n, p), labels.reshape(R * n)
    if kind == "ce":
        out = F.cross_entropy(flat, y, reduction="none")
    elif kind == "ce64":
        out = F.cross_entropy(flat.double(), y, reduction="none").to(flat.dtype)
    else:  # mse against one-hot targets, averaged over the p outputs (the README variant)
        out = ((flat - F.one_hot(y, p).to(flat.dtype)) ** 2).mean(-1)
    return out.view(R, n)


class Trainer:
    """Trains a batch of runs that share p and model shape; any mix of seeds, splits, functions."""

    def __init__(self, configs: list[RunConfig], device: torch.device | str | None = None,
                 cuda_graph: bool | None = None, compile: bool = False, deterministic: bool = True,
                 dtype: torch.dtype = torch.float32):
        """cuda_graph: capture the step as a CUDA graph (default: on for CUDA devices).
        compile: run the forward and AdamW through torch.compile (an option; off by default).
        deterministic: steps run in torch's deterministic mode, so that the same runs give the same numbers
        on the same device; False only to measure what that costs (bench/speed.py).
        The matmul precision is the configs' own (RunConfig.precision), so it is part of every run's key.
        dtype: float64 trains the same runs in double precision, for tests whose claim is "the same arithmetic"
        (runs are stored only from float32 training; the store's keys name float32 runs).
        """
        check_batchable(configs)
        self.configs = list(configs)
        self.device = torch.device(device) if device is not None else default_device()
        if self.device.type == "cpu":
            keep_freed_memory()
        cfg = self.cfg = configs[0]
        if cfg.precision == "tf32" and self.device.type != "cuda":
            raise ValueError(f"precision='tf32' needs a CUDA device; on {self.device.type} the runs would compute "
                             "float32 numbers under a tf32 key")
        R = len(configs)
        self.model = build_model(cfg)
        self.metrics = metric_names(cfg)
        dev = self.device
        self.dtype = dtype

        splits = [make_split(c) for c in configs]
        labels = torch.stack([task_labels(c.fn, c.p) for c in configs]).to(dev)               # [r, N]
        n_train = torch.tensor([len(s.train_idx) for s in splits])
        n_max = -(-int(n_train.max()) // ROW_ALIGN) * ROW_ALIGN     # padded rows weigh 0; see models.linear
        self.train_idx = torch.zeros(R, n_max, dtype=torch.long)
        self.train_w = torch.zeros(R, n_max, dtype=dtype)
        for r, s in enumerate(splits):
            n = len(s.train_idx)
            # padding rows (weight 0) spread over the table: (0, 0), (1, 1), ... so that no operand value
            # collects many rows (that would widen the RowIndex inverse tables)
            self.train_idx[r] = torch.cat([s.train_idx, torch.arange(n_max - n) * (cfg.p + 1) % cfg.p ** 2])
            self.train_w[r, :n] = 1.0 / n
        self.train_idx, self.train_w = self.train_idx.to(dev), self.train_w.to(dev)
        self.train_labels = torch.gather(labels, 1, self.train_idx)
        self.train_ij = (RowIndex(self.train_idx // cfg.p, cfg.p), RowIndex(self.train_idx % cfg.p, cfg.p))
        n_test_max = max(len(s.test_idx) for s in splits)
        self.test_idx = torch.zeros(R, n_test_max, dtype=torch.long)
        test_real = torch.zeros(R, n_test_max)
        for r, s in enumerate(splits):
            self.test_idx[r, :len(s.test_idx)] = s.test_idx
            test_real[r, :len(s.test_idx)] = 1.0
        self.test_idx = self.test_idx.to(dev)
        self.test_labels = torch.gather(labels, 1, self.test_idx)
        self.test_ij = (self.test_idx // cfg.p, self.test_idx % cfg.p)
        train_real = (self.train_w > 0).float()
        # [r, N, 4] 0/1 membership of train / test / block / leftover (sums of 0/1 are exact in float32);
        # an empty part (no block in a random split) averages to NaN
        parts = torch.stack([torch.stack([s.train_mask, s.test_mask, s.block_mask & s.test_mask, s.leftover_mask], -1)
                             for s in splits]).float()
        counts = parts.sum(1)                                                                 # [r, 4]
        # the same membership for the head's rows in their order: train rows, then test rows; padding 0
        rows = torch.cat([self.train_idx.cpu(), self.test_idx.cpu()], 1)
        real = torch.cat([train_real.cpu(), test_real], 1)
        self.row_parts = (torch.gather(parts, 1, rows[..., None].expand(-1, -1, 4)) * real[..., None]).to(dev, dtype)
        self.part_div = torch.where(counts > 0, counts, math.nan).to(dev, dtype)

        self.flat = torch.stack([self.model.init_params(c) for c in configs]).to(dev, dtype).requires_grad_()
        self.buffers = {k: v.to(dev, dtype) for k, v in self.model.buffers(R).items()}
        self.m = torch.zeros_like(self.flat)
        self.v = torch.zeros_like(self.flat)
        col = lambda name: torch.tensor([getattr(c, name) for c in configs], dtype=dtype, device=dev)[:, None]
        self.lr, self.wd = col("lr"), col("wd")
        self.step = 0
        self.step_t = torch.zeros((), dtype=torch.long, device=dev)     # the same counter, on the device
        self.sched = adamw_schedule(cfg, dtype).to(dev)                   # [n_steps, 3]
        self.record_steps = recorded_steps(cfg)
        slot = torch.zeros(cfg.n_steps, dtype=torch.long)
        slot[self.record_steps] = torch.arange(len(self.record_steps))
        self.is_recorded = torch.zeros(cfg.n_steps, dtype=torch.bool)
        self.is_recorded[self.record_steps] = True
        self.slot = slot.to(dev)                                          # step -> history entry
        self.history = torch.full((R, len(self.record_steps), len(self.metrics)), math.nan, dtype=dtype, device=dev)

        self.use_graph = (self.device.type == "cuda") if cuda_graph is None else bool(cuda_graph)
        if self.use_graph and self.device.type != "cuda":
            raise ValueError("cuda_graph=True needs a CUDA device")
        self.compiled = bool(compile)
        self.deterministic = bool(deterministic)
        if compile:
            # torch.compile caches code per function, shared by every Trainer: a process that trains batches of
            # many shapes (the programme) would pass dynamo's recompile limit and fall back to eager unnoticed.
            torch._dynamo.reset()
        self._forward_fn = torch.compile(self._forward, dynamic=False) if compile else self._forward
        self._adamw_fn = torch.compile(self._adamw, dynamic=False) if compile else self._adamw
        self._graphs = {}

    # -- one step -------------------------------------------------------------------------------------
    def _weights(self) -> dict[str, torch.Tensor]:
        return self.model.layout.views(self.flat) | self.buffers

    def _forward(self, flat: torch.Tensor, record: bool):
        """Train loss (with grad) and, when record, the metrics row [run, n_metrics] of the model
        before this step's update (else None). The test rows are run only when recording."""
        cfg = self.cfg
        w = self.model.layout.views(flat) | self.buffers
        logits = self.model.head(w, self.model.trunk(w, *self.train_ij))
        per_sample = per_sample_loss(logits, self.train_labels, cfg.loss)
        loss = (per_sample * self.train_w).sum()
        if not record:
            return loss, None
        with torch.no_grad():
            wd = {k: v.detach() for k, v in w.items()}
            test_logits = self.model.head(wd, self.model.trunk(wd, *self.test_ij))
            sample_loss = torch.cat([per_sample.detach(), per_sample_loss(test_logits, self.test_labels, cfg.loss)], 1)
            correct = torch.cat([logits.detach().argmax(-1) == self.train_labels,
                                 test_logits.argmax(-1) == self.test_labels], 1).to(sample_loss.dtype)
            # [r, 2, 4]: per part, sums of loss and correctness (a product here runs as a gemv that walks the
            # rows serially: 4.4 ms per recorded step at p = 379 on an H100)
            LA = (torch.stack([sample_loss, correct], -1)[..., None] * self.row_parts[..., None, :]).sum(1)
            LA = LA / self.part_div[:, None]
            L, A = LA[:, 0], LA[:, 1]
            W_E = wd["W_E"]
            row = [L[:, 0], L[:, 1], A[:, 0], A[:, 1], A[:, 2], A[:, 3],
                   med(W_E, cfg.p), med_reference(W_E, cfg.p, cfg.operand_offset), weight_norm(flat.detach())]
            row += list(self.model.extra_measures(wd).values())
            row = torch.stack(row, -1)
        return loss, row

    @torch.no_grad()
    def _adamw(self, grad: torch.Tensor, sched_row: torch.Tensor):
        """torch's AdamW formula; sched_row [1, 3] = (warm-up multiplier, 1 - b1^t, sqrt(1 - b2^t))."""
        cfg = self.cfg
        lr = self.lr * sched_row[:, 0:1]                                                      # [r, 1]
        self.flat.mul_(1 - lr * self.wd)
        self.m.lerp_(grad, 1 - cfg.beta1)
        self.v.mul_(cfg.beta2).addcmul_(grad, grad, value=1 - cfg.beta2)
        denom = (self.v.sqrt() / sched_row[:, 2:3]).add_(1e-8)
        self.flat.sub_(lr / sched_row[:, 1:2] * self.m / denom)

    def _step_body(self, record: bool):
        """One step as device work only: no host sync, the step index read from self.step_t."""
        k = self.step_t.view(1)
        loss, row = self._forward_fn(self.flat, record)
        if record:
            self.history.index_copy_(1, self.slot.index_select(0, k), row[:, None].to(self.history.dtype))
        (grad,) = torch.autograd.grad(loss, self.flat)
        self._adamw_fn(grad, self.sched.index_select(0, k))
        self.step_t.add_(1)

    def _set_precision(self):
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.cfg.precision == "tf32"

    def prepare(self):
        """Compile (and on CUDA capture) both kinds of step now instead of at the first step of each kind;
        the training state is left as it was. For compiling a batch ahead of time (grok_core.precompile)."""
        self._set_precision()
        with deterministic_algorithms(self.deterministic):
            for record in (True, False):
                if self.use_graph:
                    if record not in self._graphs:
                        self._capture(record)
                else:
                    saved = self._saved_state()
                    self._step_body(record)
                    self._restore_state(saved)

    def _saved_state(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in (self.flat, self.m, self.v, self.step_t, self.history)]

    def _restore_state(self, saved: list[torch.Tensor]):
        with torch.no_grad():
            for t, v in zip((self.flat, self.m, self.v, self.step_t, self.history), saved):
                t.copy_(v)

    def _capture(self, record: bool):
        """Warm up on a side stream, capture one step, then put the state back as it was."""
        saved = self._saved_state()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step_body(record)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        with torch.no_grad():
            self.step_t.copy_(saved[3])
        graph = torch.cuda.CUDAGraph()
        pool = next(iter(self._graphs.values())).pool() if self._graphs else None
        with torch.cuda.graph(graph, pool=pool):
            self._step_body(record)
        self._restore_state(saved)
        self._graphs[record] = graph

    def train_step(self):
        if self.done:
            raise RuntimeError(f"all {self.cfg.n_steps} steps are done")
        self._set_precision()
        record = bool(self.is_recorded[self.step])
        with deterministic_algorithms(self.deterministic):
            if self.use_graph:
                if record not in self._graphs:
                    self._capture(record)
                self._graphs[record].replay()
            else:
                self._step_body(record)
        self.step += 1

    # -- loop, checkpoints ----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.step >= self.cfg.n_steps

    def run(self, ckpt_path: str | Path | None = None, ckpt_every: int = 1000, stop_at: int | None = None,
            deadline: float | None = None, progress: bool | None = None) -> bool:
        """Train until n_steps (or stop_at, or time.time() >= deadline); True when all steps are done.

        With ckpt_path, a checkpoint is written every ckpt_every steps and when stopping early.
        SIGINT or SIGTERM (caught in the main thread, unless ignored) ends the loop after the step in flight,
        writes a checkpoint at that step and raises TrainingInterrupted; a second signal raises it at once.
        """
        end = self.cfg.n_steps if stop_at is None else min(stop_at, self.cfg.n_steps)
        show = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.cfg.n_steps, initial=self.step, desc=f"{len(self.configs)} run(s) p={self.cfg.p}",
                       unit="step", mininterval=1.0)
        caught = []

        def on_signal(signum, frame):
            if caught:
                raise TrainingInterrupted(signum, self.step, self.cfg.n_steps, None)
            caught.append(signum)

        main_thread = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)
                    if main_thread and signal.getsignal(s) is not signal.SIG_IGN}
        try:
            while self.step < end and not caught:
                self.train_step()
                if bar is not None and self.step % 50 == 0:
                    bar.n = self.step
                    bar.refresh()
                if ckpt_path and self.step % ckpt_every == 0 and self.step < self.cfg.n_steps:
                    self.save_checkpoint(ckpt_path)
                if deadline is not None and time.time() >= deadline:
                    break
        finally:
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)
            if bar is not None:
                bar.n = self.step
                bar.close()
        if ckpt_path and (caught or not self.done):
            self.save_checkpoint(ckpt_path)
        if caught:
            raise TrainingInterrupted(caught[0], self.step, self.cfg.n_steps, Path(ckpt_path) if ckpt_path else None)
        return self.done

    def state_dict(self) -> dict:
        """The batch's training state, with its configs, so that a later call can rebuild the batch from it alone."""
        return {"keys": [c.key() for c in self.configs], "configs": [c.to_dict() for c in self.configs],
                "step": self.step, "flat": self.flat.detach().cpu(), "m": self.m.cpu(), "v": self.v.cpu(),
                "history": self.history[:, :self.n_recorded].cpu()}

    @property
    def n_recorded(self) -> int:
        """History entries filled so far (recorded steps before self.step)."""
        return self._recorded_before(self.step)

    def _recorded_before(self, step: int) -> int:
        return int(torch.searchsorted(self.record_steps, step))

    def load_state_dict(self, state: dict):
        """Check that the state fits this batch in every part, then load it: a misfit raises ValueError
        before anything of the trainer changes (so it never trains on half a checkpoint)."""
        fields = {"keys", "configs", "step", "flat", "m", "v", "history"}
        if set(state) != fields:
            raise ValueError(f"checkpoint has the fields {sorted(state)}, not {sorted(fields)}")
        if state["keys"] != [c.key() for c in self.configs]:
            raise ValueError("checkpoint belongs to a different set of runs (config keys differ)")
        if state["configs"] != [c.to_dict() for c in self.configs]:
            raise ValueError("checkpoint's configs are not the batch's")
        step = state["step"]
        if type(step) is not int or not 0 <= step <= self.cfg.n_steps:
            raise ValueError(f"checkpoint's step {step!r} lies outside 0..{self.cfg.n_steps}")
        shapes = {"flat": self.flat, "m": self.m, "v": self.v,
                  "history": self.history[:, :self._recorded_before(step)]}          # width: the metrics; length: recorded by step
        for name, like in shapes.items():
            got = state[name]
            if not isinstance(got, torch.Tensor) or got.shape != like.shape or got.dtype != like.dtype:
                what = f"{list(got.shape)} {got.dtype}" if isinstance(got, torch.Tensor) else type(got).__name__
                raise ValueError(f"checkpoint's {name} is {what}; this batch needs {list(like.shape)} {like.dtype}")
        with torch.no_grad():
            self.flat.copy_(state["flat"])
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])
        self.step = step
        self.step_t.fill_(self.step)
        self.history[:, :self.n_recorded] = state["history"].to(self.device)

    def save_checkpoint(self, path: str | Path):
        """Atomic (a temporary file renamed over the old checkpoint) and sealed with a sha256 of its bytes;
        a full disk raises one plain OSError and leaves the previous checkpoint as it was."""
        try:
            with atomic_file(path) as tmp:
                torch.save(self.state_dict(), tmp)
                seal_checkpoint(tmp)
        except OSError as err:
            raise checkpoint_write_error(err, path) from None

    def resume(self, path: str | Path) -> bool:
        """Load the checkpoint at path if there is one, its bytes match their seal and it fits this batch (True).
        One that does not is moved aside with a warning naming it and why, and training starts at step 0 (False)."""
        path = Path(path)
        try:
            state, inode = read_checkpoint(path)
        except FileNotFoundError:
            return False
        except CheckpointError as err:
            problem, inode = f"unreadable checkpoint {path}: {err}", err.inode
        else:
            try:
                self.load_state_dict(state)
                return True
            except ValueError as err:
                problem = f"unusable checkpoint {path}: {err}"
        aside = move_aside(path, "unusable", inode)
        if aside is None and path.exists():
            return self.resume(path)            # replaced by a writer meanwhile: read the new one
        where = f"moved to {aside.name}" if aside else "someone else moved it"
        warnings.warn(f"{problem}; {where}, training starts again from step 0")
        return False

    def histories(self) -> list[dict]:
        """Per run: {metric: float32 array [recorded steps done]} plus 'step', the step of each entry."""
        n = self.n_recorded
        h = self.history[:, :n].cpu().numpy()
        steps = self.record_steps[:n].numpy().astype("int32")
        return [{"step": steps, **{m: h[r, :, k] for k, m in enumerate(self.metrics)}} for r in range(len(self.configs))]
