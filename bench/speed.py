"""Training speed: the released code's step beside ours, alone and batched, with the arithmetic bound.

Usage (from the repository root):
    python bench/speed.py --ref .ref/Grokking-Insight --out bench/results      # on a CUDA machine
    python bench/speed.py --device cpu --threads 2 --only cpu                   # the CPU figure
    python bench/speed.py --only programme --programme-compile --programme-ahead  # the programme as the runner trains it
    python bench/speed.py --only repeat,determinism                             # same device, same numbers? at what cost?
    python bench/speed.py --only chunking                                       # row-chunked products vs one bmm
    python bench/speed.py --only takeback                                       # one-hot vs inverse-table gradient sums

--ref is a checkout of the released code (github.com/Qihuai27/Grokking-Insight); it is imported
and driven through its own Trainer.do_a_training_step, unmodified; only its Config is built with
the device and the setting below. It is never part of this repository.

Setting (the issue's): 1-layer transformer, d_model 128, 4 heads, d_mlp 512, x+y mod 97,
random split, frac 0.3, full batch, every metric every step, float32 with TF32 off.

Printed and written under --out: one table (ms per run-step, run-steps/s, ratio to the released
code, achieved FLOP/s, fraction of the fp32 bound, memory per run), the ideas measured and which
were kept, a faithfulness check (alone vs batched vs CPU over the first 100 steps), a TF32
grokking-curve check, a repeat check (the same runs trained twice: bitwise equal?), and the estimate for the paper's whole modular programme: the runs of
grok_core.programme.paper_configs() (thinned histories), batched by grok_core.runner.plan, each
batch timed on recorded and on train-only steps.

--quick is a smoke test on a CPU (p=23, d_model 32; the programme part takes the chapters' quick
profiles with a thinned history and times only the three cheapest batches); its numbers are
not comparable.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grok_core.config import PRECISIONS, RunConfig                         # noqa: E402
from grok_core.models import ONEHOT_MAX_P                                  # noqa: E402
from grok_core.programme import PAPER_RECORD                               # noqa: E402
from grok_core.runner import batch_label                                   # noqa: E402
from grok_core.splits import split_sizes                                   # noqa: E402
from grok_core.budget import bytes_per_run  # noqa: E402
from grok_core.train import Trainer, recorded_steps, set_strict_fp32   # noqa: E402

BASE = RunConfig(p=97, frac_train=0.3, n_layers=1, d_model=128, n_heads=4, n_steps=30000)
LINES: list[str] = []


def say(*args):
    line = " ".join(str(a) for a in args)
    print(line, flush=True)
    LINES.append(line)


# -- arithmetic ---------------------------------------------------------------------------------------
def per_sample_flops(cfg: RunConfig) -> float:
    """Forward FLOPs per (i, j) sample that cannot be shared between samples.

    Work that depends on one token only (embeddings, keys/values of positions 0 and 1 while they
    are still per-token tables, the MLP's first layer in the embedding MLP) is shared by p samples
    and left out. Transformer: only the '=' position feeds the logits; earlier layers must also
    carry position 1 (which sees both operands after the first attention) on the rows.
    """
    D, M, H, p = cfg.d_model, cfg.d_mlp, cfg.n_heads, cfg.p
    if cfg.model == "mlp":
        return 2 * M * M + 2 * M * p + 2 * M          # hidden 2, output, the sum of the three tables
    f = 0.0
    for l in range(cfg.n_layers):
        last = l == cfg.n_layers - 1
        grid_pos = [2] if last else [1, 2]            # positions whose state depends on (i, j)
        if l == 0:
            f += sum(2 * (q + 1) * H * D for q in grid_pos)        # attn-weighted sum of v W_O tables
        else:
            n_kv = 2                                               # keys/values of grid positions 1, 2
            f += n_kv * 2 * 2 * D * D                              # K, V projections
            f += len(grid_pos) * (2 * D * D + 2 * D * D)           # Q projection, W_O
            f += sum(4 * (q + 1) * D for q in grid_pos)            # scores and mix
        f += len(grid_pos) * 4 * D * M                              # MLP
    return f + 2 * D * p                                            # unembedding at '='


def recorded_fraction(cfg: RunConfig) -> float:
    """Share of cfg's steps that are recorded (and so also run the test rows)."""
    return len(recorded_steps(cfg)) / cfg.n_steps


def step_flops(cfg: RunConfig, recorded: float = 1.0) -> float:
    """Bound per run-step: forward and backward (2x) on the train rows every step, plus the forward
    on the test rows on the `recorded` share of steps. recorded=1 (every step recorded, the headline
    setting) is one forward on every pair and a backward on the train rows."""
    n_train, n_test = split_sizes(cfg)
    return per_sample_flops(cfg) * (3 * n_train + recorded * n_test)


def measure_fp32_rate(dev) -> float:
    """FLOP/s of a large float32 matrix product with TF32 off (the fp32 ceiling used for the bound)."""
    n = 8192
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    for _ in range(2):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        a @ b
        e1.record()
        torch.cuda.synchronize()
        times.append(e0.elapsed_time(e1) / 1e3)
    return 2 * n ** 3 / statistics.median(times)


# -- timing ---------------------------------------------------------------------------------------------
def sync(dev):
    if torch.device(dev).type == "cuda":
        torch.cuda.synchronize()


def time_steps(step, dev, n_steps: int, repeats: int = 3) -> float:
    """Median seconds per call of step() over `repeats` timed blocks of n_steps calls."""
    times = []
    for _ in range(repeats):
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(n_steps):
            step()
        sync(dev)
        times.append((time.perf_counter() - t0) / n_steps)
    return statistics.median(times)


def memory_baseline(dev) -> int | None:
    """On CUDA: collect garbage, free the cache, reset the peak counter and return the bytes allocated now
    (else None). Without the collection a Trainer of the batch before, still in a reference cycle, counts in
    the baseline and is freed during the timing, so a batch after a larger one reports too little (p=47
    after p=379: 18 MB per run uncollected, 29 collected)."""
    if torch.device(dev).type != "cuda":
        return None
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def configs_for(cfg: RunConfig, R: int) -> list[RunConfig]:
    return [cfg.replace(init_seed=r, split_seed=r) for r in range(R)]


def time_ours(cfg: RunConfig, R: int, dev, n_steps: int = 20, trainer_cls=Trainer, **kw) -> dict:
    """Build a Trainer of R runs, warm it up (graph capture, compilation), time n_steps steps."""
    base = memory_baseline(dev)
    t0 = time.perf_counter()
    tr = trainer_cls(configs_for(cfg, R), dev, **kw)
    for _ in range(3):
        tr.train_step()
    sync(dev)
    warm = time.perf_counter() - t0
    s = time_steps(tr.train_step, dev, n_steps)
    out = {"runs": R, "ms_per_step": s * 1e3, "ms_per_run_step": s * 1e3 / R, "run_steps_per_s": R / s,
           "warmup_s": round(warm, 2)}
    if base is not None:
        out["mem_per_run_MB"] = (torch.cuda.max_memory_allocated() - base) / R / 2 ** 20
        out["mem_estimate_per_run_MB"] = bytes_per_run(cfg) / 2 ** 20
    del tr
    return out


# -- the released code -------------------------------------------------------------------------------
def load_reference(ref: Path, rel: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ref / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def time_reference(ref: Path, which: str, dev, n_steps: int = 20) -> dict:
    """One run of the released code: its Trainer and do_a_training_step, as written; Config set to our setting."""
    rel = "MLP/base.py" if which == "mlp" else "transformer/base.py"
    mod = load_reference(ref, rel, f"released_{which}")
    layers = {"1layer": 1, "2layer": 2, "mlp": 2}[which]
    config = mod.Config(p=97, d_vocab=98, frac_train=0.3, num_layers=layers, seed=0, device=torch.device(dev))
    mod.config = config          # its forward and its step read a module-level `config`, as its __main__ sets
    world = mod.Trainer(config=config)
    epoch = [0]

    def step():
        with contextlib.redirect_stdout(io.StringIO()):
            world.do_a_training_step(epoch[0])
        epoch[0] += 1

    for _ in range(3):
        step()
    s = time_steps(step, dev, n_steps)
    return {"runs": 1, "ms_per_step": s * 1e3, "ms_per_run_step": s * 1e3, "run_steps_per_s": 1 / s}


# -- ideas measured beside the kept design --------------------------------------------------------------
class SyncEveryStepTrainer(Trainer):
    """Idea check: the same eager step, plus one host read per step (as the released code does with .item())."""

    def train_step(self):
        super().train_step()
        self.history[0, 0, 0].item()          # any element: the read waits for the step's device work


def time_adamw_variants(cfg: RunConfig, R: int, dev) -> dict:
    """Optimiser alone on [R, P]: our hand-written AdamW (per-run lr/wd) vs torch's fused and foreach AdamW."""
    out = {}
    tr = Trainer(configs_for(cfg, 2), dev, cuda_graph=False)
    P = tr.flat.shape[1]
    del tr
    flat = torch.randn(R, P, device=dev)
    grad = torch.randn_like(flat)
    m, v = torch.zeros_like(flat), torch.zeros_like(flat)
    lr = torch.full((R, 1), 1e-3, device=dev)
    wd = torch.ones(R, 1, device=dev)
    row = torch.tensor([[1.0, 0.1, 0.1]], device=dev)

    def ours():
        with torch.no_grad():
            lr_ = lr * row[:, 0:1]
            flat.mul_(1 - lr_ * wd)
            m.lerp_(grad, 0.1)
            v.mul_(0.98).addcmul_(grad, grad, value=0.02)
            denom = (v.sqrt() / row[:, 2:3]).add_(1e-8)
            flat.sub_(lr_ / row[:, 1:2] * m / denom)

    out["ours_ms"] = time_steps(ours, dev, 20) * 1e3
    for kind in ("fused", "foreach"):
        p = torch.nn.Parameter(torch.randn(R, P, device=dev))
        p.grad = torch.randn_like(p)
        opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98), **{kind: True})
        out[f"torch_{kind}_ms"] = time_steps(opt.step, dev, 20) * 1e3
    return out


