"""What re-running a chapter takes: CPU minutes on the quick profile (as measured by the book build) and GPU
minutes on the paper profile (as its stored runs took), for the line under each chapter's result.

The quick-profile times are the papermill executions that `scripts/build_book.py --refs` makes in a fresh run
store, recorded in bench/results/chapter_cost.json with the CPU they ran on. The paper-profile times come from
the run store: every run's meta holds the wall time of the batch it was trained in, the batch size and the
device; runs trained together share those, so a chapter's GPU time is the sum over the batches holding any of
its runs, each batch counted once (whole, also when it trained other chapters' runs as well).
"""
from __future__ import annotations

import csv
import json
import platform
from dataclasses import dataclass
from pathlib import Path

from ..store import REPO_ROOT

RECORD = REPO_ROOT / "bench" / "results" / "chapter_cost.json"


@dataclass(frozen=True)
class Batch:
    device: str
    seconds: float     # the batch's wall time; for a batch resumed from a checkpoint, extrapolated to all its steps
    runs: int          # runs of the chapter in it
    resumed: bool = False


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record_quick_times(times: dict[str, float], path: Path = RECORD, **about) -> dict:
    """Merge measured quick-profile execution times {chapter: seconds} into the record at `path` (other
    chapters' entries are kept); `about` (cpu, cores, commit, date) describes the machine and is stored per
    chapter, since a partial re-measurement may run elsewhere. Returns the record written."""
    record = json.loads(path.read_text()) if path.exists() else {}
    record.setdefault("what", "seconds of one papermill execution of each chapter notebook, quick profile, "
                              "training every run afresh (scripts/build_book.py --refs)")
    chapters = record.setdefault("chapters", {})
    for name, seconds in times.items():
        if not seconds >= 0:
            raise ValueError(f"{name}: a time of {seconds!r} s is not allowed")
        chapters[name] = {"seconds": round(float(seconds), 1), **about}
    record["chapters"] = dict(sorted(chapters.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return record


def quick_time(chapter: str, path: Path = RECORD) -> dict | None:
    """The record's entry of the chapter ({seconds, cpu, ...}), None if not measured."""
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("chapters", {}).get(chapter)


def chapter_keys(rows: list[dict], chapter: str) -> list[str]:
    """Keys of the manifest rows (results/manifest.csv) whose chapters include `chapter`."""
    return [r["key"] for r in rows if chapter in str(r.get("chapters") or "").split()]


def batches_of(metas: list[dict]) -> list[Batch]:
    """The training batches of stored runs, from their metas: runs of one batch share device, code commit,
    batch size and the batch's start time (batch_started; in older metas, which lack it, the creation time and
    wall time). A run that stopped early ends its wall time at its stop, so a batch lasts as long as its longest
    run. A batch resumed from a checkpoint at step s recorded only the time of its last n_steps - s steps; its
    time is extrapolated to all n_steps at that rate."""
    batches: dict[tuple, list] = {}
    for m in metas:
        if m.get("wall_time_s") is None:
            raise ValueError(f"run {m.get('key')}: its meta has no batch wall time")
        start, n = int(m.get("resumed_at_step") or 0), int(m["config"]["n_steps"])
        when = m["batch_started"] if m.get("batch_started") is not None else (m.get("created"), float(m["wall_time_s"]))
        ident = (m["device"], m.get("code_commit"), when, int(m["batch_size"]), start, n)
        batches.setdefault(ident, []).append(m)
    out = []
    for (device, _, _, _, start, n), ms in batches.items():
        wall = max(float(m["wall_time_s"]) for m in ms)
        seconds = wall * n / (n - start) if 0 < start < n else wall
        out.append(Batch(device=device, seconds=seconds, runs=len(ms), resumed=start > 0))
    return out


def read_manifest(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def resnet_batches(store_root: Path) -> list[Batch]:
    """The ResNet chapter's stored paper-profile runs (the released settings and its knobs), one batch each."""
    from ..resnet.train import ResNetStore
    from . import setup
    from .resnet import resnet_configs

    cfg, variants = resnet_configs(setup("resnet", "paper", {})[0])
    store = ResNetStore(store_root)
    runs = [store.get(c) for c in [cfg, *variants]]
    return [Batch(device=r.meta["device"], seconds=float(r.meta["train_s"]), runs=1) for r in runs if r is not None]


def gpu_batches(chapter: str, store_root: Path | None = None) -> list[Batch]:
    """The batches the chapter's stored paper-profile runs were trained in (empty if it trains none). The store is
    the repository's results/ (not $GROKBOOK_RESULTS): it holds the record of how the book's runs were trained."""
    root = Path(store_root) if store_root else REPO_ROOT / "results"
    if chapter == "resnet":
        return resnet_batches(root)
    manifest = root / "manifest.csv"
    if not manifest.exists():
        return []
    metas = [root / "runs" / k / "meta.json" for k in chapter_keys(read_manifest(manifest), chapter)]
    return batches_of([json.loads(m.read_text()) for m in metas if m.exists()])


def minutes(seconds: float) -> str:
    m = seconds / 60
    return "under a minute" if m < 1 else f"about {m:.0f} minute{'s' * (round(m) != 1)}"


def rerun_text(quick: dict | None, batches: list[Batch]) -> str:
    """The chapter's 'what you need to re-run this' line (MyST), from its quick-profile record and GPU batches."""
    if quick:
        cores = f", {quick['cores']} cores" if quick.get("cores") else ""
        cpu = f"the quick profile, {minutes(quick['seconds'])} on a CPU ({quick['cpu']}{cores})"
    else:
        cpu = "the quick profile, a CPU (its time is not measured yet)"
    on_gpu = [b for b in batches if not b.device.lower().startswith("cpu")]
    on_cpu = [b for b in batches if b.device.lower().startswith("cpu")]
    if on_gpu:
        devices = ", ".join(sorted({b.device for b in on_gpu}))
        resumed = sum(b.resumed for b in on_gpu)
        n = len(on_gpu)
        gpu = (f"the paper profile, {minutes(sum(b.seconds for b in on_gpu))} of GPU time as its runs were trained "
               f"({n} batch{'es' * (n != 1)} on {devices}"
               + (f"; {resumed} resumed from a checkpoint, extrapolated" if resumed else "") + ")")
    else:
        gpu = "the paper profile, no GPU" + ("" if on_cpu else " (it trains no runs of its own)")
    if on_cpu:
        gpu += (f", and {minutes(sum(b.seconds for b in on_cpu))} of CPU time for the {len(on_cpu)} batch"
                f"{'es' * (len(on_cpu) != 1)} trained on a CPU")
    return (f"**What you need to re-run this:** {cpu}; {gpu}. Stored runs are read, not trained again: see "
            "{doc}`/book/setup`.")


def rerun_line(chapter: str, record: Path = RECORD, store_root: Path | None = None) -> str:
    return rerun_text(quick_time(chapter, record), gpu_batches(chapter, store_root))
