"""The book's programme as it was trained: wall time per training batch, from the stored runs' metadata.

    python bench/programme_as_trained.py [--out bench/results]

Every stored paper-profile run (results/manifest.csv) records the wall time and size of the batch it was
trained in; runs that share device, code commit, batch size and wall time are one batch. Printed and
written under --out (programme_as_trained.txt / .json): one row per batch with its shape, the ms per
run-step it achieved, and the GPU-minutes in all. These are measured rates, not an estimate; the bench's
estimate for the current planner is bench/programme.py.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def batches(rows: list[dict]) -> list[dict]:
    groups: OrderedDict[tuple, list[dict]] = OrderedDict()
    for r in rows:
        groups.setdefault((r["device"], r["code_commit"], r["batch_size"], r["batch_wall_time_s"]), []).append(r)
    out = []
    for (device, commit, size, wall), rs in groups.items():
        if len(rs) != int(size):
            raise ValueError(f"batch of {size} at {commit} ({wall} s) has {len(rs)} stored runs; the manifest is "
                             "incomplete or two batches share a wall time")
        first = rs[0]
        fracs = sorted({float(r["frac_train"]) for r in rs})
        steps = int(first["n_steps"])
        out.append({"device": device, "code_commit": commit, "runs": len(rs), "wall_s": float(wall),
                    "p": int(first["p"]), "n_layers": int(first["n_layers"]), "d_model": int(first["d_model"]),
                    "operand_offset": sorted({int(r["operand_offset"]) for r in rs}),
                    "frac_train": [fracs[0], fracs[-1]], "n_steps": steps,
                    "ms_per_run_step": float(wall) * 1e3 / (steps * len(rs)),
                    "chapters": sorted({c for r in rs for c in r["chapters"].split()})})
    return sorted(out, key=lambda b: -b["wall_s"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=ROOT / "results" / "manifest.csv")
    ap.add_argument("--out", type=Path, default=None, help="write programme_as_trained.txt/.json here")
    args = ap.parse_args(argv)
    with open(args.manifest, newline="") as fh:
        found = batches(list(csv.DictReader(fh)))
    lines = [f"{'batch':<44} {'runs':>5} {'wall s':>8} {'ms/run-step':>12}  device, commit, chapters"]
    for b in found:
        shape = (f"p={b['p']} L={b['n_layers']} D={b['d_model']} frac {b['frac_train'][0]}"
                 + (f"-{b['frac_train'][1]}" if b["frac_train"][1] != b["frac_train"][0] else "")
                 + (f" offset {b['operand_offset'][-1]}" if b["operand_offset"][-1] else ""))
        lines.append(f"{shape:<44} {b['runs']:>5} {b['wall_s']:>8.0f} {b['ms_per_run_step']:>12.3f}  "
                     f"{b['device']}, {b['code_commit']}, {' '.join(b['chapters'])}")
    total = sum(b["wall_s"] for b in found)
    lines.append(f"total: {sum(b['runs'] for b in found)} runs in {len(found)} batches, {total / 60:.1f} GPU-minutes")
    print("\n".join(lines))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "programme_as_trained.txt").write_text("\n".join(lines) + "\n")
        (args.out / "programme_as_trained.json").write_text(json.dumps(
            {"batches": found, "total_gpu_minutes": total / 60}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
