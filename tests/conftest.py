"""Shared fixtures and session set-up. Run the suite with: pytest --nbval (see tests/README.md).

Every test session gets its own run store and claims folder (GROKBOOK_RESULTS, GROKBOOK_EXPORTS), so no
test trains into the repository's store; the kernels nbval starts inherit both.
"""
import importlib.util
import os
import signal
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

# A suite started in the background of a non-interactive shell (`cmd &`, nohup) inherits SIGINT ignored, and the
# trainer rightly leaves an ignored signal alone; the interruption tests need it delivered, here and in the
# processes they start (which exec with the default action once a handler is set).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


@pytest.fixture(scope="session")
def load_bench():
    """Loads a script of bench/ as a module, by name (bench/ is not a package the tests import)."""
    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load
