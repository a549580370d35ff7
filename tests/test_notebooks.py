"""The notebooks as papermill reads them: every name the parameters cell sets is a parameter papermill knows,
so `-p name value` and `--help-notebook` work for each (a comment like "(= epochs)" once hid n_steps)."""
import ast
import json
from pathlib import Path

import papermill
import pytest

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