# -- checks -----------------------------------------------------------------------------------------
FAITH_TOL = {"rel": 1e-2, "acc": 0.02}     # losses, MED, weight norm: relative; accuracies: absolute


def faithfulness(dev, steps: int = 100) -> dict:
    """The same config alone and inside a batch, on the GPU (graph) and on the CPU (eager), over `steps` steps."""
    cfg = BASE.replace(n_steps=steps, init_seed=3, split_seed=3)
    others = [cfg.replace(init_seed=10 + r, split_seed=10 + r, frac_train=0.3 + 0.05 * r) for r in range(7)]
    hists = {}
    for name, cfgs, d in [("gpu_alone", [cfg], dev), ("gpu_batched", others[:3] + [cfg] + others[3:], dev),
                          ("cpu_alone", [cfg], "cpu")]:
        tr = Trainer(cfgs, d)
        tr.run(progress=False)
        hists[name] = tr.histories()[cfgs.index(cfg)]
    out = {}
    for a, b in [("gpu_alone", "gpu_batched"), ("gpu_alone", "cpu_alone")]:
        diffs = {}
        for metric in ("train_loss", "test_loss", "med", "weight_norm", "train_acc", "test_acc"):
            for n in (10, steps):
                x, y = hists[a][metric][:n], hists[b][metric][:n]
                d = abs(x - y).max()
                # accuracies: absolute (a fraction of pairs); the rest relative to the largest value
                diffs[f"{metric}@{n}"] = float(d if metric.endswith("acc") else d / max(1e-12, abs(y).max()))
        out[f"{a} vs {b}"] = diffs
    out["tolerance"] = FAITH_TOL
    out["pass"] = all(v <= FAITH_TOL["acc" if k.split("@")[0].endswith("acc") else "rel"]
                      for pair, d in out.items() if " vs " in pair for k, v in d.items())
    return out


