"""What re-running a chapter takes (grok_core.chapters.cost): a training batch is counted once however many of
the chapter's runs it holds, a resumed batch's time is extrapolated, and the quick-profile record merges."""
import csv
import json

import pytest

from grok_core.chapters import cost


def meta(key, wall, created="2026-01-01T00:00:00", batch_size=3, device="NVIDIA H200", n_steps=1000, resumed=None):
    m = {"key": key, "wall_time_s": wall, "created": created, "batch_size": batch_size, "device": device,
         "code_commit": "abc", "config": {"n_steps": n_steps}}
    if resumed is not None:
        m["resumed_at_step"] = resumed
    return m


def test_runs_of_one_batch_count_once_and_a_resumed_batch_is_extrapolated():
    metas = [meta("a", 600.0), meta("b", 600.0), meta("c", 60.0, created="2026-01-02T00:00:00", resumed=900)]
    batches = sorted(cost.batches_of(metas), key=lambda b: b.seconds)
    assert [(b.seconds, b.runs, b.resumed) for b in batches] == [(600.0, 2, False), (600.0, 1, True)]
    # same wall time, another batch (created apart): two batches, not one
    assert len(cost.batches_of([meta("a", 600.0), meta("b", 600.0, created="2026-01-03T00:00:00")])) == 2
    with pytest.raises(ValueError, match="run x: its meta has no batch wall time"):
        cost.batches_of([meta("x", None)])


def test_runs_that_stopped_early_count_in_their_batch_which_lasts_as_long_as_its_longest():
    stopped = [meta(k, w) | {"batch_started": 1700000000.0, "created": c} for k, w, c in
               (("a", 120.0, "2026-01-01T00:02:00"), ("b", 300.0, "2026-01-01T00:05:00"), ("c", 600.0, "2026-01-01T00:10:00"))]
    [batch] = cost.batches_of(stopped)
    assert (batch.seconds, batch.runs) == (600.0, 3)
    other = stopped[0] | {"key": "d", "batch_started": 1700000900.0}
    assert len(cost.batches_of(stopped + [other])) == 2


def test_chapter_keys_match_whole_chapter_names():
    rows = [{"key": "k1", "chapters": "fig2_layers"}, {"key": "k2", "chapters": "fig20_toeplitz fig5_med_primes"}]
    assert cost.chapter_keys(rows, "fig2_layers") == ["k1"]
    assert cost.chapter_keys(rows, "fig5_med_primes") == ["k2"]


def test_gpu_batches_read_the_manifest_and_the_metas(tmp_path):
    rows = [{"key": "k1", "chapters": "fig2_layers"}, {"key": "k2", "chapters": "fig2_layers fig5_med_primes"},
            {"key": "k3", "chapters": "fig5_med_primes"}]
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["key", "chapters"])
        w.writeheader()
        w.writerows(rows)
    for m in (meta("k1", 120.0), meta("k2", 120.0), meta("k3", 30.0, created="x")):
        (tmp_path / "runs" / m["key"]).mkdir(parents=True)
        (tmp_path / "runs" / m["key"] / "meta.json").write_text(json.dumps(m))
    assert [(b.seconds, b.runs) for b in cost.gpu_batches("fig2_layers", tmp_path)] == [(120.0, 2)]
    assert sorted(b.seconds for b in cost.gpu_batches("fig5_med_primes", tmp_path)) == [30.0, 120.0]
    assert cost.gpu_batches("fig3_splits", tmp_path) == []


def test_the_rerun_line_names_cpu_minutes_gpu_minutes_and_devices():
    quick = {"seconds": 150.0, "cpu": "Some CPU", "cores": 2}
    gpu = [cost.Batch("NVIDIA H200", 1500.0, 8), cost.Batch("NVIDIA H200", 300.0, 8, resumed=True)]
    text = cost.rerun_text(quick, gpu)
    assert text.startswith("**What you need to re-run this:** the quick profile, about 2 minutes on a CPU "
                           "(Some CPU, 2 cores); the paper profile, about 30 minutes of GPU time")
    assert "(2 batches on NVIDIA H200; 1 resumed from a checkpoint, extrapolated)" in text
    assert "no GPU (it trains no runs of its own)" in cost.rerun_text(None, [])
    assert "not measured yet" in cost.rerun_text(None, [])
    mixed = cost.rerun_text(quick, [cost.Batch("cpu (x86_64, 1 threads)", 30.0, 4)])
    assert "no GPU, and under a minute of CPU time for the 1 batch trained on a CPU" in mixed


def test_the_quick_record_merges_and_refuses_a_negative_time(tmp_path):
    path = tmp_path / "chapter_cost.json"
    cost.record_quick_times({"a": 10.04, "b": 20.0}, path, cpu="X")
    record = cost.record_quick_times({"a": 12.0}, path, cpu="Y")
    assert record["chapters"] == {"a": {"seconds": 12.0, "cpu": "Y"}, "b": {"seconds": 20.0, "cpu": "X"}}
    assert cost.quick_time("b", path) == {"seconds": 20.0, "cpu": "X"} and cost.quick_time("c", path) is None
    with pytest.raises(ValueError, match="a: a time of -1.0 s is not allowed"):
        cost.record_quick_times({"a": -1.0}, path)
