"""Scaling of the programme over the GPUs of one host under torchrun: the same chapters trained from an empty run
store on 1 and on N GPUs; efficiency = time on 1 / (N x time on N) (the goal: 90 % or more).

Usage (from the repository root, on a host with N GPUs):
    python bench/scaling.py --procs 1,4 --compile                        # every chapter's paper runs
    python bench/scaling.py --procs 1,2 --compile --chapters fig2_layers  # a fixed part of the programme
    python bench/scaling.py --procs 1,4 --dry-run                        # the commands and the plan's bound (any host)

Each launch is `torchrun --standalone --nproc-per-node=n -m grok_core.programme run` into a fresh temporary run
store and a fresh torch.compile cache (nothing trains into results/, no launch compiles from another's cache),
timed from outside: start-up, planning and compilation included. The plan's bound is the efficiency the batches'
estimated costs (grok_core.runner.batch_cost) allow when handed out largest first, as the programme does: the
last batch to finish leaves the other processes idle. Written to bench/results/scaling_<device>_x<N>.json, .txt.
"""
from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import device_label, file_tag                                     # noqa: E402
from grok_core.programme import paper_configs                                       # noqa: E402
from grok_core.runner import batch_cost, plan                                       # noqa: E402

DONE = re.compile(r"^(?:rank (\d+): )?done .* in ([0-9.]+) s$")


def list_schedule_efficiency(costs: list[float], n: int) -> float:
    """sum(costs) / (n x makespan) when each cost, in the order given, goes to the process that is free first."""
    free = [0.0] * n
    for c in costs:
        heapq.heappush(free, heapq.heappop(free) + c)
    return sum(costs) / (n * max(free)) if costs else 1.0


def command(n: int, chapters: str | None, max_batch: int, compile: bool) -> list[str]:
    """The launch on n processes (torchrun is `python -m torch.distributed.run`); chapters None: all of them."""
    return ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
             "-m", "grok_core.programme", "run", "--max-batch", str(max_batch)]
            + (["--chapters", chapters] if chapters else []) + (["--compile"] if compile else []))


def timed_launch(cmd: list[str], log: Path) -> dict:
    """Wall seconds of one launch into a fresh run store and compile cache, and each rank's seconds in batches."""
    with tempfile.TemporaryDirectory(prefix="grokbook-scaling-") as tmp:
        env = {**os.environ, "GROKBOOK_RESULTS": str(Path(tmp) / "results"), "PYTHONPATH": str(ROOT),
               "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor")}
        t0 = time.perf_counter()
        with open(log, "w") as fh:
            subprocess.run(cmd, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=True)
        wall = time.perf_counter() - t0
    busy: dict[int, float] = {}
    for line in log.read_text().splitlines():
        if m := DONE.match(line.strip()):
            rank = int(m.group(1) or 0)
            busy[rank] = busy.get(rank, 0.0) + float(m.group(2))
    return {"wall_s": round(wall, 1), "batch_s_per_rank": {r: round(s, 1) for r, s in sorted(busy.items())}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", default="1,2", help="comma list of process (GPU) counts; the first is the baseline")
    ap.add_argument("--chapters", default=None, help="comma list of chapters (default: all)")
    ap.add_argument("--max-batch", type=int, default=128, help="most runs trained together")
    ap.add_argument("--compile", action="store_true", help="torch.compile the step, as the book's runs were trained")
    ap.add_argument("--dry-run", action="store_true", help="print the commands and the plan's bound; train nothing")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for the result files")
    args = ap.parse_args(argv)
    try:
        procs = [int(x) for x in args.procs.split(",")]
    except ValueError:
        ap.error(f"--procs {args.procs!r}: give whole numbers, e.g. 1,4")
    if not procs or min(procs) < 1:
        ap.error(f"--procs {args.procs!r}: every count must be 1 or more")
    gpus = torch.cuda.device_count()
    if not args.dry_run and max(procs) > gpus:
        ap.error(f"--procs {args.procs}: needs {max(procs)} CUDA device(s), {gpus} visible (--dry-run plans anyway)")
    dev = torch.device("cuda" if gpus else "cpu")
    name = device_label(dev)
    configs = [c for cs in paper_configs(args.chapters and args.chapters.split(",")).values() for c in cs]
    batches = plan(configs, args.max_batch, dev)
    costs = [batch_cost(b) for b in batches]
    lines = [f"device: {name} ({gpus} visible)   torch {torch.__version__}   chapters: {args.chapters or 'all'}",
             f"plan: {sum(map(len, batches))} runs in {len(batches)} batches (max batch {args.max_batch}, "
             f"planned on {dev.type}){', compiled' if args.compile else ''}"]
    res = {"device": name, "gpus_visible": gpus, "torch": torch.__version__, "chapters": args.chapters or "all",
           "max_batch": args.max_batch, "compiled": args.compile, "n_batches": len(batches), "launches": {}}
    for n in procs:
        bound = list_schedule_efficiency(costs, n)
        shown = " ".join(["torchrun"] + command(n, args.chapters, args.max_batch, args.compile)[3:])
        res["launches"][n] = {"plan_bound_efficiency": round(bound, 4), "command": shown}
        lines.append(f"  {n} process(es): plan's bound on efficiency {bound:.1%}; {shown}")
    print("\n".join(lines), flush=True)
    if args.dry_run:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"scaling_{file_tag(name)}_x{max(procs)}"
    for n in procs:
        got = timed_launch(command(n, args.chapters, args.max_batch, args.compile), Path(f"{stem}_log_{n}.txt"))
        res["launches"][n].update(got)
        first = res["launches"][procs[0]]["wall_s"]
        got["speedup"] = round(first / got["wall_s"], 3)
        got["efficiency"] = round(procs[0] * first / (n * got["wall_s"]), 4)
        lines.append(f"  {n} process(es): {got['wall_s'] / 60:.2f} min wall, speedup {got['speedup']:.2f}x over "
                     f"{procs[0]}, efficiency {got['efficiency']:.1%}; seconds in batches per rank "
                     f"{got['batch_s_per_rank']}")
        print(lines[-1], flush=True)
        Path(f"{stem}.json").write_text(json.dumps(res, indent=1))
        Path(f"{stem}.txt").write_text("\n".join(lines) + "\n")
    print(f"written: {stem}.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
