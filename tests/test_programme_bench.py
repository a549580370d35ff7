"""bench/programme.py keeps every finished batch in its result file and --resume goes on from there: an estimate
longer than one call is taken in several, nothing timed twice and nothing stored lost (CPU smoke profile)."""
import json
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def programme(load_bench):
    return load_bench("programme")


def _run(programme, monkeypatch, out: Path, *extra: str) -> dict:
    monkeypatch.setattr(sys, "argv", ["programme.py", "--device", "cpu", "--quick", "--out", str(out), *extra])
    programme.main()
    (path,) = out.glob("programme_*.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def first(programme, tmp_path_factory):
    """One whole smoke estimate, then its file cut back to its first batch, as if interrupted there."""
    out = tmp_path_factory.mktemp("programme")
    with pytest.MonkeyPatch.context() as mp:
        whole = _run(programme, mp, out)
    (path,) = out.glob("programme_*.json")
    cut = dict(whole, programme=dict(whole["programme"], rows=whole["programme"]["rows"][:1], complete=False))
    path.write_text(json.dumps(cut))
    return out, path, whole["programme"]


def test_a_whole_estimate_is_marked_complete(first):
    _, _, whole = first
    assert whole["complete"] is True and len(whole["rows"]) == 3 and whole["resumed_at"] == []
    assert whole["total_minutes"] == pytest.approx(sum(r["minutes"] for r in whole["rows"]))


def test_resume_keeps_the_stored_batches_and_times_only_the_rest(programme, monkeypatch, tmp_path, first):
    out, path, whole = first
    (tmp_path / path.name).write_text(path.read_text())
    est = _run(programme, monkeypatch, tmp_path, "--resume")["programme"]
    assert est["complete"] is True and est["resumed_at"] == [1]
    assert [(r["batch"], r["runs"]) for r in est["rows"]] == [(r["batch"], r["runs"]) for r in whole["rows"]]
    assert est["rows"][0] == whole["rows"][0]                     # kept as stored, not timed again
    assert est["rows"][1]["ms_per_run_step_mixed"] != whole["rows"][1]["ms_per_run_step_mixed"]   # timed anew
    assert est["total_minutes"] == pytest.approx(sum(r["minutes"] for r in est["rows"]))
    assert "resume: 1 batch(es) from" in (tmp_path / path.name).with_suffix(".txt").read_text()


def test_resume_with_other_options_stops_before_timing_and_keeps_the_file(programme, monkeypatch, tmp_path, first):
    _, path, _ = first
    kept = tmp_path / path.name
    kept.write_text(path.read_text())
    with pytest.raises(SystemExit, match="max_batch"):
        _run(programme, monkeypatch, tmp_path, "--resume", "--max-batch", "64")
    assert kept.read_text() == path.read_text()


def test_resume_from_rows_of_another_plan_fails_and_loses_nothing(programme, monkeypatch, tmp_path, first):
    _, path, _ = first
    stored = json.loads(path.read_text())
    stored["programme"]["rows"][0]["batch"] = "transformer p=101 L=9"
    (tmp_path / path.name).write_text(json.dumps(stored))
    est = _run(programme, monkeypatch, tmp_path, "--resume")["programme"]
    assert est["complete"] is False and est["rows"] == stored["programme"]["rows"]
    assert "not the first batches of this programme" in (tmp_path / path.name).with_suffix(".txt").read_text()
