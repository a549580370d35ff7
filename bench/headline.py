"""Training speed in the headline setting: the released code's step beside ours, alone and batched, eager and
compiled, against the fp32 arithmetic bound; with the checks that our numbers are the released model's.

Usage (from the repository root):
    python bench/headline.py --ref .ref/Grokking-Insight      # on a CUDA machine: every part but cpu
    python bench/headline.py --device cpu --threads 2 --only cpu  # the CPU figure

--ref is a checkout of the released code (github.com/Qihuai27/Grokking-Insight); it is imported
and driven through its own Trainer.do_a_training_step, unmodified; only its Config is built with
the device and the setting below. It is never part of this repository.

Setting (the issue's): 1-layer transformer, d_model 128, 4 heads, d_mlp 512, x+y mod 97,
random split, frac 0.3, full batch, every metric every step, float32 with TF32 off.

Parts (--only): ref (the released code), ours (one run), batched, variants (2 layers, the MLP), ideas (kept
and dropped designs), check (faithfulness: alone vs batched vs CPU over the first 100 steps), tf32 (the
grokking curve with TF32 matmuls), profile (torch.profiler tables), compile (torch.compile), cpu (one run on
the CPU). Printed and written under --out as speed_<device>.txt / .json (profile_*_<device>.txt beside):
ms per run-step, run-steps/s, ratio to the released code, achieved FLOP/s, fraction of the fp32 bound,
memory per run.

--quick is a smoke test on a CPU (p=23, d_model 32); its numbers are not comparable.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.arithmetic import step_flops                                                # noqa: E402
from bench.common import (arguments, chosen_parts, configs_for, memory_baseline, Report, sync, test95,  # noqa: E402
                          time_steps)
from grok_core.budget import bytes_per_run                                             # noqa: E402
from grok_core.config import RunConfig                                                 # noqa: E402
from grok_core.devices import set_strict_fp32                                          # noqa: E402
from grok_core.train import Trainer                                                    # noqa: E402

FAITH_TOL = {"rel": 1e-2, "acc": 0.02}     # losses, MED, weight norm: relative; accuracies: absolute


# -- timing a Trainer and the released code ------------------------------------------------------------
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


def load_reference(ref: Path, rel: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ref / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def released_step_seconds(ref: Path, rel: str, dev, p: int, frac_train: float, layers: int, n_steps: int = 20) -> float:
    """Seconds per step of one run of the released code (`rel` under ref): its Trainer and do_a_training_step, as
    written, with Config set to p, frac_train and layers; three warm-up steps first."""
    mod = load_reference(ref, rel, f"released_{rel.split('/')[0]}_p{p}_{layers}")
    config = mod.Config(p=p, d_vocab=p + 1, frac_train=frac_train, num_layers=layers, seed=0, device=torch.device(dev))
    mod.config = config          # its forward and its step read a module-level `config`, as its __main__ sets
    world = mod.Trainer(config=config)
    epoch = [0]

    def step():
        with contextlib.redirect_stdout(io.StringIO()):
            world.do_a_training_step(epoch[0])
        epoch[0] += 1

    for _ in range(3):
        step()
    return time_steps(step, dev, n_steps)


def time_reference(ref: Path, which: str, dev, n_steps: int = 20) -> dict:
    """One run of the released code at our headline setting (p = 97, 30 % train)."""
    rel = "MLP/base.py" if which == "mlp" else "transformer/base.py"
    s = released_step_seconds(ref, rel, dev, 97, 0.3, {"1layer": 1, "2layer": 2, "mlp": 2}[which], n_steps)
    return {"runs": 1, "ms_per_step": s * 1e3, "ms_per_run_step": s * 1e3, "run_steps_per_s": 1 / s}


def add_row(report: Report, label: str, cfg: RunConfig, r: dict, ref_ms: float | None = None) -> dict:
    """One row of the table: r with its label, achieved FLOP/s, fraction of the bound and ratio to the released code."""
    res = report.res
    ach = step_flops(cfg) / (r["ms_per_run_step"] / 1e3)
    r = dict(r, label=label, achieved_flop_per_s=ach)
    if "fp32_matmul_flop_per_s" in res:
        r["fraction_of_bound"] = ach / res["fp32_matmul_flop_per_s"]
    if ref_ms:
        r["speedup_vs_reference"] = ref_ms / r["ms_per_run_step"]
    report.table.append(r)
    report.say(f"  {label:<44} {r['ms_per_run_step']:9.4f} ms/run-step {r['run_steps_per_s']:10,.1f} run-steps/s"
               + (f"  x{r['speedup_vs_reference']:,.0f} vs released" if ref_ms else "")
               + f"  {ach / 1e12:6.2f} TFLOP/s"
               + (f" ({r['fraction_of_bound']:.0%} of bound)" if "fraction_of_bound" in r else "")
               + (f"  {r['mem_per_run_MB']:.0f} MB/run (est. {r['mem_estimate_per_run_MB']:.0f})"
                  if "mem_per_run_MB" in r else ""))
    return r


def reference_ms(report: Report, which: str) -> float | None:
    """The released code's ms per step of this model, if the ref part measured it in this run."""
    return report.res.get("reference", {}).get(which)


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
def faithfulness(base: RunConfig, dev, steps: int = 100) -> dict:
    """The same config alone and inside a batch, on the GPU (graph) and on the CPU (eager), over `steps` steps."""
    cfg = base.replace(n_steps=steps, init_seed=3, split_seed=3)
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
        out[prec] = {"test95_step": [test95(h) for h in hs],
                     "final_test_acc": [round(float(h["test_acc"][-1]), 4) for h in hs],
                     "wall_s": round(time.perf_counter() - t0, 2)}
    set_strict_fp32()
    return out


