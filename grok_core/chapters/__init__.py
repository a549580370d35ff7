"""The book's chapters, one module each in this package, found by looking: a module with PROFILES is a chapter.

A chapter module declares what it has, by name:
  PROFILES        {"paper": {...}, "quick": {...}}: every setting of the chapter, each written once;
  check(S)        validates and normalises the resolved settings S in place (optional);
  run_configs(S)  the RunConfigs its notebook reads, which the programme trains (optional);
  claims(S, runs) its numbers per setting, which its notebook exports (optional);
  extra_training(S, train)  trains (when train) the runs of another kind it reads, for the programme (optional).
  extra_configs(S) RunConfigs of the run store that extra_training trains besides run_configs, for the manifest (optional).
Chapters come in the order _toc.yml gives the book; one that is not in it comes after, by name.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from types import ModuleType

from ..store import REPO_ROOT
from .settings import resolve


def _book_order() -> list[str]:
    toc = REPO_ROOT / "_toc.yml"
    return re.findall(r"file:\s*book/generated/(\w+)", toc.read_text()) if toc.exists() else []


def registry() -> dict[str, ModuleType]:
    """Every chapter module of the package, by name, in book order (looked up anew on each call)."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "PROFILES"):
            found[info.name] = module
    order = _book_order()
    return {n: found[n] for n in sorted(found, key=lambda n: (order.index(n) if n in order else len(order), n))}


def names(having: str | None = None) -> list[str]:
    """The chapters' names in book order; with `having`, only those whose module defines it (e.g. "run_configs")."""
    return [n for n, m in registry().items() if having is None or hasattr(m, having)]


def find(chapter: str) -> ModuleType:
    """The chapter's module; ValueError naming the chapters there are."""
    chapters = registry()
    if chapter not in chapters:
        raise ValueError(f"chapter={chapter!r} is not allowed; choose one of {', '.join(chapters)}")
    return chapters[chapter]


def setup(chapter: str, profile: str, given: dict) -> tuple[dict, list]:
    """The chapter's resolved settings (profile values with `given` non-None values over them, checked and
    normalised) and its run configs (none for a chapter that trains nothing). Bad values raise ValueError."""
    module = find(chapter)
    S = resolve(module.PROFILES, profile, given)
    if hasattr(module, "check"):
        module.check(S)
    return S, module.run_configs(S) if hasattr(module, "run_configs") else []


def notebook_parameters(chapter: str, namespace: dict) -> dict:
    """The chapter's settings among a notebook's names (its parameters cell), for setup: each parameter is
    named once in the notebook and valued once in PROFILES."""
    return {k: namespace[k] for k in find(chapter).PROFILES["paper"] if k in namespace}
