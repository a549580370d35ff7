"""What the speed benches share: the headline setting, their arguments, timing on the device, and the result
files (every printed line, every number), headed by the device and the arithmetic bound so each file stands alone.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

from bench.arithmetic import measure_fp32_rate, per_sample_flops, recorded_fraction, step_flops
from grok_core.config import RunConfig
from grok_core.devices import set_strict_fp32
from grok_core.chapters.settings import PAPER_RECORD
from grok_core.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
# the setting; --quick shrinks it to QUICK so that a CPU gets through
BASE = RunConfig(p=97, frac_train=0.3, n_layers=1, d_model=128, n_heads=4, n_steps=30000)
QUICK = dict(p=23, d_model=32)


# -- arguments ------------------------------------------------------------------------------------------
def arguments(doc: str, quick_help: str, parts: list[str] = (), default_parts: list[str] | None = None,
              max_batch: bool = False) -> argparse.ArgumentParser:
    """The options every bench takes; with parts, --only to choose among them (all but those left out of
    default_parts by default); with max_batch, the programme planner's batch limit."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda (default when "
                    "torch sees a GPU) or cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the result files "
                    "(default: bench/results)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    if parts:
        ap.add_argument("--only", default="all", help=f"comma list of: {','.join(parts)} "
                        f"(default all: {','.join(default_parts or parts)})")
    if max_batch:
        ap.add_argument("--max-batch", type=int, default=128, help="most runs in one batch of the programme")
    return ap


def chosen_parts(ap: argparse.ArgumentParser, args, parts: list[str],
                 default_parts: list[str] | None = None) -> list[str]:
    """The parts --only names, in the script's order (an unknown name is an error)."""
    if args.only == "all":
        return list(default_parts or parts)
    named = args.only.split(",")
    unknown = [p for p in named if p not in parts]
    if unknown:
        ap.error(f"--only: unknown part(s) {','.join(unknown)}; choose from {','.join(parts)}")
    return [p for p in parts if p in named]


# -- the device ---------------------------------------------------------------------------------------
def device_label(dev: torch.device) -> str:
    """The device as the result files name it (and their file names, through file_tag)."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def file_tag(label: str) -> str:
    """The device label as a file name's tail: lower case, letters and digits, the rest as underscores."""
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()[:40]


# -- runs ---------------------------------------------------------------------------------------------
def configs_for(cfg: RunConfig, R: int) -> list[RunConfig]:
    """R runs of cfg, run r with init and split seed r."""
    return [cfg.replace(init_seed=r, split_seed=r) for r in range(R)]


def test95(h, thresh=0.95):
    """The first recorded step of a history with test accuracy >= thresh (None: never), where a run groks."""
    idx = (h["test_acc"] >= thresh).nonzero()[0]
    return int(h["step"][idx[0]]) if len(idx) else None


# -- timing ---------------------------------------------------------------------------------------------
def sync(dev):
    """Wait for the device's queued work, so that a host clock times it."""
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


# -- results ----------------------------------------------------------------------------------------------
class Report:
    """One bench run on one device with its options (args): every printed line (<stem>_<device>.txt under
    args.out) and every number (<stem>_<device>.json), rewritten after each part: a long run keeps what it has."""

    def __init__(self, args, stem: str):
        self.args = args
        if args.threads:
            torch.set_num_threads(args.threads)
        set_strict_fp32()
        self.dev = torch.device(args.device)
        self.cuda = self.dev.type == "cuda"
        self.quick = args.quick
        self.base = BASE.replace(**QUICK) if args.quick else BASE
        self.out = args.out
        self.lines: list[str] = []
        self.table: list[dict] = []
        name = device_label(self.dev)
        self.tag = file_tag(name)
        self.stem = stem
        self.res = {"device": name, "torch": torch.__version__, "python": platform.python_version(),
                    "precision": "fp32 (TF32 off)",
                    "setting": "1-layer transformer, d_model 128, 4 heads, d_mlp 512, x+y mod 97, random split "
                               "frac 0.3, full batch, all metrics every step"}
        self.say(f"device: {name}   torch {torch.__version__}   TF32 matmul: {torch.backends.cuda.matmul.allow_tf32}")
        self._bound()
        self.out.mkdir(parents=True, exist_ok=True)

    def _bound(self):
        """The headline setting's FLOPs per run-step and, on CUDA, the fp32 bound they give."""
        res, base = self.res, self.base
        thin = recorded_fraction(base.replace(**PAPER_RECORD))
        res["flop_per_sample_fwd"] = per_sample_flops(base)
        res["flop_per_run_step"] = step_flops(base)
        res["programme_recorded_fraction"] = thin
        res["flop_per_run_step_thinned"] = step_flops(base, thin)
        self.say(f"arithmetic: {per_sample_flops(base) / 1e6:.3f} MFLOP per sample forward (cls position only); "
                 f"every step recorded: {step_flops(base) / 1e9:.2f} GFLOP per run-step (forward on all p^2 pairs + "
                 f"backward on the train rows); thinned as in the programme ({thin:.1%} of steps recorded): "
                 f"{step_flops(base, thin) / 1e9:.2f} GFLOP (forward + backward on the train rows every step, "
                 f"the test-row forward on recorded steps)")
        if self.cuda:
            rate = measure_fp32_rate(self.dev)
            res["fp32_matmul_flop_per_s"] = rate
            res["bound_ms_per_run_step"] = step_flops(base) / rate * 1e3
            res["bound_run_steps_per_s"] = rate / step_flops(base)
            res["bound_ms_per_run_step_thinned"] = step_flops(base, thin) / rate * 1e3
            self.say(f"fp32 ceiling (8192^3 matmul, TF32 off): {rate / 1e12:.1f} TFLOP/s -> bound, every step "
                     f"recorded: {res['bound_ms_per_run_step']:.4f} ms per run-step = "
                     f"{res['bound_run_steps_per_s']:,.0f} run-steps/s; "
                     f"thinned: {res['bound_ms_per_run_step_thinned']:.4f} ms per run-step")

    def say(self, *args):
        line = " ".join(str(a) for a in args)
        print(line, flush=True)
        self.lines.append(line)

    def path(self, suffix: str) -> Path:
        return self.out / f"{self.stem}_{self.tag}{suffix}"

    def dump(self):
        self.res["table"] = self.table
        self.path(".json").write_text(json.dumps(self.res, indent=1, default=str))
        self.path(".txt").write_text("\n".join(self.lines) + "\n")

    def runs_here(self, part: str, quick_too: bool = False) -> bool:
        """Whether a CUDA part runs on this device (with quick_too: also as a CPU smoke test under --quick);
        if not, says so on stderr, outside the result files."""
        if self.cuda or (quick_too and self.quick):
            return True
        print(f"{part}: skipped, needs CUDA" + (" or --quick" if quick_too else ""), file=sys.stderr)
        return False

    def run(self, parts: dict, chosen: list[str]):
        """Each chosen part in turn (a function of this report), the files rewritten after each; a failing part
        is reported and the others still run."""
        for name in chosen:
            try:
                parts[name](self)
            except Exception as err:    # noqa: BLE001
                self.say(f"  {name}: failed: {type(err).__name__}: {str(err)[:400]}")
                traceback.print_exc()
            self.dump()
        self.say(f"written: {self.path('.json')}")
        self.dump()

