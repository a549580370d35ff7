"""Full-batch training of many runs at once, with every-step measures and checkpoint/resume.

One step (`_step`), for all runs together, reads top to bottom:
  1. forward: the model runs on each run's train rows, with grad; logits (less those at initialisation, when
     output_centre) times output_scale;
     per-sample loss (grok_core.losses, in the float type of RunConfig.loss_precision), weighted into
     each run's mean;
  2. record (on recorded steps: every step by default, RunConfig.record_dense / record_every thin it):
     the test rows are run too, without grad, and every measure of the registry (grok_core.measures)
     is written into a device-side history (entry s is the model *before* update s, as in the released
     code; no host sync); a measure of the gradient (needs_grad) gets its own backward pass here;
  3. backward: the gradient of the summed loss (runs never mix: it is a sum of per-run losses);
  4. gradient transform and parameter mask (grok_core.updates; none by default);
  5. optimiser update (AdamW unless the config names another), its per-step numbers read from a table made once.
Recording changes nothing in training: a thinned run follows exactly the trajectory of a full one.
On CUDA both kinds of step (with and without recording) are captured once as CUDA graphs and
replayed; the eager path runs the same code, so CPU and GPU follow one formula.
Between steps, runs with a stop rule (grok_core.stopping) are taken out at their stop step and the batch is
compacted to the runs left (Trainer's docstring); a batch without one never reads anything back on the host.
"""
from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .batch import BatchData
from .config import RunConfig
from .devices import default_device, deterministic_algorithms, keep_freed_memory
from .losses import training_loss
from .measures import MEASURES, MeasureContext
from .models import build_model, model_class
from .stopping import StopRule, check_interval
from .store import TrainingInterrupted, resume_checkpoint, save_checkpoint
from .tickets import initial_params
from .updates import OPTIMISERS, PARAM_MASKS, make_transform, per_run

SNAPSHOT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def recorded_steps(cfg: RunConfig) -> torch.Tensor:
    """The steps whose measures are kept: s < record_dense, s % record_every == 0, and the last."""
    s = torch.arange(cfg.n_steps)
    return s[(s < cfg.record_dense) | (s % cfg.record_every == 0) | (s == cfg.n_steps - 1)]


def snapshot_steps(cfg: RunConfig) -> torch.Tensor:
    """The steps whose weights are stored (before that step's update; n_steps means the final weights):
    0 and up to cfg.snapshots - 1 more, log-spaced up to n_steps, duplicates dropped; with snapshot_every, also
    every multiple of it up to n_steps; and the steps of cfg.snapshot_at, merged in order."""
    steps = torch.tensor([int(s) for s in cfg.snapshot_at.split(",")] if cfg.snapshot_at else [], dtype=torch.long)
    if cfg.snapshots:
        more = cfg.snapshots - 1                  # one more is the final weights (logspace(..., 1) gives its start)
        logs = (torch.logspace(0, math.log10(cfg.n_steps), more, dtype=torch.float64) if more > 1
                else torch.full((more,), float(cfg.n_steps), dtype=torch.float64))
        logs = torch.cat([torch.zeros(1, dtype=torch.long), logs.round().long()])
        steps = torch.cat([steps, torch.unique(logs.clamp(max=cfg.n_steps))[:cfg.snapshots]])
    if cfg.snapshot_every:
        steps = torch.cat([steps, torch.arange(0, cfg.n_steps + 1, cfg.snapshot_every)])
    return torch.unique(steps)


def metric_names(cfg: RunConfig) -> tuple[str, ...]:
    """The measures a run records, in history order: the registry's defaults (a per-model one only for the
    models that list it), then the config's own extra measures."""
    model = model_class(cfg.model)
    lacking = [n for n in cfg.extra_measures if MEASURES[n].embedding and not model.embeds]
    if lacking:
        raise ValueError(f"measures {lacking} are not allowed with model={cfg.model!r}: it has no token embedding")
    return tuple(n for n, m in MEASURES.items() if m.default and (not m.per_model or n in model.measures)
                 and (model.embeds or not m.embedding)) + cfg.extra_measures


