"""The baseline for repository tasks: one plain request to the model, no tools, no loop.

It is what anyone can do without an agent: paste the whole repository and the goal into one
prompt, take the files the answer shows (fenced blocks, each named by its path), and lay them
over the repository. An architecture that calls tools has to beat this, on the same model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from eval.repo_bench import AgentResult, RepoAgent
from graphs.deps import text_of
from service.llm.models import usage_of
from tools.sandbox.base import InvalidWorkspacePath, validate_workspace_path

__all__ = ["SYSTEM", "changed_files", "plain_agent", "repo_prompt"]

SYSTEM = (
    "# role: repo_baseline@1\n"
    "You are an expert Python programmer who changes existing repositories carefully."
)
INSTRUCTIONS = (
    "Change the repository to do what the goal asks. Answer with every file you change or add, "
    "each written out in full: first its path on a line of its own, like `pkg/module.py`, then "
    "the whole file in a ```python block. Do not show files you leave unchanged."
)
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PATH = re.compile(r"(?<![\w./-])[\w.-]+(?:/[\w.-]+)*\.py\b")
_LOOKBACK_LINES = 3


def repo_prompt(goal: str, files: Mapping[str, str]) -> str:
    """The goal, then every file of the repository under its path, then what to answer."""
    shown = "\n\n".join(
        f"`{path}`\n```python\n{text.rstrip()}\n```" for path, text in files.items()
    )
    return f"Goal: {goal}\n\nThe repository:\n\n{shown}\n\n{INSTRUCTIONS}"


def _named_path(before: str, code: str, known: Mapping[str, str]) -> str | None:
    """The path a block is given: in its first-line comment, else on the lines just above it."""
    lines = [line for line in before.splitlines() if line.strip()][-_LOOKBACK_LINES:]
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    places = ([first] if first.startswith("#") else []) + [*reversed(lines)]
    for place in places:
        found: list[str] = _PATH.findall(place)
        for path in sorted(found, key=lambda p: p not in known):
            if _usable(path):
                return path.removeprefix("./")
    return None


def _usable(path: str) -> bool:
    try:
        validate_workspace_path(path.removeprefix("./"))
    except InvalidWorkspacePath:
        return False
    return True


def changed_files(reply: str, files: Mapping[str, str]) -> dict[str, str]:
    """The files a reply writes out, by path; a block with no recognisable path is ignored."""
    changed: dict[str, str] = {}
    since = 0
    for match in _FENCE.finditer(reply):
        code = match.group(1)
        path = _named_path(reply[since : match.start()], code, files)
        since = match.end()
        if path is None or not code.strip():
            continue
        lines = code.splitlines()
        if lines and lines[0].startswith("#") and path in lines[0]:
            code = "\n".join(lines[1:])
        changed[path] = code.rstrip() + "\n"
    return changed


def plain_agent(model: BaseChatModel) -> RepoAgent:
    """The baseline agent over `model`: one request, its files applied, nothing run."""

    async def agent(goal: str, files: dict[str, str]) -> AgentResult:
        reply = await model.ainvoke([SystemMessage(SYSTEM), HumanMessage(repo_prompt(goal, files))])
        usage = usage_of(reply)
        answer = text_of(reply)
        changed = changed_files(answer, files)
        stop = "answered" if changed else "no file in the answer"
        return AgentResult(
            files={**files, **changed},
            model_calls=usage["model_calls"],
            tokens=usage["prompt_tokens"] + usage["completion_tokens"],
            stop_reason=stop,
            note=answer,
        )

    return agent
