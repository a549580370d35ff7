"""The notebooks as papermill reads them: every name the parameters cell sets is a parameter papermill knows,
so `-p name value` and `--help-notebook` work for each (a comment like "(= epochs)" once hid n_steps); and every
parameter is a setting of the notebook's chapter module, which gives its value."""
import ast
import json
import re
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


def figure_places(cells: list[dict]) -> dict[str, int]:
    """{figure name: index of the Markdown cell that places it ({glue:md} <name>-figure)}."""
    return {m: i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
            for m in re.findall(r"\{glue:md\} ([a-z0-9_-]+)-figure\b", "".join(c["source"]))}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_is_placed_once_and_the_first_under_the_result_box(path):
    """A figure cell glues its figure and is tagged remove-output (else the book shows it twice); a Markdown cell
    places each figure by name, the first one in the top cell, right under the result box."""
    cells = json.loads(path.read_text())["cells"]
    made = []
    for c in cells:
        src = "".join(c["source"])
        if c["cell_type"] == "code" and ("show_figure(" in src or "show_html_figure(" in src):
            assert "remove-output" in c["metadata"].get("tags", []), f"{path.stem}: a figure cell lacks remove-output"
            names = list(dict.fromkeys(re.findall(rf'"({path.stem}-[a-z0-9_]+)"', src)))
            assert names, f"{path.stem}: a figure cell names no figure {path.stem}-..."
            made += names
    places = figure_places(cells)
    assert made and sorted(places) == sorted(made), (made, places)
    top = "".join(cells[1]["source"])
    assert top.index("{glue:md} result") < top.index(f"{{glue:md}} {made[0]}-figure")


def test_the_figure_check_sees_a_missing_remove_output_tag(tmp_path):
    src = json.loads(NOTEBOOKS[0].read_text())
    for c in src["cells"]:
        if "show_figure(" in "".join(c["source"]):
            c["metadata"]["tags"].remove("remove-output")
    bad = tmp_path / NOTEBOOKS[0].name
    bad.write_text(json.dumps(src))
    with pytest.raises(AssertionError, match="lacks remove-output"):
        test_every_figure_is_placed_once_and_the_first_under_the_result_box(bad)
