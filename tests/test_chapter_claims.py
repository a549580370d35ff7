"""The numbers that carry each chapter's claims, as the notebooks export them (grok_core.claims).

Paper profile: the stored runs are fixed data, so the exported numbers are asserted exactly: they equal
what grok_core.claims computes from the store in this process, and the record in tests/paper_claims.json
(integers and None exactly; floats to 1e-9 relative: float64 reductions over the same float32 histories
differ between machines only in summation order, ~1e-16). Rewrite the record after a deliberate change
with GROKBOOK_RECORD_CLAIMS=1.

Quick profile: the runs are trained anew on whatever machine runs the tests, and training is chaotic, so
a run lands anywhere in the spread over seeds (scripts/quick_spread.py, recorded in results/quick_spread.json).
Each band below holds for every seed pair measured there, with the margin given beside it.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grok_core.claims import CHAPTERS, chapter_claims, exports_dir, json_safe
from grok_core.programme import setup
from grok_core.runner import load_or_train
from grok_core.store import REPO_ROOT, RunStore

RECORD = Path(__file__).with_name("paper_claims.json")
PAPERMILL = Path(sys.executable).with_name("papermill")


def papermill(chapter: str, out_dir: Path, profile: str, env: dict):
    """Execute a chapter notebook as the book build does, exporting its claims into env's folder."""
    cmd = [str(PAPERMILL), "-k", "python3", "--cwd", str(REPO_ROOT / "notebooks"), "--no-progress-bar",
           str(REPO_ROOT / "notebooks" / f"{chapter}.ipynb"), str(out_dir / f"{chapter}.ipynb"), "-p", "profile", profile]
    if profile == "paper":
        cmd += ["-p", "train", "False"]
    env = os.environ | {"PYTHONPATH": str(REPO_ROOT)} | env
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def paper_exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    env = {"GROKBOOK_RESULTS": str(REPO_ROOT / "results"), "GROKBOOK_EXPORTS": str(out)}
    for chapter in CHAPTERS:
        papermill(chapter, out, "paper", env)
    return {c: json.loads((out / f"{c}.paper.json").read_text()) for c in CHAPTERS}


def _close(a, b, path="") -> list[str]:
    """Where a and b differ: ints, strings and None exactly, floats to 1e-9 relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.slow
def test_paper_claims_are_computed_from_the_stored_runs(paper_exports):
    store = RunStore(REPO_ROOT / "results")
    for chapter, exported in paper_exports.items():
        S, configs = setup(chapter, "paper", {})
        runs = load_or_train(configs, store=store, train=False)
        here = json_safe({"chapter": chapter, "profile": "paper", **chapter_claims(chapter, S, runs)})
        assert not _close(exported, here), (chapter, _close(exported, here)[:5])


@pytest.mark.slow
def test_paper_claims_match_the_record(paper_exports):
    if os.environ.get("GROKBOOK_RECORD_CLAIMS"):
        RECORD.write_text(json.dumps(paper_exports, indent=1) + "\n")
    record = json.loads(RECORD.read_text())
    diffs = _close(paper_exports, record)
    assert not diffs, f"{len(diffs)} exported numbers differ from {RECORD.name}, e.g. {diffs[:5]}"


def test_the_record_comparison_tells_a_changed_number_apart():
    record = json.loads(RECORD.read_text())
    changed = json.loads(RECORD.read_text())
    changed["table1_square_strip"]["settings"][0]["u_acc"][0] += 1e-6
    changed["fig20_toeplitz"]["settings"][0]["steps_to_95"][0] += 1
    assert len(_close(changed, record)) == 2 and not _close(record, record)
