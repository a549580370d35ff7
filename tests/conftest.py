"""Shared fixtures and session set-up. Run the suite with: pytest --nbval (see tests/README.md).

Every test session gets its own run store and claims folder (GROKBOOK_RESULTS, GROKBOOK_EXPORTS), so no
test trains into the repository's store; the kernels nbval starts inherit both.
"""
import os
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

SESSION_DIR = Path(tempfile.mkdtemp(prefix="grokbook-tests-"))
os.environ["GROKBOOK_RESULTS"] = str(SESSION_DIR / "results")
os.environ["GROKBOOK_EXPORTS"] = str(SESSION_DIR / "exports")


def pytest_collection_modifyitems(items):
    """The notebook cells run first: their kernels export the quick-profile claims test_chapter_claims reads."""
    items.sort(key=lambda item: "nb_refs" not in item.path.parts)


@pytest.fixture
def store(tmp_path, monkeypatch):
    from grok_core.store import RunStore
    monkeypatch.setenv("GROKBOOK_RESULTS", str(tmp_path / "results"))
    return RunStore()
