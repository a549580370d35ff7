"""Shared fixtures. Run the suite with: pytest --nbval (see README)."""
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def store(tmp_path, monkeypatch):
    from grok_core.store import RunStore
    monkeypatch.setenv("GROKBOOK_RESULTS", str(tmp_path / "results"))
    return RunStore()
