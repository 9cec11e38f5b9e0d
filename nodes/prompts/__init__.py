"""Versioned prompt files (`name@version.md`) and the small registry that loads them.

A prompt change is a new file with a higher version, so runs and benchmarks can say which
prompt they used. The first line of every prompt names its role (`# role: name@version`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROMPT_DIR = Path(__file__).parent
_NAME = re.compile(r"^(?P<name>[a-z_]+)@(?P<version>\d+)\.md$")


class PromptNotFoundError(LookupError):
    """No prompt file with that name (and version)."""


@dataclass(frozen=True)
class Prompt:
    """A loaded prompt; `id` is `name@version`."""

    name: str
    version: int
    text: str

    @property
    def id(self) -> str:
        """Stable identifier recorded with every call."""
        return f"{self.name}@{self.version}"


def available(directory: Path | None = None) -> dict[str, list[int]]:
    """Every prompt name in `directory` (the nodes' own by default) with its versions."""
    found: dict[str, list[int]] = {}
    for path in (directory or PROMPT_DIR).glob("*@*.md"):
        if match := _NAME.match(path.name):
            found.setdefault(match["name"], []).append(int(match["version"]))
    return {name: sorted(versions) for name, versions in sorted(found.items())}


@cache
def load_prompt(name: str, version: int | None = None, directory: Path | None = None) -> Prompt:
    """Load `name@version`, or the newest version of `name` when none is given.

    `directory` lets another package keep its versioned prompts (e.g. `eval/prompts/`) under
    the same naming and role-line rules.
    """
    directory = directory or PROMPT_DIR
    versions = available(directory).get(name)
    if not versions:
        raise PromptNotFoundError(f"no prompt named {name!r} in {directory.name}/")
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        raise PromptNotFoundError(f"prompt {name!r} has versions {versions}, not {chosen}")
    text = (directory / f"{name}@{chosen}.md").read_text(encoding="utf-8").strip()
    header = f"# role: {name}@{chosen}"
    if text.splitlines()[0].strip() != header:
        raise PromptNotFoundError(f"{name}@{chosen}.md must start with {header!r}")
    return Prompt(name=name, version=chosen, text=text)


# Every version is read at import, under both the keys callers use (newest: no version; a
# pinned one: its number), so building a prompt never touches the disk on the event loop.
for _name, _versions in available().items():
    load_prompt(_name)
    for _version in _versions:
        load_prompt(_name, _version)