def test95(h, thresh=0.95):
    idx = (h["test_acc"] >= thresh).nonzero()[0]
    return int(h["step"][idx[0]]) if len(idx) else None


def tf32_curve_check(dev, steps: int = 2500) -> dict:
    """8 seeds of a setting that groks quickly (p=47, frac 0.6, lr 1e-3), fp32 vs tf32: steps to test acc 0.95."""
    cfg = RunConfig(p=47, frac_train=0.6, lr=1e-3, n_steps=steps)
    out = {}
    for prec in ("fp32", "tf32", "fp32, each run alone"):
        t0 = time.perf_counter()
        if prec.startswith("fp32, each"):
            hs = []
            for c in configs_for(cfg, 8):
                tr = Trainer([c], dev)
                tr.run(progress=False)
                hs += tr.histories()
        else:
            tr = Trainer(configs_for(cfg.replace(precision=prec), 8), dev)
            tr.run(progress=False)
            hs = tr.histories()
        out[prec] = {"test95_step": [test95(h) for h in hs], "final_test_acc": [round(float(h["test_acc"][-1]), 4) for h in hs],
                     "wall_s": round(time.perf_counter() - t0, 2)}
    set_strict_fp32()
    return out


def repeat_check(dev, steps: int = 2500, compile_too: bool = True) -> dict:
    """The same 8 runs (the TF32 check's setting) trained twice in one process: are the histories bitwise equal?

    Each way of training (eager / compiled, torch's deterministic mode on as the Trainer has it, or off):
    without it, atomic adds in a backward pass (the scatter-add behind a gather) and compiled code's
    autotuning make GPU runs differ from run to run."""
    cfgs = configs_for(RunConfig(p=47, frac_train=0.6, lr=1e-3, n_steps=steps), 8)
    out = {}
    for compiled, det in [(c, d) for c in ((False, True) if compile_too else (False,)) for d in (True, False)]:
        hs = []
        for _ in range(2):
            tr = Trainer(cfgs, dev, compile=compiled, deterministic=det)
            tr.run(progress=False)
            hs.append(tr.histories())
        metrics = [m for m in hs[0][0] if m != "step"]
        first = []                                        # per run: the first recorded step that differs, or None
        for a, b in zip(*hs):
            diff = np.zeros(len(a["step"]), dtype=bool)
            for m in metrics:
                diff |= ~((a[m] == b[m]) | (np.isnan(a[m]) & np.isnan(b[m])))
            first.append(int(a["step"][diff.argmax()]) if diff.any() else None)
        out[("compiled" if compiled else "eager") + ("" if det else ", deterministic mode off")] = {
            "bitwise_equal_runs": first.count(None), "runs": len(cfgs), "first_differing_step": first,
            "max_abs_diff": {m: float(max(np.abs(np.nan_to_num(a[m]) - np.nan_to_num(b[m])).max() for a, b in zip(*hs)))
                             for m in metrics},                   # NaN (no block) counts as 0; bitwise check sees it
            "test95_step": [[test95(h) for h in run] for run in hs]}
    return out


# -- the paper's modular programme --------------------------------------------------------------------------
def programme_batches(max_batch: int, dev, quick: bool = False) -> tuple[list[list[RunConfig]], dict[str, str]]:
    """The programme's batches as grok_core.runner.plan forms them, and each run's chapter (by key).

    The paper profile of every chapter (grok_core.programme.paper_configs), deduplicated by key.
    quick: the chapters' quick profiles instead, with a thinned history (record_dense 100, every
    20th step), so that a CPU can exercise the estimate."""
    from grok_core.programme import PROFILES, paper_configs, setup
    from grok_core.runner import plan
    if quick:
        per_chapter = {c: setup(c, "quick", {"record_dense": 100, "record_every": 20})[1] for c in PROFILES}
    else:
        per_chapter = paper_configs()
    chapter = {}
    for name, cs in per_chapter.items():
        for c in cs:
            chapter.setdefault(c.key(), name)
    unique = {c.key(): c for cs in per_chapter.values() for c in cs}
    return plan(list(unique.values()), max_batch, dev), chapter


def time_recorded_and_train_only(configs: list[RunConfig], dev, n_steps: int = 10, repeats: int = 3, **kw) -> dict:
    """One Trainer of these runs, timed on both kinds of step.

    The configs are trained with record_dense = warm-up + timed steps and record_every = n_steps,
    so the first steps are recorded (train rows with grad, test rows without, metrics) and the
    following ones are train-only; only recording differs, the step's arithmetic is the run's own.
    Each kind is warmed up (on CUDA: its graph captured) before it is timed. "mixed" weighs the two
    by the share of steps the runs themselves record."""
    warm = 3
    dense = warm + repeats * n_steps
    total = dense + 1 + repeats * n_steps + 1            # + the train-only warm-up step, + the (recorded) last step
    cfgs = [c.replace(n_steps=max(c.n_steps, total), record_dense=dense, record_every=max(c.n_steps, total))
            for c in configs]
    base = memory_baseline(dev)
    t0 = time.perf_counter()
    tr = Trainer(cfgs, dev, **kw)
    for _ in range(warm):
        tr.train_step()
    sync(dev)
    warm_s = time.perf_counter() - t0
    rec = time_steps(tr.train_step, dev, n_steps, repeats)
    assert not tr.is_recorded[tr.step:tr.step + 1 + repeats * n_steps].any()
    t0 = time.perf_counter()
    tr.train_step()                                       # first train-only step (compiles and captures its graph)
    sync(dev)
    warm_s += time.perf_counter() - t0
    train = time_steps(tr.train_step, dev, n_steps, repeats)
    R, frac = len(configs), recorded_fraction(configs[0])
    mixed = frac * rec + (1 - frac) * train
    out = {"runs": R, "ms_per_step_recorded": rec * 1e3, "ms_per_step_train_only": train * 1e3,
           "ms_per_step_mixed": mixed * 1e3, "ms_per_run_step_recorded": rec * 1e3 / R,
           "ms_per_run_step_train_only": train * 1e3 / R, "ms_per_run_step_mixed": mixed * 1e3 / R,
           "warmup_s": round(warm_s, 2)}                  # setup, compilation and graph capture of both kinds
    if base is not None:
        out["mem_per_run_MB"] = (torch.cuda.max_memory_allocated() - base) / R / 2 ** 20
    del tr
    return out


