"""The map stays true: `docs/architecture.md` names every module of the packages, and no other.

A map that lists modules that do not exist and misses ones that do misleads the next engineer
more than no map; this test makes adding, moving or deleting a module update the map too.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("tools", "memory", "graphs", "nodes", "eval", "service")
# The repository tasks' small repositories are data handed to agents, not modules.
DATA_REPOS = REPO / "eval" / "datasets" / "repo_tasks"
INDEX = re.compile(r"^- `((?:" + "|".join(PACKAGES) + r")/[\w/]+\.py)` — \S", re.MULTILINE)


def _indexed() -> set[str]:
    text = (REPO / "docs" / "architecture.md").read_text()
    return set(INDEX.findall(text.split("## Module index", 1)[1]))


def _modules() -> set[str]:
    return {
        str(path.relative_to(REPO))
        for package in PACKAGES
        for path in (REPO / package).rglob("*.py")
        if "__pycache__" not in path.parts and not path.is_relative_to(DATA_REPOS)
    }


def test_every_module_is_on_the_map() -> None:
    missing = sorted(_modules() - _indexed())
    assert not missing, f"add these to the module index of docs/architecture.md: {missing}"


def test_the_map_names_no_module_that_does_not_exist() -> None:
    gone = sorted(_indexed() - _modules())
    assert not gone, f"these are on the map but not in the tree: {gone}"
