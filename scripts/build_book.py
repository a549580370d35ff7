"""Execute the book's notebooks with papermill, then build the HTML book with warnings as errors.

    .venv/bin/python scripts/build_book.py [--profile auto|paper|quick] [--only NAME ...] [--no-build] [--refs]

Which notebooks: every `book/generated/<name>` chapter in _toc.yml, executed from `notebooks/<name>.ipynb`
into `book/generated/<name>.ipynb`.
Which profile (--profile auto, the default): a notebook is first executed with the paper profile and
`train=False`; if the run store holds all of its runs that is the chapter. Otherwise it is executed with
the paper profile when a GPU is present (training what is missing), else with the quick profile.
--refs writes quick-profile executions to tests/nb_refs/ instead (the nbval references) and builds nothing;
it trains every run afresh in a temporary run store, so the references match what a clean checkout computes,
and records each execution's time, with the CPU, in bench/results/chapter_cost.json (the chapters' "what you
need to re-run this" line reads it).
Before the HTML build, the executed notebooks are zipped into book/generated/grokbook-notebooks.zip, which the
setup page offers as the whole book's download.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
GEN_DIR = ROOT / "book" / "generated"
REF_DIR = ROOT / "tests" / "nb_refs"
# where a build's quick-profile runs go (ignored, kept between builds), so that the committed store holds only paper runs
QUICK_STORE = ROOT / "results" / "scratch" / "quick"
NOTEBOOKS_ZIP = GEN_DIR / "grokbook-notebooks.zip"
BIN = Path(sys.executable).parent


def chapters() -> list[str]:
    """Notebook names of the generated chapters, in the order of _toc.yml."""
    toc = (ROOT / "_toc.yml").read_text()
    names = re.findall(r"file:\s*book/generated/([A-Za-z0-9_]+)", toc)
    return [n for n in names if (NB_DIR / f"{n}.ipynb").exists()]


def has_gpu() -> bool:
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError:
        return False


def env() -> dict:
    """The kernel must import this checkout's grok_core even without an editable install."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in e.get("PYTHONPATH", "").split(os.pathsep) if p])
    return e


def rel(path: Path) -> str:
    """Paths relative to the repository, so executed notebooks record no machine-specific folders."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def papermill(src: Path, dst: Path, params: dict) -> tuple[int, str]:
    cmd = [str(BIN / "papermill"), "-k", "python3", "--cwd", rel(NB_DIR), rel(src), rel(dst), "--no-progress-bar"]
    for k, v in params.items():
        cmd += ["-p", k, str(v)]
    e = env()
    if params["profile"] == "quick" and "GROKBOOK_RESULTS" not in os.environ:     # (--refs sets its own)
        e["GROKBOOK_RESULTS"] = str(QUICK_STORE)
    proc = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True)
    return proc.returncode, proc.stderr + proc.stdout


def missing_runs(log: str) -> bool:
    """True when a papermill failure was load_or_train(train=False) finding a run missing."""
    return "LookupError" in log and "not in the store" in log


def error_summary(log: str) -> str:
    lines = [l for l in log.splitlines() if re.match(r"^\w*(Error|Exception)\b", l.strip())]
    return lines[-1].strip() if lines else log.strip().splitlines()[-1] if log.strip() else "unknown error"


def execute(name: str, profile: str, out_dir: Path, gpu: bool) -> dict:
    src, dst = NB_DIR / f"{name}.ipynb", out_dir / f"{name}.ipynb"
    t0 = time.time()
    used, note = profile, ""
    if profile == "auto":
        rc, log = papermill(src, dst, {"profile": "paper", "train": False})
        if rc == 0:
            return {"name": name, "profile": "paper", "seconds": time.time() - t0,
                    "note": "nothing it needs is missing from the run store"}
        if not missing_runs(log):
            print(log[-3000:], file=sys.stderr)
            raise SystemExit(f"{name}: failed while loading stored runs: {error_summary(log)}")
        used = "paper" if gpu else "quick"
        note = "paper runs missing from the store; " + ("training them on the GPU" if gpu else "no GPU: quick profile")
    rc, log = papermill(src, dst, {"profile": used})
    if rc != 0:
        print(log[-3000:], file=sys.stderr)
        raise SystemExit(f"{name}: papermill failed with the {used} profile: {error_summary(log)}")
    return {"name": name, "profile": used, "seconds": time.time() - t0, "note": note}


def fold_injected(path: Path):
    """Tag papermill's injected-parameters cell `fold`, like the set-up cells after the parameters cell: the book
    shows them all inside the parameters cell's fold (book/_vendor/grokbook.css), closed on the first screen."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "fold" not in tags:
            cell.metadata["tags"] = tags + ["fold"]
    nbformat.write(nb, path)


