"""Compiling the next batch in a helper process while the current one trains (grok_core.precompile, runner.precompiled)."""
import pytest

from grok_core import precompile
from grok_core.config import RunConfig
from grok_core.runner import precompiled


def test_helper_process_compiles_into_the_cache_and_exits(tmp_path, monkeypatch):
    cache = tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))
    log = tmp_path / "helper.log"
    helper = precompile.start([RunConfig(p=7, d_model=8, n_heads=2, n_steps=4)], "cpu", log=log)
    assert helper.wait(timeout=600) == 0, log.read_text()[-2000:]
    assert any(cache.rglob("*.py"))                                 # inductor wrote generated code there
    assert not any(tmp_path.glob("*.json")) and not (tmp_path / helper.args[3]).exists()   # configs file removed


class FakeHelper:
    def __init__(self, events, batch):
        self.events, self.batch = events, batch
        events.append(("start", batch))

    def wait(self):
        self.events.append(("wait", self.batch))

    def kill(self):
        self.events.append(("kill", self.batch))


def test_next_batch_compiles_while_the_current_one_trains(monkeypatch):
    events = []
    monkeypatch.setattr(precompile, "start", lambda configs, device: FakeHelper(events, configs))
    for b in precompiled(iter(["A", "B", "C"]), "cuda", compile=True):
        events.append(("train", b))
    assert events == [("start", "B"), ("train", "A"), ("wait", "B"), ("start", "C"), ("train", "B"), ("wait", "C"),
                      ("train", "C")]
    events.clear()
    with pytest.raises(RuntimeError):
        for b in precompiled(["A", "B"], "cuda", compile=True):
            raise RuntimeError("training failed")
    assert events == [("start", "B"), ("kill", "B")]
    events.clear()
    assert list(precompiled(["A", "B"], "cuda", compile=False)) == ["A", "B"]
    assert list(precompiled(["A", "B"], "cpu", compile=True)) == ["A", "B"] and events == []
    pulled = []                                                     # without a helper, nothing is taken early
    lazy = precompiled((pulled.append(b) or b for b in "AB"), "cpu", compile=True)
    assert next(lazy) == "A" and pulled == ["A"]