# -- the parts ------------------------------------------------------------------------------------------
def part_ref(report: Report):
    report.say("(a) released code, one run per process, its own training step:")
    base, ref = report.base, {}
    for which, cfg in [("1layer", base), ("2layer", base.replace(n_layers=2)), ("mlp", base.replace(model="mlp"))]:
        try:
            r = time_reference(report.args.ref, which, report.dev)
            ref[which] = r["ms_per_step"]
            add_row(report, f"released {which}", cfg, r)
        except Exception as err:    # noqa: BLE001 - report and go on
            report.say(f"  released {which}: failed: {type(err).__name__}: {err}")
    report.res["reference_ms_per_step"] = ref.get("1layer")
    report.res["reference"] = ref


def part_ours(report: Report):
    report.say("(b) ours, one run:")
    base = report.base
    r = add_row(report, "ours 1-layer, R=1", base, time_ours(base, 1, report.dev, n_steps=50 if report.cuda else 5),
                reference_ms(report, "1layer"))
    report.res["single_ms_per_step"] = r["ms_per_step"]
    report.res["single_30000_steps_s"] = r["ms_per_step"] * 30


def part_batched(report: Report):
    report.say("(c) ours, batched:")
    base = report.base
    report.res["batched"] = {}
    for R in [int(x) for x in report.args.runs.split(",")]:
        r = add_row(report, f"ours 1-layer, R={R}", base, time_ours(base, R, report.dev, n_steps=max(5, 200 // R)),
                    reference_ms(report, "1layer"))
        report.res["batched"][str(R)] = r["run_steps_per_s"]


def part_variants(report: Report):
    report.say("(d) 2-layer and MLP:")
    base = report.base
    report.res["variants"] = {}
    for which, cfg in [("2layer", base.replace(n_layers=2)), ("mlp", base.replace(model="mlp"))]:
        for R in (1, 64):
            r = add_row(report, f"ours {which}, R={R}", cfg, time_ours(cfg, R, report.dev, n_steps=max(5, 100 // R)),
                        reference_ms(report, which))
            report.res["variants"][f"{which} R={R}"] = r


def part_ideas(report: Report):
    if not report.runs_here("ideas"):
        return
    report.say("ideas (kept ones are in grok_core; see the notes below the table):")
    base, dev, ideas = report.base, report.dev, {}
    for R in (1, 64):
        n = max(5, 100 // R)
        ideas[f"graph R={R}"] = add_row(report, f"  CUDA graph (kept), R={R}", base, time_ours(base, R, dev, n))
        ideas[f"eager R={R}"] = add_row(report, f"  eager, no graph, R={R}", base,
                                        time_ours(base, R, dev, n, cuda_graph=False))
        ideas[f"eager+sync R={R}"] = add_row(report, f"  eager + one host read per step, R={R}", base,
                                             time_ours(base, R, dev, n, trainer_cls=SyncEveryStepTrainer,
                                                       cuda_graph=False))
        ideas[f"tf32 R={R}"] = add_row(report, f"  TF32 matmuls (option, off), R={R}", base,
                                       time_ours(base.replace(precision="tf32"), R, dev, n))
        set_strict_fp32()
    ideas["tf32 R=256"] = add_row(report, "  TF32 matmuls (option, off), R=256", base,
                                  time_ours(base.replace(precision="tf32"), 256, dev, 5))
    set_strict_fp32()
    ad = time_adamw_variants(base, 64, dev)
    ideas["adamw R=64"] = ad
    report.say(f"  AdamW alone, R=64: ours {ad['ours_ms']:.3f} ms, torch fused {ad['torch_fused_ms']:.3f} ms, "
               f"torch foreach {ad['torch_foreach_ms']:.3f} ms per step")
    report.res["ideas"] = ideas
    g1, g64 = ideas["graph R=1"]["ms_per_run_step"], ideas["graph R=64"]["ms_per_run_step"]

    def x(k, g):
        return ideas[k]["ms_per_run_step"] / g

    step64 = g64 * 64
    notes = [
        f"kept: CUDA graph of the whole step: eager is x{x('eager R=1', g1):.1f} slower at R=1, "
        f"x{x('eager R=64', g64):.2f} at R=64",
        f"kept: no host syncs in the loop: one host read per step costs "
        f"x{x('eager+sync R=64', g64) / x('eager R=64', g64):.2f} (eager, R=64)",
        "kept: cls-only last layer, positions 0/1 as per-token tables until attention mixes them; trunk and head on "
        "the train rows with grad, the test rows without grad and only on recorded steps",
        f"not used: torch's fused AdamW: {ad['torch_fused_ms']:.2f} vs {ad['ours_ms']:.2f} ms per step at R=64, i.e. "
        f"{(ad['ours_ms'] - ad['torch_fused_ms']) / step64:.1%} of the step; it takes one lr and wd per call, "
        "and ours has per-run lr and wd",
        f"option, off: TF32 matmuls: x{g64 / ideas['tf32 R=64']['ms_per_run_step']:.2f} faster at R=64; "
        "changes the numbers (see the grokking-curve check)",
    ]
    report.res["idea_notes"] = notes
    for line in notes:
        report.say("  " + line)


def part_check(report: Report):
    if not report.runs_here("check", quick_too=True):
        return
    report.say("faithfulness over the first 100 steps (max |a-b| / max |b| per metric):")
    found = report.res["faithfulness"] = faithfulness(report.base, report.dev)
    for k, d in found.items():
        if " vs " in k:
            report.say(f"  {k}: " + ", ".join(f"{m} {v:.1e}" for m, v in d.items()))
    report.say(f"  tolerance {FAITH_TOL} (relative for losses, MED, weight norm; absolute for accuracies): "
               + ("pass" if found["pass"] else "FAIL"))


def part_tf32(report: Report):
    if not report.runs_here("tf32"):                     # TF32 is a CUDA mode
        return
    report.say("TF32 grokking-curve check (p=47, frac 0.6, lr 1e-3, 8 seeds): first step with test acc >= 0.95; "
               "'fp32, each run alone' is the control: the same fp32 runs with other kernels (batch of 1)")
    report.res["tf32_check"] = tf32_curve_check(report.dev, steps=30 if report.quick else 2500)
    for k, d in report.res["tf32_check"].items():
        report.say(f"  {k}: {d['test95_step']}  final test acc {d['final_test_acc']}")


def part_profile(report: Report):
    from torch.profiler import ProfilerActivity, profile
    activity, sort = ((ProfilerActivity.CUDA, "self_cuda_time_total") if report.cuda
                      else (ProfilerActivity.CPU, "self_cpu_time_total"))
    base, dev = report.base, report.dev
    train_only = base.replace(record_dense=0, record_every=base.n_steps)   # step 0 recorded, then none
    for R in ((1, 128) if report.cuda else (1,)):
        for kind, cfg in (("recorded", base), ("train-only", train_only)):
            tr = Trainer(configs_for(cfg, R), dev, cuda_graph=False)
            for _ in range(3):
                tr.train_step()
            sync(dev)
            with profile(activities=[activity]) as prof:
                for _ in range(5):
                    tr.train_step()
                sync(dev)
            tab = prof.key_averages().table(sort_by=sort, row_limit=25)
            (report.out / f"profile_{kind}_R{R}_{report.tag}.txt").write_text(tab)
            report.say(f"profile, eager, {kind} steps, R={R}, 5 steps:")
            for line in tab.splitlines()[:20]:
                report.say("   " + line[:160])
            del tr


def part_compile(report: Report):
    if not report.runs_here("compile"):
        return
    report.say("torch.compile (option, off by default):")
    base, comp = report.base, {}
    for R in (1, 64, 256):
        try:
            comp[f"compile R={R}"] = add_row(report, f"  torch.compile + CUDA graph, R={R}", base,
                                             time_ours(base, R, report.dev, max(5, 100 // R), compile=True))
        except Exception as err:    # noqa: BLE001
            report.say(f"  torch.compile R={R}: failed: {type(err).__name__}: {str(err)[:300]}")
    report.res.setdefault("ideas", {}).update(comp)


def part_cpu(report: Report):
    report.say(f"CPU, one run ({torch.get_num_threads()} threads):")
    r = add_row(report, "ours 1-layer, R=1, CPU", report.base, time_ours(report.base, 1, "cpu", n_steps=10))
    report.res["cpu_ms_per_step"] = r["ms_per_step"]
    report.res["cpu_threads"] = torch.get_num_threads()


PARTS = {"ref": part_ref, "ours": part_ours, "batched": part_batched, "variants": part_variants, "ideas": part_ideas,
         "check": part_check, "tf32": part_tf32, "profile": part_profile, "compile": part_compile, "cpu": part_cpu}
DEFAULT_PARTS = [p for p in PARTS if p != "cpu"]


def main():
    ap = arguments(__doc__, "smoke test on a CPU: p=23, d_model 32 (numbers not comparable)", list(PARTS),
                   DEFAULT_PARTS)
    ap.add_argument("--ref", type=Path, default=ROOT / ".ref" / "Grokking-Insight",
                    help="checkout of the released code (not part of this repository)")
    ap.add_argument("--runs", default="1,8,64,256", help="batch sizes of the batched part")
    args = ap.parse_args()
    Report(args, "speed").run(PARTS, chosen_parts(ap, args, list(PARTS), DEFAULT_PARTS))


if __name__ == "__main__":
    main()