def strip_images(path: Path):
    """Drop PNG data from a reference notebook: nbval does not compare images, and they are most of its size."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                del data["image/png"]
    nbformat.write(nb, path)


def zip_notebooks(names: list[str], path: Path = NOTEBOOKS_ZIP):
    """The executed chapter notebooks in one zip (fixed timestamps, so unchanged notebooks give the same bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in names:
            info = zipfile.ZipInfo(f"grokbook-notebooks/{name}.ipynb", date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, (GEN_DIR / f"{name}.ipynb").read_bytes())


def record_times(results: list[dict]):
    """Keep the quick-profile execution times of a --refs run (fresh store: everything trained) with the CPU."""
    from grok_core.chapters.cost import cpu_name, record_quick_times

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    threads = {"omp_num_threads": os.environ["OMP_NUM_THREADS"]} if os.environ.get("OMP_NUM_THREADS") else {}
    record_quick_times({r["name"]: r["seconds"] for r in results}, cpu=cpu_name(), cores=os.cpu_count(),
                       commit=commit, date=datetime.date.today().isoformat(), **threads)


def write_build_info(results: list[dict]):
    import torch

    rows = "\n".join(f"| {{doc}}`{r['name']}` | {r['profile']} | {r['seconds']:.0f} s | {r['note'] or '–'} |"
                     for r in results)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.machine()})"
    text = f"""# About this build

Built {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} from commit `{commit}` on {device}, torch {torch.__version__}.
Each chapter was executed with papermill with the profile below ("paper": the paper's settings; "quick": a small
version for a CPU, whose numbers are not the paper's; see [Re-running the book](../rerun)).

| chapter | profile | time | note |
| :-- | :-- | --: | :-- |
{rows}
"""
    (GEN_DIR / "build_info.md").write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=["auto", "paper", "quick"], default="auto",
                    help="auto: paper where the run store has the runs (or a GPU is present), else quick")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="execute only these notebooks (names without .ipynb)")
    ap.add_argument("--no-build", action="store_true", help="execute the notebooks but do not build the HTML")
    ap.add_argument("--refs", action="store_true", help="write quick-profile references to tests/nb_refs/ and stop")
    args = ap.parse_args(argv)

    names = chapters()
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            raise SystemExit(f"--only: unknown notebook(s) {unknown}; known: {', '.join(names)}")
        names = [n for n in names if n in args.only]
    out_dir = REF_DIR if args.refs else GEN_DIR
    profile = "quick" if args.refs else args.profile
    out_dir.mkdir(parents=True, exist_ok=True)
    gpu = has_gpu()
    tmp_store = None
    if args.refs:
        import tempfile
        tmp_store = tempfile.TemporaryDirectory(prefix="grokbook-refs-")
        os.environ["GROKBOOK_RESULTS"] = tmp_store.name
    print(f"Executing {len(names)} notebook(s) into {out_dir.relative_to(ROOT)}/ (profile {profile}; "
          f"{'GPU' if gpu else 'no GPU'})", flush=True)
    results = []
    t_all = time.time()
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", end=" ", flush=True)
        r = execute(name, profile, out_dir, gpu)
        if args.refs:
            strip_images(out_dir / f"{name}.ipynb")
        else:
            fold_injected(out_dir / f"{name}.ipynb")
        results.append(r)
        print(f"{r['profile']} profile, {r['seconds']:.1f} s" + (f" ({r['note']})" if r["note"] else ""), flush=True)
    print(f"Executed {len(names)} notebook(s) in {time.time() - t_all:.0f} s")
    if args.refs:
        tmp_store.cleanup()
        record_times(results)
        return
    if args.only and (GEN_DIR / "build_info.md").exists():
        # keep the other chapters' lines of an earlier full build
        text = (GEN_DIR / "build_info.md").read_text()
        old = {m.group(1): m.group(0) for m in re.finditer(r"^\| {doc}`(\w+)`.*$", text, re.M)}
        done = {r["name"] for r in results}
        for name in chapters():
            if name not in done and name in old:
                cells = [c.strip() for c in old[name].strip("|").split("|")]
                results.append({"name": name, "profile": cells[1], "seconds": float(cells[2].split()[0]),
                                "note": "" if cells[3] == "–" else cells[3]})
        order = {n: i for i, n in enumerate(chapters())}
        results.sort(key=lambda r: order[r["name"]])
    write_build_info(results)
    if args.no_build:
        return
    missing = [n for n in chapters() if not (GEN_DIR / f"{n}.ipynb").exists()]
    if missing:
        raise SystemExit(f"book/generated/ lacks the executed notebooks of {', '.join(missing)}: run without --only")
    zip_notebooks(chapters())
    print("Building the book: jupyter-book build --all -W --keep-going .", flush=True)
    t0 = time.time()
    proc = subprocess.run([str(BIN / "jupyter-book"), "build", "--all", "-W", "--keep-going", "."], cwd=ROOT, env=env())
    if proc.returncode != 0:
        raise SystemExit(f"jupyter-book build failed (exit {proc.returncode}); see the warnings above")
    print(f"Book built in {time.time() - t0:.0f} s: {ROOT / '_build' / 'html' / 'index.html'}")


if __name__ == "__main__":
    main()
