"""The versioned prompt registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import SystemMessage

import nodes.prompts as prompts
from nodes.prompts import PromptNotFoundError, available, load_prompt
from service.llm.scripted import role_of

ROLES = {"coder", "tester", "reviewer", "supervisor"}


@pytest.fixture
def prompt_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private prompt folder; the load cache is cleared so nothing leaks between tests."""
    monkeypatch.setattr(prompts, "PROMPT_DIR", tmp_path)
    load_prompt.cache_clear()
    yield tmp_path
    load_prompt.cache_clear()


def write(folder: Path, name: str, version: int, body: str = "Do the job.") -> None:
    (folder / f"{name}@{version}.md").write_text(f"# role: {name}@{version}\n{body}\n")


def test_every_agent_role_has_a_prompt() -> None:
    assert ROLES <= set(available())


def test_every_available_prompt_loads_with_its_role_header() -> None:
    found = available()
    assert found
    for name, versions in found.items():
        assert versions == sorted(versions)
        for version in versions:
            prompt = load_prompt(name, version)
            assert prompt.name == name and prompt.version == version
            assert prompt.id == f"{name}@{version}"
            first_line = prompt.text.splitlines()[0]
            assert first_line == f"# role: {name}@{version}"
            assert len(prompt.text.splitlines()) > 1, f"{prompt.id} has no instructions"


def test_prompt_header_names_the_role_the_scripted_model_matches_on() -> None:
    for name in available():
        assert role_of([SystemMessage(load_prompt(name).text)]) == name


def test_load_prompt_without_version_picks_the_newest(prompt_dir: Path) -> None:
    write(prompt_dir, "coder", 1, "old")
    write(prompt_dir, "coder", 2, "new")
    prompt = load_prompt("coder")
    assert prompt.version == 2
    assert prompt.text.endswith("new")
    assert load_prompt("coder", 1).text.endswith("old")


def test_versions_are_ordered_numerically_not_alphabetically(prompt_dir: Path) -> None:
    for version in (2, 9, 10):
        write(prompt_dir, "coder", version)
    assert available() == {"coder": [2, 9, 10]}
    assert load_prompt("coder").id == "coder@10"


def test_files_not_named_like_prompts_are_ignored(prompt_dir: Path) -> None:
    write(prompt_dir, "coder", 1)
    (prompt_dir / "Coder@3.md").write_text("# role: Coder@3\n")
    (prompt_dir / "coder@x.md").write_text("# role: coder@x\n")
    (prompt_dir / "notes.md").write_text("scratch\n")
    assert available() == {"coder": [1]}


def test_unknown_name_raises(prompt_dir: Path) -> None:
    write(prompt_dir, "coder", 1)
    with pytest.raises(PromptNotFoundError, match="no prompt named 'planner'"):
        load_prompt("planner")


def test_unknown_version_raises_listing_the_known_ones(prompt_dir: Path) -> None:
    write(prompt_dir, "coder", 1)
    write(prompt_dir, "coder", 2)
    with pytest.raises(PromptNotFoundError, match=r"versions \[1, 2\], not 7"):
        load_prompt("coder", 7)


def test_prompt_without_its_role_header_is_refused(prompt_dir: Path) -> None:
    (prompt_dir / "coder@1.md").write_text("# role: reviewer@1\nwrong header\n")
    with pytest.raises(PromptNotFoundError, match="must start with"):
        load_prompt("coder")


def test_real_registry_raises_for_unknown_names_and_versions() -> None:
    with pytest.raises(PromptNotFoundError):
        load_prompt("no_such_agent")
    with pytest.raises(PromptNotFoundError):
        load_prompt("coder", 999)
    assert issubclass(PromptNotFoundError, LookupError)
