"""The chapters' provenance table: one row per training batch, also when its runs stop at different times."""
from types import SimpleNamespace

from grok_core.chapters.runs import provenance_rows


def run(key, wall, started=None, size=3):
    meta = {"device": "NVIDIA H200", "torch": "2.11", "code_commit": "abc", "wall_time_s": wall, "batch_size": size}
    if started is not None:
        meta["batch_started"] = started
    return SimpleNamespace(key=key, meta=meta)


def test_a_stopping_batch_is_one_row_with_its_last_end():
    rows = provenance_rows([run("a", 2.0, 1.0), run("b", 5.0, 1.0), run("c", 11.0, 1.0), run("d", 4.0, 9.0, size=1)])
    assert [(r[0], r[-1]) for r in rows] == [("3", "11 s (batch of 3)"), ("1", "4 s (batch of 1)")]


def test_runs_without_a_recorded_start_group_by_their_wall_time():
    rows = provenance_rows([run("a", 7.0), run("b", 7.0), run("c", 8.0)])
    assert [r[0] for r in rows] == ["2", "1"]