def estimate_programme(dev, max_batch: int = 128, quick: bool = False, rate: float | None = None,
                       compile: bool = False, precision: str = "fp32", ahead: bool = False,
                       on_row=None) -> dict:
    """Time every batch of the programme on recorded and on train-only steps and weigh the two by
    the share of recorded steps: minutes per batch and in all.

    rate: the fp32 FLOP/s ceiling, for the thinned-programme bound (None: no bound).
    precision: every run's RunConfig.precision for the timing (the book's runs are fp32).
    ahead (with compile, on CUDA): the batches come through grok_core.runner.precompiled, as the runner
    trains them: a helper process compiles the next batch while this one is timed (so the timing includes
    its interference), and the next batch's setup is timed here. A helper that takes longer than the batch
    before it would train adds the difference to setup.
    on_row: called with each batch's row once it is complete (a long measurement shows its progress)."""
    from grok_core.runner import precompiled
    batches, chapter = programme_batches(max_batch, dev, quick)
    if quick:
        batches = batches[-3:]                            # plan puts the most expensive batches first
    chapters = [sorted({chapter[c.key()] for c in b}) for b in batches]   # keyed by the fp32 configs
    batches = [[c.replace(precision=precision) for c in b] for b in batches]
    ahead = ahead and compile and torch.device(dev).type == "cuda"
    rows, total, total_bound, setup = [], 0.0, 0.0, 0.0
    late = 0.0                                            # seconds the helper of this batch ran past the last batch
    for k, b in enumerate(precompiled(batches, dev, ahead)):   # every batch: padded to its own largest split
        handed = time.perf_counter()
        if ahead and k:
            # this batch's helper started when the last batch was handed out and was awaited before this one
            # (an upper bound: it is awaited after the last batch's timing)
            rows[-1]["next_compiled_ahead_s"] = helper_s = handed - last_handed
            late = max(0.0, helper_s - rows[-1]["minutes"] * 60)
        if on_row and k:                                  # the previous batch's row is complete once this one is handed
            on_row(rows[-1])
        last_handed = handed
        cfg, R = b[0], len(b)
        frac = recorded_fraction(cfg)
        r = time_recorded_and_train_only(b, dev, n_steps=2 if quick else 10, repeats=1 if quick else 3, compile=compile)
        secs = cfg.n_steps * r["ms_per_step_mixed"] / 1e3
        total += secs
        setup += r["warmup_s"] + late
        row = {"batch": batch_label(b), "runs": R, "n_steps": cfg.n_steps, "recorded_fraction": frac,
               "ms_per_run_step_recorded": r["ms_per_run_step_recorded"],
               "ms_per_run_step_train_only": r["ms_per_run_step_train_only"],
               "ms_per_run_step_mixed": r["ms_per_run_step_mixed"],
               "mem_per_run_MB": r.get("mem_per_run_MB"),
               "mem_estimate_per_run_MB": bytes_per_run(max(b, key=lambda c: c.frac_train)) / 2 ** 20,
               "minutes": secs / 60, "setup_s": r["warmup_s"], "next_compiled_ahead_s": None,
               "chapters": chapters[k]}
        if rate:
            bound = sum(c.n_steps * step_flops(c, recorded_fraction(c)) for c in b) / rate
            row["bound_minutes"] = bound / 60
            total_bound += bound
        rows.append(row)
    if on_row and rows:
        on_row(rows[-1])
    out = {"rows": rows, "total_minutes": total / 60, "setup_minutes": setup / 60, "n_runs": sum(r["runs"] for r in rows),
           "max_batch": max_batch, "quick": quick, "compiled": compile, "precision": precision, "compiled_ahead": ahead}
    if rate:
        out["bound_total_minutes"] = total_bound / 60
    return out


CHUNK_SHAPES = [(8, 43136, 128, 512), (8, 43136, 512, 128), (8, 43136, 128, 379), (8, 4736, 128, 512),
                (8, 4736, 128, 384), (8, 4736, 128, 128), (8, 4736, 128, 97), (16, 3776, 256, 1024), (16, 3776, 128, 97)]
# and the deeper layers' products, where positions 1 and 2 go through one product (twice the rows)
CHUNK_SHAPES_DEEP = [(8, 9472, 128, 384), (8, 9472, 128, 512), (8, 9472, 512, 128), (8, 9472, 128, 128)]


def graphed(fn, dev):
    """fn captured as a CUDA graph and returned as its replay (on CUDA), as the Trainer runs its step:
    the timing is then the GPU's, not the launch overhead of many small eager calls."""
    if torch.device(dev).type != "cuda":
        return fn
    side = torch.cuda.Stream(dev)
    side.wait_stream(torch.cuda.current_stream(dev))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(dev).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def product_inputs(shapes, dev, quick: bool = False):
    """For each product shape (runs, rows, d_in, d_out): the shape and seeded random x, W and output gradient gy.
    quick: the last two shapes only, with 1,024 rows."""
    for R, n, d_in, d_out in (shapes[-2:] if quick else shapes):
        n = 1024 if quick else n
        g = torch.Generator(device=dev).manual_seed(0)
        yield (R, n, d_in, d_out, torch.randn(R, n, d_in, device=dev, generator=g),
               torch.randn(R, d_in, d_out, device=dev, generator=g), torch.randn(R, n, d_out, device=dev, generator=g))


