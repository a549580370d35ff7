"""The numbers that carry each chapter's claims, as the notebooks export them (grok_core.chapters.claims).

Paper profile: the stored runs are fixed data, so the exported numbers are asserted exactly: they equal
what grok_core.chapters.claims computes from the store in this process, and the record in tests/paper_claims.json
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

from grok_core.chapters import names, setup
from grok_core.chapters.claims import chapter_claims, exports_dir, json_safe
from grok_core.runner import load_or_train
from grok_core.store import REPO_ROOT, RunStore

RECORD = Path(__file__).with_name("paper_claims.json")


def papermill(chapter: str, out_dir: Path, profile: str, env: dict):
    """Execute a chapter notebook as the book build does, exporting its claims into env's folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "papermill", "-k", "python3", "--cwd", str(REPO_ROOT / "notebooks"), "--no-progress-bar",
           str(REPO_ROOT / "notebooks" / f"{chapter}.ipynb"), str(out_dir / f"{chapter}.ipynb"), "-p", "profile", profile]
    if profile == "paper":
        cmd += ["-p", "train", "False"]
    path = os.pathsep.join([str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    env = os.environ | {"PYTHONPATH": path} | env
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def paper_exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    env = {"GROKBOOK_RESULTS": str(REPO_ROOT / "results"), "GROKBOOK_EXPORTS": str(out)}
    for chapter in names("claims"):
        papermill(chapter, out, "paper", env)
    return {c: json.loads((out / f"{c}.paper.json").read_text()) for c in names("claims")}


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


def names_with_runs(chapter: str) -> bool:
    return chapter in names("run_configs")


@pytest.mark.slow
def test_paper_claims_are_computed_from_the_stored_runs(paper_exports, monkeypatch):
    # the committed store, also for what chapters read by themselves (Setting A's regression runs, snapshots)
    monkeypatch.setenv("GROKBOOK_RESULTS", str(REPO_ROOT / "results"))
    store = RunStore()
    for chapter, exported in paper_exports.items():
        if not names_with_runs(chapter):
            continue         # the ResNet runs: checked from their own store in test_results_measures.py
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


def setting(claims: dict, **match) -> dict:
    [s] = [s for s in claims["settings"] if all(s[k] == v for k, v in match.items())]
    return s


def memorised_by(step: int):
    return lambda c: all(r["train_acc_1_at"] is not None and r["train_acc_1_at"] <= step for r in c["runs"])


def below_all(values_low, values_high) -> bool:
    return max(values_low) < min(values_high)


# chapter -> [(claim, with the spread measured over 32 seed pairs on an H200; check)]
QUICK_BANDS = {
    "table1_square_strip": [
        ("every run memorises by step 100 of 500 (measured: steps 21-46)", memorised_by(100)),
        ("the ceiling falls as the square grows: every U-Acc at k=13 lies below every U-Acc at k=6 "
         "(measured: at most 0.343 against at least 0.430)",
         lambda c: below_all(setting(c, split="square", param=13)["u_acc"], setting(c, split="square", param=6)["u_acc"])),
        ("and as the strip grows: every U-Acc at t=15 below every U-Acc at t=9 (at most 0.423 against at least 0.583)",
         lambda c: below_all(setting(c, split="strip", param=15)["u_acc"], setting(c, split="strip", param=9)["u_acc"])),
        ("the dug-out strip t=9 is partly learned: block accuracy at the end >= 0.4 (measured 0.548-0.717)",
         lambda c: min(setting(c, split="strip", param=9)["block_acc_end"]) >= 0.4),
    ],
    "fig2_layers": [
        ("every run memorises by step 200 of 400 (measured: steps 22-94)", memorised_by(200)),
        ("test accuracy fluctuates more with 3 layers than with 1: every 3-layer run above every 1-layer run "
         "(measured: at least 0.631 against at most 0.264 points per step)",
         lambda c: below_all(setting(c, layers=1)["fluctuation"], setting(c, layers=3)["fluctuation"])),
    ],
    "fig4_x2xyy2_frac": [
        ("every run memorises by step 100 of 300 (measured: steps 29-47)", memorised_by(100)),
        ("the correct test pairs lie in 70-160 in every run at every train share (measured 83-140)",
         lambda c: all(70 <= x <= 160 for s in c["settings"] for x in s["correct_test_pairs"])),
        ("generalisation is partial: late test accuracy 0.25-0.85 in every run (measured 0.34-0.75)",
         lambda c: all(0.25 <= r["late_test_acc"] <= 0.85 for r in c["runs"])),
    ],
    "fig5_med_primes": [
        ("every run memorises by step 60 of 300 (measured: steps 19-30)", memorised_by(60)),
        ("MED follows the test loss: Pearson correlation >= 0.6 in every run (measured at least 0.711)",
         lambda c: all(x >= 0.6 for s in c["settings"] for x in s["pearson_test_loss"])),
    ],
    "figs12_19_functions": [
        ("every run fits its train set: late train accuracy >= 0.99 (measured 1.0 in all)",
         lambda c: all(r["late_train_acc"] >= 0.99 for r in c["runs"])),
        ("x²+y² (Fig. 14) generalises: late test accuracy >= 0.85 (measured 0.932-0.981)",
         lambda c: min(setting(c, figure=14)["late_test_acc"]) >= 0.85),
        ("x−y (Fig. 12) does not, within 400 steps: late test accuracy <= 0.1 (measured 0-0.030)",
         lambda c: max(setting(c, figure=12)["late_test_acc"]) <= 0.1),
    ],
    "fig20_toeplitz": [
        ("every run memorises by step 100 of 400 (measured: steps 21-48)", memorised_by(100)),
        ("every initialisation generalises in part: late test accuracy >= 0.45 (measured at least 0.557)",
         lambda c: all(r["late_test_acc"] >= 0.45 for r in c["runs"])),
    ],
}
SPREAD = REPO_ROOT / "results" / "quick_spread.json"


def quick_export(chapter: str) -> dict:
    """The quick claims the nbval kernels exported this session; without --nbval, the notebook is run here."""
    path = exports_dir() / f"{chapter}.quick.json"
    if not path.exists():
        papermill(chapter, path.parent / "executed", "quick", {})
    return json.loads(path.read_text())


def failed_bands(chapter: str, claims: dict) -> list[str]:
    return [text for text, holds in QUICK_BANDS[chapter] if not holds(claims)]


@pytest.mark.slow
@pytest.mark.parametrize("chapter", list(QUICK_BANDS))
def test_quick_claims_hold_within_their_bands(chapter):
    assert not failed_bands(chapter, quick_export(chapter))


@pytest.mark.parametrize("chapter", list(QUICK_BANDS))
def test_every_band_holds_for_every_measured_seed_pair(chapter):
    spread = json.loads(SPREAD.read_text())["chapters"][chapter]
    assert len(spread["runs"]) >= 32 * len(spread["settings"]) and not failed_bands(chapter, spread)


def test_a_band_fails_when_its_claim_does_not_hold():
    spread = json.loads(SPREAD.read_text())["chapters"]
    t1 = spread["table1_square_strip"]
    small, large = setting(t1, split="square", param=6), setting(t1, split="square", param=13)
    small["u_acc"], large["u_acc"] = large["u_acc"], small["u_acc"]
    spread["fig5_med_primes"]["settings"][0]["pearson_test_loss"][3] = 0.2
    spread["fig20_toeplitz"]["runs"][5]["train_acc_1_at"] = None
    assert [len(failed_bands(c, spread[c])) for c in ("table1_square_strip", "fig5_med_primes", "fig20_toeplitz")] == [1, 1, 1]