@dataclass
class RunResult:
    """One run's outcome as the store keeps it: its history ({'step': int32, metric: array}), final flat weights
    (on the CPU), snapshots ({'step', 'weights'} or None) and, for a run with a stop rule, what StopRule.meta
    says (stopped_at, stop_reason, stop_held; {} without one)."""
    config: RunConfig
    history: dict
    weights: torch.Tensor
    snapshots: dict | None
    stop: dict


class Trainer:
    """Trains a batch of runs that share p and model shape; any mix of seeds, splits, functions and stop rules.

    Runs with a stop rule (RunConfig.stop_acc, grok_core.stopping) end at their own step: every few steps the
    recorded test accuracy is read on the host (stopping.check_interval), a run whose stop step T has come is
    taken out as a RunResult (self.stopped, and run()'s on_finish), and the batch is compacted: every per-run
    tensor is gathered down to the runs still training, the rest rebuilt as a Trainer of those runs alone would
    be (compiled again and graphs captured again). A run's numbers do not depend on its batch mates, so it stops
    where it would alone. Without a stop rule in the batch none of this runs and nothing is read on the host.
    """

    def __init__(self, configs: list[RunConfig], device: torch.device | str | None = None,
                 cuda_graph: bool | None = None, compile: bool = False, deterministic: bool = True,
                 dtype: torch.dtype = torch.float32, compact_share: float | None = None):
        """cuda_graph: capture the step as a CUDA graph (default: on for CUDA devices).
        compile: run the forward and the update through torch.compile (an option; off by default).
        deterministic: steps run in torch's deterministic mode, so that the same runs give the same numbers
        on the same device; False only to measure what that costs (bench/).
        The matmul precision is the configs' own (RunConfig.precision), so it is part of every run's key.
        dtype: float64 trains the same runs in double precision, for tests whose claim is "the same arithmetic"
        (runs are stored only from float32 training; the store's keys name float32 runs).
        compact_share: stopped runs leave the batch once they are at least this share of its rows (default: at
        once, 0; with CUDA graphs 0.25, since each compaction captures them again; compiled, 0.5, since each
        compiles the step again); until then they train on unread.
        """
        RunConfig.check_batchable(configs)
        self.batch_configs = list(configs)
        self.device = dev = torch.device(device) if device is not None else default_device()
        if dev.type == "cpu":
            keep_freed_memory()
        cfg = self.cfg = configs[0]
        if cfg.precision == "tf32" and dev.type != "cuda":
            raise ValueError(f"precision='tf32' needs a CUDA device; on {dev.type} the runs would compute "
                             "float32 numbers under a tf32 key")
        self.use_graph = (dev.type == "cuda") if cuda_graph is None else bool(cuda_graph)
        if self.use_graph and dev.type != "cuda":
            raise ValueError("cuda_graph=True needs a CUDA device")
        self.compiled = bool(compile)
        self.deterministic = bool(deterministic)
        self.dtype = dtype
        self.model = build_model(cfg)
        self.metrics = metric_names(cfg)
        self.loss_fn = training_loss(cfg, dtype)
        self._grad_measured = any(MEASURES[n].needs_grad for n in self.metrics)
        # the stream a recorded step's measures run on, beside its backward (CUDA; not when a measure needs the
        # gradient, which the forward then computes first)
        self._side = torch.cuda.Stream(dev) if dev.type == "cuda" and not self._grad_measured else None

        self.step = 0
        self.step_t = torch.zeros((), dtype=torch.long, device=dev)     # the same counter, on the device
        self.record_steps = recorded_steps(cfg)
        slot = torch.zeros(cfg.n_steps, dtype=torch.long)
        slot[self.record_steps] = torch.arange(len(self.record_steps))
        self.is_recorded = torch.zeros(cfg.n_steps, dtype=torch.bool)
        self.is_recorded[self.record_steps] = True
        self.slot = slot.to(dev)                                          # step -> history entry
        self.snapshot_steps = snapshot_steps(cfg)
        self._snap_slot = {int(s): k for k, s in enumerate(self.snapshot_steps)}

        # per-run stopping: the rules by batch index, the runs stopped, those run() has yet to hand to on_finish
        self.stopping = any(c.has_stop_rule for c in configs)
        self.compact_share = ((0.5 if compile else 0.25 if self.use_graph else 0.0) if compact_share is None
                              else float(compact_share))
        self.rules = {i: StopRule(c) for i, c in enumerate(configs) if c.has_stop_rule}
        self.finished: set[int] = set()
        self.stopped: list[RunResult] = []
        self._to_hand_over: list[RunResult] = []
        self._check_every = check_interval(configs) if self.stopping else 0
        self._seen = 0                                                    # history entries the rules have read
        self._build(list(range(len(configs))))

    def _build(self, rows: list[int], state: dict | None = None, data: BatchData | None = None):
        """Every per-run tensor of the runs batch_configs[rows], as Trainer(those configs) builds them: from their
        initial weights, or with state (flat, the optimiser's state, history, snapshots: [len(rows), ...] on the
        device) when compacting or resuming, and data when it is at hand. The step's compiled code and graphs are
        made again."""
        self.rows = list(rows)
        configs = self.configs = [self.batch_configs[i] for i in rows]
        dev, dtype, cfg, R = self.device, self.dtype, self.cfg, len(rows)
        self.data = BatchData(configs, dev, dtype) if data is None else data
        scales = per_run(configs, "output_scale", dtype, dev)
        self.output_scale = None if bool((scales == 1).all()) else scales[..., None]          # [r, 1, 1]

        flat = (torch.stack([initial_params(self.model, c) for c in configs]).to(dev, dtype) if state is None
                else state["flat"])
        self.flat = flat.requires_grad_()
        self.buffers = {k: v.to(dev, dtype) for k, v in self.model.buffers(R).items()}
        self.grad_transform = make_transform(configs, self.flat.detach(), self.model.layout)
        masks = [PARAM_MASKS[c.param_mask] for c in configs]
        self.mask = None if all(m is None for m in masks) else torch.stack(
            [torch.ones(self.model.layout.size) if m is None else m(c, self.model) for m, c in zip(masks, configs)]
        ).to(dev, dtype)
        self.optimizer = OPTIMISERS[cfg.optimizer](cfg, self.flat, per_run(configs, "lr", dtype, dev),
                                                   per_run(configs, "wd", dtype, dev))
        if state is not None:
            for owner, n in self._state_owners():
                setattr(owner, n, state[n])
            self.flat0, self.base_train, self.base_test = state["flat0"], state["base_train"], state["base_test"]
        else:
            if self.mask is not None:
                with torch.no_grad():
                    self.flat.mul_(self.mask)
            # the initial parameters, kept for the measures that read them
            self.flat0 = self.flat.detach().clone() if any(MEASURES[n].needs_init for n in self.metrics) else None
            self.base_train = self.base_test = None                          # f(theta_0) where output_centre
            if cfg.output_centre:
                with torch.no_grad():
                    w0 = self._weights(self.flat.detach())
                    self.base_train, self.base_test = (self.model.head(w0, self.model.trunk(w0, *ij))
                                                       for ij in (self.data.train_ij, self.data.test_ij))

        if state is None:
            self.history = torch.full((R, len(self.record_steps), len(self.metrics)), math.nan, dtype=dtype, device=dev)
            self.snaps = torch.zeros(R, len(self.snapshot_steps), self.model.layout.size,
                                     dtype=SNAPSHOT_DTYPES[cfg.snapshot_dtype], device=dev)
        else:
            self.history, self.snaps = state["history"], state["snapshots"]

        if self.compiled:
            # torch.compile caches code per function, shared by every Trainer: a process that trains batches of
            # many shapes (the programme) would pass dynamo's recompile limit and fall back to eager unnoticed.
            torch._dynamo.reset()
        compiled = (lambda f: torch.compile(f, dynamic=False)) if self.compiled else (lambda f: f)
        self._forward_fn, self._train_fn, self._measure_fn = map(compiled, (self._forward, self._train_forward,
                                                                            self._measure_row))
        self._update_fn = compiled(self.optimizer.update)
        self._graphs = {}

    # -- one step -------------------------------------------------------------------------------------
    def _weights(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.layout.views(flat) | self.buffers

    def _logits(self, w: dict, ij, base: torch.Tensor | None = None) -> torch.Tensor:
        """The scaled logits of rows ij; base (the same rows' logits at initialisation) is subtracted first."""
        logits = self.model.head(w, self.model.trunk(w, *ij))
        if base is not None:
            logits = logits - base
        return logits if self.output_scale is None else logits * self.output_scale

    def _measures(self, flat, train_loss, train_logits, names, grad=None) -> torch.Tensor:
        """[run, len(names)]: the named measures of the model at flat (no grad), given its per-sample train
        loss and train logits (and the train loss's gradient, for measures that need it); the test rows are
        run here."""
        d = self.data
        w = {k: v.detach() for k, v in self._weights(flat).items()}
        test_logits = self._logits(w, d.test_ij, self.base_test)
        sample_loss = torch.cat([train_loss, self.loss_fn(test_logits, d.test_labels)], 1)
        correct = torch.cat([train_logits.argmax(-1) == d.train_labels,
                             test_logits.argmax(-1) == d.test_labels], 1).to(sample_loss.dtype)
        # [r, 2, 4]: per part, sums of loss and correctness (a product here would run as a gemv that walks
        # the rows serially)
        LA = (torch.stack([sample_loss, correct], -1)[..., None] * d.row_parts[..., None, :]).sum(1)
        LA = LA / d.part_div[:, None]
        ctx = MeasureContext(self.cfg, self.model, w, flat.detach(), LA[:, 0], LA[:, 1], train_logits,
                             d.train_labels, (d.train_w > 0).to(sample_loss.dtype), grad, self.flat0, d.train_truth,
                             d.train_idx)
        return torch.stack([MEASURES[n].fn(ctx) for n in names], -1)

    def _train_forward(self, flat: torch.Tensor):
        """The train rows: the weighted train loss (with grad), its per-sample terms and the logits."""
        d = self.data
        logits = self._logits(self._weights(flat), d.train_ij, self.base_train)
        per_sample = self.loss_fn(logits, d.train_labels)
        return (per_sample * d.train_w).sum(), per_sample, logits

    def _forward(self, flat: torch.Tensor, record: bool):
        """Train loss (with grad) and, when record, the measures row [run, n_metrics] of the model
        before this step's update (else None). The test rows are run only when recording."""
        loss, per_sample, logits = self._train_forward(flat)
        if not record:
            return loss, None
        # a measure of the gradient gets its own backward pass through the retained graph: the step's own
        # backward (in _step) then computes the same gradient as without it
        grad = torch.autograd.grad(loss, flat, retain_graph=True)[0] if self._grad_measured else None
        return loss, self._measure_row(flat, per_sample.detach(), logits.detach(), grad)

    def _measure_row(self, flat: torch.Tensor, per_sample: torch.Tensor, logits: torch.Tensor,
                     grad: torch.Tensor | None = None) -> torch.Tensor:
        """The recorded measures from the train rows' detached outputs (the test rows are run here)."""
        with torch.no_grad():
            return self._measures(flat, per_sample, logits, self.metrics, grad)

    def _step(self, record: bool):
        """One step as device work only: no host sync, the step index read from self.step_t.

        On CUDA a recorded step runs its measures (the test rows' forward, most of their cost) on a side stream
        beside the backward: the same kernels on the same inputs, so the same numbers, while small batches
        leave most of the GPU idle in either pass."""
        k = self.step_t.view(1)
        beside = record and self._side is not None
        if beside:                                                                       # 1. forward
            loss, per_sample, logits = self._train_fn(self.flat)
            main = torch.cuda.current_stream(self.device)
            self._side.wait_stream(main)
            with torch.cuda.stream(self._side):                                          # 2. measures, beside 3.
                row = self._measure_fn(self.flat.detach(), per_sample.detach(), logits.detach())
        else:
            loss, row = self._forward_fn(self.flat, record)
        (grad,) = torch.autograd.grad(loss, self.flat)                                   # 3. backward
        if self.grad_transform is not None:                                              # 4. transform, mask
            grad = self.grad_transform(grad, self.flat.detach())
        if self.mask is not None:
            grad = grad * self.mask
        if beside:
            main.wait_stream(self._side)       # the measures read the weights before the update
        if record:                                                                       # 5. record
            self.history.index_copy_(1, self.slot.index_select(0, k), row[:, None].to(self.history.dtype))
        self._update_fn(self.flat, grad, self.optimizer.schedule.index_select(0, k))     # 6. update
        if self.mask is not None:
            with torch.no_grad():
                self.flat.mul_(self.mask)
        self.step_t.add_(1)

    @torch.no_grad()
    def evaluate(self, flat: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
        """[run, len(names)]: registry measures of the batch's runs at the given parameters [run, n_params]
        (e.g. a stored snapshot), exactly as a recorded step computes them."""
        flat = flat.to(self.device, self.dtype)
        grad = None
        if any(MEASURES[n].needs_grad for n in names):
            with torch.enable_grad():
                leaf = flat.detach().requires_grad_()
                (grad,) = torch.autograd.grad(self._forward(leaf, False)[0], leaf)
        logits = self._logits(self._weights(flat), self.data.train_ij, self.base_train)
        return self._measures(flat, self.loss_fn(logits, self.data.train_labels), logits, names, grad)

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
                    self._step(record)
                    self._restore_state(saved)

    def _state_owners(self) -> list[tuple[object, str]]:
        """(owner, name) of every per-run tensor the optimiser and the gradient transform keep between steps."""
        owners = [self.optimizer] + ([self.grad_transform] if self.grad_transform is not None else [])
        return [(o, n) for o in owners for n in o.state_names]

    def _kept(self) -> dict[str, torch.Tensor]:
        return {n: getattr(o, n) for o, n in self._state_owners()}

    def _state_tensors(self) -> list[torch.Tensor]:
        return [self.flat, *self._kept().values(), self.step_t, self.history]

    def _saved_state(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in self._state_tensors()]

    def _restore_state(self, saved: list[torch.Tensor]):
        with torch.no_grad():
            for t, v in zip(self._state_tensors(), saved):
                t.copy_(v)

    def _capture(self, record: bool):
        """Warm up on a side stream, capture one step, then put the state back as it was."""
        saved = self._saved_state()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._step(record)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        with torch.no_grad():
            self.step_t.fill_(self.step)
        graph = torch.cuda.CUDAGraph()
        pool = next(iter(self._graphs.values())).pool() if self._graphs else None
        with torch.cuda.graph(graph, pool=pool):
            self._step(record)
        self._restore_state(saved)
        self._graphs[record] = graph

    def train_step(self):
        if self.done:
            raise RuntimeError(f"all {self.cfg.n_steps} steps are done" if self.step >= self.cfg.n_steps else
                               f"every run of the batch has stopped (the last at step {self.step})")
        self._set_precision()
        self._snapshot()
        record = bool(self.is_recorded[self.step])
        with deterministic_algorithms(self.deterministic):
            if self.use_graph:
                if record not in self._graphs:
                    self._capture(record)
                self._graphs[record].replay()
            else:
                self._step(record)
        self.step += 1
        if self.stopping:
            self._follow_rules()
        if self.step >= self.cfg.n_steps:
            self._snapshot()

    def _snapshot(self):
        """Keep the weights of a snapshot step (outside the captured step: a copy on the device, no sync)."""
        k = self._snap_slot.get(self.step)
        if k is not None:
            self.snaps[:, k] = self.flat.detach()

    # -- per-run stopping ---------------------------------------------------------------------------------
    def _follow_rules(self):
        """Between steps: every check interval (and at the last step) feed the rules the test accuracy recorded
        since, take out the runs whose stop step is this one, and compact the batch when enough have stopped."""
        if self.step % self._check_every == 0 or self.step >= self.cfg.n_steps:
            self._read_rules()
        for k, i in enumerate(self.rows):
            if i in self.rules and i not in self.finished and self.rules[i].stop_at == self.step:
                self._finish(k)
        present = sum(i in self.finished for i in self.rows)
        if present and not self.done and present >= self.compact_share * len(self.rows):
            self._compact()

    def _read_rules(self):
        """One host read of the test accuracy recorded since the last one, for the runs still looking for their hold."""
        n = self.n_recorded
        if n == self._seen:
            return
        rows = [k for k, i in enumerate(self.rows)
                if i in self.rules and i not in self.finished and self.rules[i].met_at is None]
        if rows:
            acc = self.history[rows, self._seen:n, self.metrics.index("test_acc")].cpu()
            steps = self.record_steps[self._seen:n].tolist()
            for k, a in zip(rows, acc):
                self.rules[self.rows[k]].see(steps, a.tolist())
        self._seen = n

    def _finish(self, k: int):
        """Take row k's run out at its stop step (this one): the history before it, the weights after it, the
        snapshots up to it; queued for run()'s on_finish."""
        i = self.rows[k]
        self._snapshot()                    # the weights at this step if it is a snapshot step (as the next step would)
        n = self.n_recorded
        history = {"step": self.record_steps[:n].numpy().astype("int32"),
                   **{m: v for m, v in zip(self.metrics, self.history[k, :n].cpu().numpy().T)}}
        taken = int((self.snapshot_steps <= self.step).sum())
        snaps = ({"step": self.snapshot_steps[:taken].to(torch.int32), "weights": self.snaps[k, :taken].cpu()}
                 if len(self.snapshot_steps) else None)
        result = RunResult(self.batch_configs[i], history, self.flat[k].detach().cpu().clone(), snaps,
                           self.rules[i].meta())
        self.finished.add(i)
        self.stopped.append(result)
        self._to_hand_over.append(result)

    def _compact(self):
        """Gather every per-run tensor down to the runs still training and rebuild the rest for them."""
        keep = [k for k, i in enumerate(self.rows) if i not in self.finished]
        idx = torch.tensor(keep, device=self.device)
        data = self.data.select(keep)
        state = {"flat": self.flat.detach().index_select(0, idx), "history": self.history.index_select(0, idx),
                 "snapshots": self.snaps.index_select(0, idx), **self._initial(keep, data),
                 **{n: t.index_select(0, idx) for n, t in self._kept().items()}}
        self._graphs = {}                   # the old graphs' memory goes before the new ones are captured
        self._build([self.rows[k] for k in keep], state, data)

    def _initial(self, keep: list[int], data: BatchData) -> dict:
        """What rows keep hold of the initial state (flat0, and base_train, base_test cut to data's padded rows;
        None where the runs keep none)."""
        idx = torch.tensor(keep, device=self.device)

        def pick(t, n=None):
            return None if t is None else t.index_select(0, idx)[:, :n].contiguous()
        return {"flat0": pick(self.flat0), "base_train": pick(self.base_train, data.train_idx.shape[1]),
                "base_test": pick(self.base_test, data.test_idx.shape[1])}

    def results(self) -> list[RunResult]:
        """A RunResult for each run still training (at the end: those that trained to n_steps), in batch order."""
        snaps = self.snapshots() or [None] * len(self.rows)
        return [RunResult(c, h, self.flat[k].detach().cpu().clone(), snaps[k],
                          self.rules[i].meta() if i in self.rules else {})
                for k, (i, c, h) in enumerate(zip(self.rows, self.configs, self.histories())) if i not in self.finished]

    # -- loop, checkpoints ----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """All n_steps are done, or every run of the batch has stopped."""
        return self.step >= self.cfg.n_steps or len(self.finished) == len(self.batch_configs)

    def run(self, ckpt_path: str | Path | None = None, ckpt_every: int = 1000, stop_at: int | None = None,
            deadline: float | None = None, progress: bool | None = None,
            on_finish: Callable[[RunResult], object] | None = None) -> bool:
        """Train until done (or stop_at, or time.time() >= deadline); True when done.

        With ckpt_path, a checkpoint is written every ckpt_every steps and when stopping early.
        SIGINT or SIGTERM (caught in the main thread, unless ignored) ends the loop after the step in flight,
        writes a checkpoint at that step and raises TrainingInterrupted; a second signal raises it at once.
        on_finish(result) is called for each run that stops, right after its step and before any checkpoint
        that counts it as stopped: a checkpoint names its stopped runs but holds not their results, so a
        batch with a stop rule is checkpointed only with an on_finish that keeps them (the runner stores them).
        """
        if ckpt_path and self.stopping and on_finish is None:
            raise ValueError("a batch with a stop rule is checkpointed only with on_finish, which keeps the results "
                             "of the runs that stop (a checkpoint does not hold them)")
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
            while self.step < end and not self.done and not caught:
                self.train_step()
                while self._to_hand_over:
                    result = self._to_hand_over[0]
                    if on_finish is not None:
                        on_finish(result)
                    self._to_hand_over.pop(0)
                if bar is not None and self.step % 50 == 0:
                    bar.n = self.step
                    bar.refresh()
                if ckpt_path and self.step % ckpt_every == 0 and not self.done:
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

    def _checkpointed(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint holds besides the step: parameters, the optimiser's state, and the weight
        snapshots when the runs keep any (so a checkpoint without them has the same fields as before)."""
        out = {"flat": self.flat.detach(), **self._kept()}
        return out | ({"snapshots": self.snaps} if len(self.snapshot_steps) else {})

    def state_dict(self) -> dict:
        """The batch's training state, with its configs, so that a later call can rebuild the batch from it alone.
        A batch with a stop rule also names the runs its tensors hold (rows, indices into the batch) and those that
        have stopped (finished; their results were handed to on_finish)."""
        state = {"keys": [c.key() for c in self.batch_configs], "configs": [c.to_dict() for c in self.batch_configs],
                 "step": self.step, **{n: t.cpu() for n, t in self._checkpointed().items()},
                 "history": self.history[:, :self.n_recorded].cpu()}
        if self.stopping:
            state |= {"rows": list(self.rows), "finished": sorted(self.finished)}
        return state

    @property
    def n_recorded(self) -> int:
        """History entries filled so far (recorded steps before self.step)."""
        return self._recorded_before(self.step)

    def _recorded_before(self, step: int) -> int:
        return int(torch.searchsorted(self.record_steps, step))

    def _checked_rows(self, state: dict) -> tuple[list[int], set[int]]:
        """A stopping checkpoint's rows and finished runs, checked to be indices of this batch that account for
        every run (each one held, or stopped); ValueError otherwise."""
        rows, finished, N = state["rows"], state["finished"], len(self.batch_configs)
        for name, v in (("rows", rows), ("finished", finished)):
            if not (isinstance(v, list) and all(type(i) is int and 0 <= i < N for i in v) and v == sorted(set(v))):
                raise ValueError(f"checkpoint's {name} is not an increasing list of run indices in 0..{N - 1}")
        if not rows or set(range(N)) - set(rows) - set(finished):
            raise ValueError("checkpoint's rows and finished runs do not account for every run of the batch")
        return rows, set(finished)

    def load_state_dict(self, state: dict):
        """Check that the state fits this batch in every part, then load it: a misfit raises ValueError
        before anything of the trainer changes (so it never trains on half a checkpoint)."""
        tensors = self._checkpointed()
        fields = {"keys", "configs", "step", "history", *tensors} | ({"rows", "finished"} if self.stopping else set())
        if set(state) != fields:
            raise ValueError(f"checkpoint has the fields {sorted(state)}, not {sorted(fields)}")
        if state["keys"] != [c.key() for c in self.batch_configs]:
            raise ValueError("checkpoint belongs to a different set of runs (config keys differ)")
        # compared as configs, so that a checkpoint written before a field was added (LATER_FIELDS) still fits
        if [RunConfig.from_dict(c) for c in state["configs"]] != self.batch_configs:
            raise ValueError("checkpoint's configs are not the batch's")
        step = state["step"]
        if type(step) is not int or not 0 <= step <= self.cfg.n_steps:
            raise ValueError(f"checkpoint's step {step!r} lies outside 0..{self.cfg.n_steps}")
        rows, finished = self._checked_rows(state) if self.stopping else (self.rows, set())
        if set(rows) - set(self.rows):
            raise ValueError("checkpoint holds runs this trainer has already dropped")
        n = self._recorded_before(step)
        shapes = {name: (len(rows), *t.shape[1:]) for name, t in tensors.items()} | {
            "history": (len(rows), n, len(self.metrics))}                # width: metrics; length: by step
        for name, shape in shapes.items():
            got, like = state[name], self.history if name == "history" else tensors[name]
            if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape or got.dtype != like.dtype:
                what = f"{list(got.shape)} {got.dtype}" if isinstance(got, torch.Tensor) else type(got).__name__
                raise ValueError(f"checkpoint's {name} is {what}; this batch needs {list(shape)} {like.dtype}")
        rules = {i: StopRule(self.batch_configs[i]) for i in rows if i in self.rules and i not in finished}
        for k, i in enumerate(rows):
            if i in rules:
                rules[i].see(self.record_steps[:n].tolist(), state["history"][k, :, self.metrics.index("test_acc")].tolist())
                if rules[i].stop_at is not None and rules[i].stop_at <= step:
                    raise ValueError(f"checkpoint's run {i} should have stopped at step {rules[i].stop_at}, before "
                                     f"the checkpoint's step {step}, but is not among its finished runs")
        self.step = step
        self.step_t.fill_(self.step)
        self.finished, self._seen = finished, n
        self.rules.update(rules)
        if rows == self.rows:
            with torch.no_grad():
                for name, t in tensors.items():
                    t.copy_(state[name])
            self.history[:, :n] = state["history"].to(self.device)
            return
        keep = [self.rows.index(i) for i in rows]
        data = self.data.select(keep)
        loaded = {name: state[name].to(self.device) for name in tensors} | self._initial(keep, data)
        loaded["history"] = torch.full((len(rows), *self.history.shape[1:]), math.nan, dtype=self.dtype,
                                       device=self.device)
        loaded["history"][:, :n] = state["history"].to(self.device)
        loaded.setdefault("snapshots", self.snaps[:len(rows)])           # none kept: [rows, 0, n_params]
        self._build(rows, loaded, data)

    def save_checkpoint(self, path: str | Path):
        save_checkpoint(path, self.state_dict())

    def resume(self, path: str | Path) -> bool:
        """Load the checkpoint at path if there is one, sound and fitting this batch (True); else it is moved
        aside with a warning and training starts at step 0 (False)."""
        return resume_checkpoint(path, self.load_state_dict, "step 0")

    def snapshots(self) -> list[dict] | None:
        """Per row of the batch: {'step': int32 [k], 'weights': [k, n_params]} of the snapshot steps reached so
        far; None when the runs keep no snapshots."""
        if not len(self.snapshot_steps):
            return None
        taken = (self.snapshot_steps < self.step) | (self.snapshot_steps == self.cfg.n_steps) & (self.step >= self.cfg.n_steps)
        n = int(taken.sum())
        steps = self.snapshot_steps[:n].to(torch.int32)
        return [{"step": steps, "weights": self.snaps[r, :n].cpu()} for r in range(len(self.configs))]

    def histories(self) -> list[dict]:
        """Per row of the batch (self.configs; a stopped run's row holds nothing of it after its stop):
        {metric: array [recorded steps done]} plus 'step', the step of each entry."""
        n = self.n_recorded
        h = self.history[:, :n].cpu().numpy()
        steps = self.record_steps[:n].numpy().astype("int32")
        return [{"step": steps, **{m: h[r, :, k] for k, m in enumerate(self.metrics)}} for r in range(len(self.configs))]
