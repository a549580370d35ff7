"""The notebooks as papermill reads them: every name the parameters cell sets is a parameter papermill knows,
so `-p name value` and `--help-notebook` work for each (a comment like "(= epochs)" once hid n_steps); and every
parameter is a setting of the notebook's chapter module, which gives its value."""
import ast
import json
from pathlib import Path

import papermill
import pytest

from grok_core.chapters import find, notebook_parameters

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def parameter_names(path: Path) -> list[str]:
    cells = [c for c in json.loads(path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged parameters"
    tree = ast.parse("".join(cells[0]["source"]))
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_knows_every_parameter(path):
    names = parameter_names(path)
    assert "profile" in names
    assert sorted(papermill.inspect_notebook(str(path))) == sorted(names)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_a_setting_of_the_chapter(path):
    """setup reads a notebook's parameters by the names of its chapter's settings (notebook_parameters), so a
    parameter missing from PROFILES, or a setting missing from the parameters cell, would go unseen."""
    profiles = find(path.stem).PROFILES
    settings = set(profiles["paper"])
    assert all(set(p) == settings for p in profiles.values())
    assert set(parameter_names(path)) - {"profile", "train"} == settings - {"train"}


def test_notebook_parameters_are_the_chapter_settings_among_its_names():
    namespace = {"profile": "quick", "p": 31, "depths": None, "S": {}, "np": object()}
    assert notebook_parameters("fig2_layers", namespace) == {"p": 31, "depths": None}