def chunking_check(dev, quick: bool = False) -> list[dict]:
    """grok_core.models.linear (rows cut into chunks for few runs) against one plain bmm, forward and
    backward (gradients of x and W) as one CUDA graph each, on the product shapes of the programme's
    small batches (runs, padded train rows, d_in, d_out)."""
    from grok_core.models import linear, row_chunks
    rows = []
    for R, n, d_in, d_out, x, W, gy in product_inputs(CHUNK_SHAPES, dev, quick):
        x.requires_grad_()
        W.requires_grad_()
        row = {"runs": R, "rows": n, "d_in": d_in, "d_out": d_out, "chunks": row_chunks(R, n)}
        for name, f in (("plain", lambda: torch.bmm(x, W)), ("chunked", lambda: linear(x, W))):
            step = graphed(lambda: torch.autograd.grad(f(), (x, W), gy), dev)
            row[f"{name}_ms"] = time_steps(step, dev, 2 if quick else 20) * 1e3
        row["speedup"] = row["plain_ms"] / row["chunked_ms"]
        rows.append(row)
    return rows


def chunk_products_check(dev, quick: bool = False) -> list[dict]:
    """The three products of a chunked `linear`, each timed alone (a CUDA graph on CUDA) for 1 to 16 chunks per
    run: forward x @ W, input gradient gy @ W^T, weight gradient x^T @ gy summed over the chunks. `linear` cuts
    all three alike; this shows which chunk count suits which product."""
    rows = []
    for R, n, d_in, d_out, x, W, gy in product_inputs(CHUNK_SHAPES + CHUNK_SHAPES_DEEP, dev, quick):
        row = {"runs": R, "rows": n, "d_in": d_in, "d_out": d_out, "ms": {}}
        for S in (1, 2, 4, 8, 16):
            if n % S:
                continue
            xs, gys = x.view(R * S, n // S, d_in), gy.view(R * S, n // S, d_out)
            Ws = W[:, None].expand(R, S, d_in, d_out).reshape(R * S, d_in, d_out)
            products = {"forward": lambda: torch.bmm(xs, Ws),
                        "input_grad": lambda: torch.bmm(gys, Ws.transpose(1, 2)),
                        "weight_grad": lambda: torch.bmm(xs.transpose(1, 2), gys).view(R, S, d_in, d_out).sum(1)}
            row["ms"][S] = {k: time_steps(graphed(f, dev), dev, 2 if quick else 20) * 1e3 for k, f in products.items()}
        row["best"] = {k: min(row["ms"], key=lambda S: row["ms"][S][k]) for k in ("forward", "input_grad", "weight_grad")}
        rows.append(row)
    return rows


def take_backward_check(dev, max_batch: int = 128, quick: bool = False) -> list[dict]:
    """How a RowIndex sums the gradient of its table (grok_core.models.ONEHOT_MAX_P): a product with the
    one-hot matrix or a gather through the inverse table, compiled as the runner trains, on the programme's
    largest batch, its cheapest batch of a deeper model and its batch at p = 211 (mixed ms per run-step)."""
    import grok_core.models as models
    batches, _ = programme_batches(max_batch, dev, quick)
    picked = [max(range(len(batches)), key=lambda k: len(batches[k]))]
    picked += [k for k in range(len(batches) - 1, -1, -1) if batches[k][0].n_layers > 1][:1]
    picked += [k for k in range(len(batches)) if batches[k][0].p == 211][:1]
    rows, default = [], models.ONEHOT_MAX_P
    try:
        for k in dict.fromkeys(picked):
            b = batches[k]
            row = {"batch": batch_label(b), "runs": len(b),
                   "default": "onehot" if b[0].p <= default else "inverse"}
            for how, limit in (("onehot", 10 ** 9), ("inverse", 0)):
                models.ONEHOT_MAX_P = limit
                row[how] = time_recorded_and_train_only(b, dev, n_steps=2 if quick else 10, repeats=1 if quick else 3,
                                                        compile=True)["ms_per_run_step_mixed"]
            row["inverse_over_onehot"] = row["inverse"] / row["onehot"]
            rows.append(row)
    finally:
        models.ONEHOT_MAX_P = default
    return rows


def determinism_cost(dev, max_batch: int = 128, quick: bool = False) -> list[dict]:
    """What torch's deterministic mode costs, compiled as the runner trains: the programme's two most
    expensive batches and its largest, each timed with the mode on (the Trainer's default) and off."""
    batches, _ = programme_batches(max_batch, dev, quick)
    picked = list(dict.fromkeys([0, 1, max(range(len(batches)), key=lambda k: len(batches[k]))]))
    rows = []
    for k in picked:
        b = batches[k]
        row = {"batch": batch_label(b), "runs": len(b)}
        for det in (True, False):
            row["on" if det else "off"] = time_recorded_and_train_only(
                b, dev, n_steps=2 if quick else 10, repeats=1 if quick else 3, compile=True, deterministic=det
            )["ms_per_run_step_mixed"]
        row["ratio"] = row["on"] / row["off"]
        rows.append(row)
    return rows


@contextlib.contextmanager
def guard(label: str):
    """A failing part is reported and the others still run."""
    try:
        yield
    except Exception as err:    # noqa: BLE001
        import traceback
        say(f"  {label}: failed: {type(err).__name__}: {str(err)[:400]}")
        traceback.print_exc()


# -- main ---------------------------------------------------------------------------------------------
def fmt(x, nd=3):
    return "-" if x is None else (f"{x:,.{nd}f}" if isinstance(x, float) else str(x))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--ref", type=Path, default=ROOT / ".ref" / "Grokking-Insight",
                    help="checkout of the released code (not part of this repository)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--only", default="all", help="comma list of: ref,ours,batched,variants,ideas,compile,check,tf32,repeat,chunking,takeback,determinism,programme,profile,cpu")
    ap.add_argument("--runs", default="1,8,64,256")
    ap.add_argument("--quick", action="store_true", help="smoke test: p=23, d_model 32; the programme from the "
                    "quick profiles, three batches (numbers not comparable)")
    ap.add_argument("--max-batch", type=int, default=128, help="most runs in one batch for the programme estimate")
    ap.add_argument("--programme-compile", action="store_true", help="time the programme's batches with torch.compile, "
                    "as the programme runner trains them (about 40 s of compilation per batch on an H100)")
    ap.add_argument("--programme-ahead", action="store_true", help="with --programme-compile: each batch compiled "
                    "ahead in a helper process while the one before it is timed, as the programme runner does")
    ap.add_argument("--programme-precision", choices=PRECISIONS, default="fp32",
                    help="RunConfig.precision of the programme's runs for its estimate (tf32 needs CUDA)")
    args = ap.parse_args()
    if args.quick:
        global BASE
        BASE = BASE.replace(p=23, d_model=32)
    if args.threads:
        torch.set_num_threads(args.threads)
    set_strict_fp32()
    dev = torch.device(args.device)
    parts = set(args.only.split(",")) if args.only != "all" else {"ref", "ours", "batched", "variants", "ideas",
                                                                    "compile", "check", "tf32", "repeat", "chunking", "takeback", "determinism", "programme", "profile"}
    cuda = dev.type == "cuda"
    name = torch.cuda.get_device_name(dev) if cuda else f"cpu {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"
    res = {"device": name, "torch": torch.__version__, "python": platform.python_version(), "precision": "fp32 (TF32 off)",
           "setting": "1-layer transformer, d_model 128, 4 heads, d_mlp 512, x+y mod 97, random split frac 0.3, "
                      "full batch, all metrics every step"}
    say(f"device: {name}   torch {torch.__version__}   TF32 matmul: {torch.backends.cuda.matmul.allow_tf32}")

    thin = recorded_fraction(BASE.replace(**PAPER_RECORD))
    res["flop_per_sample_fwd"] = per_sample_flops(BASE)
    res["flop_per_run_step"] = step_flops(BASE)
    res["programme_recorded_fraction"] = thin
    res["flop_per_run_step_thinned"] = step_flops(BASE, thin)
    say(f"arithmetic: {per_sample_flops(BASE) / 1e6:.3f} MFLOP per sample forward (cls position only); "
        f"every step recorded: {step_flops(BASE) / 1e9:.2f} GFLOP per run-step (forward on all p^2 pairs + "
        f"backward on the train rows); thinned as in the programme ({thin:.1%} of steps recorded): "
        f"{step_flops(BASE, thin) / 1e9:.2f} GFLOP (forward + backward on the train rows every step, "
        f"the test-row forward on recorded steps)")
    if cuda:
        rate = measure_fp32_rate(dev)
        res["fp32_matmul_flop_per_s"] = rate
        res["bound_ms_per_run_step"] = step_flops(BASE) / rate * 1e3
        res["bound_run_steps_per_s"] = rate / step_flops(BASE)
        res["bound_ms_per_run_step_thinned"] = step_flops(BASE, thin) / rate * 1e3
        say(f"fp32 ceiling (8192^3 matmul, TF32 off): {rate / 1e12:.1f} TFLOP/s -> bound, every step recorded: "
            f"{res['bound_ms_per_run_step']:.4f} ms per run-step = {res['bound_run_steps_per_s']:,.0f} run-steps/s; "
            f"thinned: {res['bound_ms_per_run_step_thinned']:.4f} ms per run-step")
    table = []
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()[:40]

    def dump():
        res["table"] = table
        (args.out / f"speed_{tag}.json").write_text(json.dumps(res, indent=1, default=str))
        (args.out / f"speed_{tag}.txt").write_text("\n".join(LINES) + "\n")

    def add(label, cfg, r, ref_ms=None):
        flop = step_flops(cfg)
        ach = flop / (r["ms_per_run_step"] / 1e3)
        r = dict(r, label=label, achieved_flop_per_s=ach)
        if "fp32_matmul_flop_per_s" in res:
            r["fraction_of_bound"] = ach / res["fp32_matmul_flop_per_s"]
        if ref_ms:
            r["speedup_vs_reference"] = ref_ms / r["ms_per_run_step"]
        table.append(r)
        say(f"  {label:<44} {r['ms_per_run_step']:9.4f} ms/run-step {r['run_steps_per_s']:10,.1f} run-steps/s"
            + (f"  x{r['speedup_vs_reference']:,.0f} vs released" if ref_ms else "")
            + f"  {ach / 1e12:6.2f} TFLOP/s" + (f" ({r['fraction_of_bound']:.0%} of bound)" if "fraction_of_bound" in r else "")
            + (f"  {r['mem_per_run_MB']:.0f} MB/run (est. {r['mem_estimate_per_run_MB']:.0f})" if "mem_per_run_MB" in r else ""))
        return r

    ref = {}
    if "ref" in parts:
        with guard("ref"):
            say("(a) released code, one run per process, its own training step:")
            for which, cfg in [("1layer", BASE), ("2layer", BASE.replace(n_layers=2)), ("mlp", BASE.replace(model="mlp"))]:
                try:
                    r = time_reference(args.ref, which, dev)
                    ref[which] = r["ms_per_step"]
                    add(f"released {which}", cfg, r)
                except Exception as err:    # noqa: BLE001 - report and go on
                    say(f"  released {which}: failed: {type(err).__name__}: {err}")
            res["reference_ms_per_step"] = ref.get("1layer")
            res["reference"] = ref
        dump()
    ref1 = ref.get("1layer")

    if "ours" in parts:
        with guard("ours"):
            say("(b) ours, one run:")
            r = add("ours 1-layer, R=1", BASE, time_ours(BASE, 1, dev, n_steps=50 if cuda else 5), ref1)
            res["single_ms_per_step"] = r["ms_per_step"]
            res["single_30000_steps_s"] = r["ms_per_step"] * 30
        dump()
    if "batched" in parts:
        with guard("batched"):
            say("(c) ours, batched:")
            res["batched"] = {}
            for R in [int(x) for x in args.runs.split(",")]:
                r = add(f"ours 1-layer, R={R}", BASE, time_ours(BASE, R, dev, n_steps=max(5, 200 // R)), ref1)
                res["batched"][str(R)] = r["run_steps_per_s"]
        dump()
    if "variants" in parts:
        with guard("variants"):
            say("(d) 2-layer and MLP:")
            res["variants"] = {}
            for which, cfg in [("2layer", BASE.replace(n_layers=2)), ("mlp", BASE.replace(model="mlp"))]:
                for R in (1, 64):
                    r = add(f"ours {which}, R={R}", cfg, time_ours(cfg, R, dev, n_steps=max(5, 100 // R)), ref.get(which))
                    res["variants"][f"{which} R={R}"] = r
        dump()
    if "ideas" in parts and cuda:
        with guard("ideas"):
            say("ideas (kept ones are in grok_core; see the notes below the table):")
            ideas = {}
            for R in (1, 64):
                n = max(5, 100 // R)
                ideas[f"graph R={R}"] = add(f"  CUDA graph (kept), R={R}", BASE, time_ours(BASE, R, dev, n))
                ideas[f"eager R={R}"] = add(f"  eager, no graph, R={R}", BASE, time_ours(BASE, R, dev, n, cuda_graph=False))
                ideas[f"eager+sync R={R}"] = add(f"  eager + one host read per step, R={R}", BASE,
                                                 time_ours(BASE, R, dev, n, trainer_cls=SyncEveryStepTrainer, cuda_graph=False))
                ideas[f"tf32 R={R}"] = add(f"  TF32 matmuls (option, off), R={R}", BASE, time_ours(BASE.replace(precision="tf32"), R, dev, n))
                set_strict_fp32()
            ideas["tf32 R=256"] = add("  TF32 matmuls (option, off), R=256", BASE, time_ours(BASE.replace(precision="tf32"), 256, dev, 5))
            set_strict_fp32()
            ad = time_adamw_variants(BASE, 64, dev)
            ideas["adamw R=64"] = ad
            say(f"  AdamW alone, R=64: ours {ad['ours_ms']:.3f} ms, torch fused {ad['torch_fused_ms']:.3f} ms, "
                f"torch foreach {ad['torch_foreach_ms']:.3f} ms per step")
            res["ideas"] = ideas
            g1, g64 = ideas["graph R=1"]["ms_per_run_step"], ideas["graph R=64"]["ms_per_run_step"]
            x = lambda k, g: ideas[k]["ms_per_run_step"] / g
            step64 = g64 * 64
            notes = [
                f"kept: CUDA graph of the whole step: eager is x{x('eager R=1', g1):.1f} slower at R=1, x{x('eager R=64', g64):.2f} at R=64",
                f"kept: no host syncs in the loop: one host read per step costs x{x('eager+sync R=64', g64) / x('eager R=64', g64):.2f} (eager, R=64)",
                "kept: cls-only last layer, positions 0/1 as per-token tables until attention mixes them; trunk and head on the train rows "
                "with grad, the test rows without grad and only on recorded steps",
                f"not used: torch's fused AdamW: {ad['torch_fused_ms']:.2f} vs {ad['ours_ms']:.2f} ms per step at R=64, i.e. "
                f"{(ad['ours_ms'] - ad['torch_fused_ms']) / step64:.1%} of the step; it takes one lr and wd per call, "
                "and ours has per-run lr and wd",
                f"option, off: TF32 matmuls: x{g64 / ideas['tf32 R=64']['ms_per_run_step']:.2f} faster at R=64; "
                "changes the numbers (see the grokking-curve check)",
            ]
            res["idea_notes"] = notes
            for line in notes:
                say("  " + line)
        dump()
    if "check" in parts and (cuda or args.quick):
        with guard("check"):
            say("faithfulness over the first 100 steps (max |a-b| / max |b| per metric):")
            res["faithfulness"] = faithfulness(dev)
            for k, d in res["faithfulness"].items():
                if " vs " in k:
                    say(f"  {k}: " + ", ".join(f"{m} {v:.1e}" for m, v in d.items()))
            say(f"  tolerance {FAITH_TOL} (relative for losses, MED, weight norm; absolute for accuracies): "
                + ("pass" if res["faithfulness"]["pass"] else "FAIL"))
        dump()
    if "tf32" in parts and cuda:                          # TF32 is a CUDA mode
        with guard("tf32"):
            say("TF32 grokking-curve check (p=47, frac 0.6, lr 1e-3, 8 seeds): first step with test acc >= 0.95; "
                "'fp32, each run alone' is the control: the same fp32 runs with other kernels (batch of 1)")
            res["tf32_check"] = tf32_curve_check(dev, steps=30 if args.quick else 2500)
            for k, d in res["tf32_check"].items():
                say(f"  {k}: {d['test95_step']}  final test acc {d['final_test_acc']}")
        dump()
    if "repeat" in parts and (cuda or args.quick):
        with guard("repeat"):
            say("the same 8 runs trained twice in one process (p=47, frac 0.6, lr 1e-3): bitwise equal histories?")
            res["repeat"] = repeat_check(dev, steps=30 if args.quick else 2500, compile_too=cuda)
            for k, d in res["repeat"].items():
                say(f"  {k}: {d['bitwise_equal_runs']}/{d['runs']} runs bitwise equal; first differing step per run "
                    f"{d['first_differing_step']}; largest differences: "
                    + ", ".join(f"{m} {v:.1e}" for m, v in d["max_abs_diff"].items())
                    + f"; steps to test acc 0.95, first vs second: {d['test95_step'][0]} / {d['test95_step'][1]}")
        dump()
    if "chunking" in parts:
        with guard("chunking"):
            say("models.linear with rows cut into chunks vs one bmm, forward + backward (x and W gradients), "
                f"{'CUDA graphs' if cuda else 'eager'}, ms:")
            res["chunking"] = chunking_check(dev, args.quick)
            for row in res["chunking"]:
                say(f"  {row['runs']:3d} runs x {row['rows']:6d} rows, {row['d_in']:4d} -> {row['d_out']:4d}, "
                    f"{row['chunks']:2d} chunks: plain {row['plain_ms']:.3f} / chunked {row['chunked_ms']:.3f} = "
                    f"{row['speedup']:.2f}x")
            say("each product of a chunked linear alone, ms for 1/2/4/8/16 chunks per run "
                "(forward | input gradient | weight gradient with the sum over chunks; best count in brackets):")
            res["chunk_products"] = chunk_products_check(dev, args.quick)
            for row in res["chunk_products"]:
                cols = ["/".join(f"{row['ms'][S][k]:.3f}" for S in row["ms"]) + f" [{row['best'][k]}]"
                        for k in ("forward", "input_grad", "weight_grad")]
                say(f"  {row['runs']:3d} runs x {row['rows']:6d} rows, {row['d_in']:4d} -> {row['d_out']:4d}: "
                    + " | ".join(cols))
        dump()
    if "takeback" in parts and cuda:                      # a CPU always sums through the inverse table
        with guard("takeback"):
            say("a RowIndex's table gradient by one-hot product vs inverse-table gather, compiled; ms per run-step, "
                f"mixed as in the programme (one-hot up to p = {ONEHOT_MAX_P}):")
            res["take_backward"] = take_backward_check(dev, args.max_batch, args.quick)
            for row in res["take_backward"]:
                say(f"  {row['batch']:<48} {row['runs']:3d} runs: one-hot {row['onehot']:.4f} / inverse "
                    f"{row['inverse']:.4f} = {row['inverse_over_onehot']:.2f}x (default: {row['default']})")
        dump()
    if "determinism" in parts and (cuda or args.quick):
        with guard("determinism"):
            say("torch's deterministic mode (the Trainer's default), compiled, on vs off; ms per run-step, mixed as in the programme:")
            res["determinism_cost"] = determinism_cost(dev, args.max_batch, args.quick)
            for row in res["determinism_cost"]:
                say(f"  {row['batch']:<48} {row['runs']:3d} runs: on {row['on']:.4f} / off {row['off']:.4f} = {row['ratio']:.3f}x")
        dump()
    if "programme" in parts and (cuda or args.quick):
        with guard("programme"):
            which = "QUICK profiles, the three cheapest batches" if args.quick else "paper profiles"
            say(f"the paper's modular programme (grok_core.programme, {which}), "
                f"batched by grok_core.runner.plan (max batch {args.max_batch}); each batch timed on recorded "
                f"and train-only steps ({'torch.compile' if args.programme_compile else 'eager'}, CUDA graphs on CUDA, "
                f"precision {args.programme_precision}), "
                "mixed by the share of recorded steps:")

            def show(row):
                say(f"  {row['batch']:<48} {row['runs']:3d} runs: ms/run-step "
                    f"{row['ms_per_run_step_recorded']:.4f} recorded / {row['ms_per_run_step_train_only']:.4f} train-only / "
                    f"{row['ms_per_run_step_mixed']:.4f} mixed ({row['recorded_fraction']:.1%} recorded), "
                    f"{fmt(row['mem_per_run_MB'], 0)} MB/run (est. {fmt(row['mem_estimate_per_run_MB'], 0)}) "
                    f"-> {row['minutes']:.1f} min" + (f" (bound {row['bound_minutes']:.1f})" if "bound_minutes" in row else "")
                    + f", setup {row['setup_s']:.0f} s"
                    + (f", next batch compiled ahead in {row['next_compiled_ahead_s']:.0f} s"
                       if row["next_compiled_ahead_s"] is not None else "")
                    + f"  [{', '.join(row['chapters'])}]")
            est = estimate_programme(dev, args.max_batch, args.quick, res.get("fp32_matmul_flop_per_s"),
                                     compile=args.programme_compile, precision=args.programme_precision,
                                     ahead=args.programme_ahead and args.programme_compile, on_row=show)
            res["programme"] = est
            say(f"  total for {est['n_runs']} runs: {est['total_minutes']:.1f} minutes of training"
                + (f" (thinned-programme bound {est['bound_total_minutes']:.1f})" if "bound_total_minutes" in est else "")
                + f" + {est['setup_minutes']:.1f} minutes of setup (compilation, graph capture) = "
                  f"{est['total_minutes'] + est['setup_minutes']:.1f} minutes")
        dump()
    if "profile" in parts:
        with guard("profile"):
            from torch.profiler import ProfilerActivity, profile
            activity, sort = ((ProfilerActivity.CUDA, "self_cuda_time_total") if cuda
                              else (ProfilerActivity.CPU, "self_cpu_time_total"))
            train_only = BASE.replace(record_dense=0, record_every=BASE.n_steps)   # step 0 recorded, then none
            for R in ((1, 128) if cuda else (1,)):
                for kind, cfg in (("recorded", BASE), ("train-only", train_only)):
                    tr = Trainer(configs_for(cfg, R), dev, cuda_graph=False)
                    for _ in range(3):
                        tr.train_step()
                    sync(dev)
                    with profile(activities=[activity]) as prof:
                        for _ in range(5):
                            tr.train_step()
                        sync(dev)
                    tab = prof.key_averages().table(sort_by=sort, row_limit=25)
                    (args.out / f"profile_{kind}_R{R}_{tag}.txt").write_text(tab)
                    say(f"profile, eager, {kind} steps, R={R}, 5 steps:")
                    for line in tab.splitlines()[:20]:
                        say("   " + line[:160])
                    del tr
        dump()
    if "compile" in parts and cuda:
        with guard("compile"):
            say("torch.compile (option, off by default):")
            comp = {}
            for R in (1, 64, 256):
                try:
                    comp[f"compile R={R}"] = add(f"  torch.compile + CUDA graph, R={R}", BASE,
                                                 time_ours(BASE, R, dev, max(5, 100 // R), compile=True))
                except Exception as err:    # noqa: BLE001
                    say(f"  torch.compile R={R}: failed: {type(err).__name__}: {str(err)[:300]}")
            res.setdefault("ideas", {}).update(comp)
        dump()
    if "cpu" in parts:
        with guard("cpu"):
            say(f"CPU, one run ({torch.get_num_threads()} threads):")
            r = add("ours 1-layer, R=1, CPU", BASE, time_ours(BASE, 1, "cpu", n_steps=10))
            res["cpu_ms_per_step"] = r["ms_per_step"]
            res["cpu_threads"] = torch.get_num_threads()

        dump()
    say(f"written: {args.out / f'speed_{tag}.json'}")
    dump()


if __name__ == "__main__":
    main()
