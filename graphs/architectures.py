"""The agent architectures by name, the input each takes, and the pure router among them.

A task is either one function goal (write `add(a, b)`) or a repository to change; each
architecture fits one of the two, and the operator allows a subset
(`STRATEGOS_ARCHITECTURES_ALLOWED`). The router is a pure function of the request, the input's
kind and that set, so it is table-tested and the served guard, the entry graph and the CLI all
decide the same way. Which compiled graph a name stands for is the service's business
(`service/architecture_entry.py`): graphs may not import the service.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final, Literal

InputKind = Literal["function", "repository"]
AUTO: Final = "auto"
"""The request that lets the router choose from the input."""


@dataclass(frozen=True)
class Architecture:
    """One way of solving a task, as the router and the people choosing it see it."""

    name: str
    takes: InputKind
    summary: str


ARCHITECTURES: Final[dict[str, Architecture]] = {
    arch.name: arch
    for arch in (
        Architecture("team", "function", "the pipeline: supervisor, coder, tester, reviewer"),
        Architecture("selection", "function", "execution-first: candidates chosen by running"),
        Architecture("tree_of_thoughts", "function", "a search over partial solutions"),
        Architecture("react", "repository", "one ReAct worker over the files' tools"),
        Architecture("plan_and_solve", "repository", "a plan of subtasks run by ReAct workers"),
        Architecture("repo_agent", "repository", "a ReAct worker, the tests, an approved patch"),
        Architecture("reflexion", "repository", "attempts that learn from their own critique"),
    )
}
"""Every architecture a run may name, with the input it takes."""
ARCHITECTURE_NAMES: Final = tuple(ARCHITECTURES)

AUTO_ORDER: Final[dict[InputKind, tuple[str, ...]]] = {
    "repository": ("plan_and_solve", "repo_agent", "reflexion", "react"),
    "function": ("selection", "team", "tree_of_thoughts"),
}
"""What "auto" picks, first allowed first: on a repository Plan-and-Solve's ReAct workers, on a
function goal the execution-first team (it beats the pipeline on the benchmark)."""


def input_kind(has_repo: bool) -> InputKind:
    """The kind of input a run carries: a repository's files, or one function goal."""
    return "repository" if has_repo else "function"


def choose_architecture(
    requested: str, has_repo: bool, allowed: Collection[str], prefer: Sequence[str] = ()
) -> str:
    """The architecture a run goes to; a ValueError naming the allowed ones when none fits.

    "auto" takes the first allowed architecture for the input's kind, `prefer` before
    `AUTO_ORDER` (a caller's own default, such as the CLI's configured team). An explicit
    name must be known, allowed by the operator and take this kind of input.
    """
    kind = input_kind(has_repo)
    fitting = [name for name in ARCHITECTURE_NAMES if name in allowed and takes(name) == kind]
    if requested == AUTO:
        for name in (*prefer, *AUTO_ORDER[kind]):
            if name in fitting:
                return name
        raise ValueError(f"no allowed architecture takes {_spelled(kind)} ({_allowed(allowed)})")
    if requested not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {requested!r}: choose auto or one of {_allowed(allowed)}"
        )
    if requested not in allowed:
        raise ValueError(
            f"architecture {requested!r} is not allowed here: choose auto or one of "
            f"{_allowed(allowed)}"
        )
    if takes(requested) != kind:
        others = ", ".join(fitting) or "none"
        raise ValueError(
            f"architecture {requested!r} takes {_spelled(takes(requested))}, and this task is "
            f"{_spelled(kind)}: choose auto or one of the allowed ones that fit ({others})"
        )
    return requested


def takes(name: str) -> InputKind:
    """The input the architecture `name` takes (a KeyError for an unknown name)."""
    return ARCHITECTURES[name].takes


def check_names(names: Collection[str]) -> list[str]:
    """`names` as a list when every one is an architecture; a ValueError naming the unknown."""
    unknown = sorted(set(names) - set(ARCHITECTURES))
    if unknown:
        raise ValueError(
            f"unknown architectures {', '.join(unknown)}: known are {', '.join(ARCHITECTURE_NAMES)}"
        )
    return list(names)


def _allowed(allowed: Collection[str]) -> str:
    names = [name for name in ARCHITECTURE_NAMES if name in allowed]
    return "allowed: " + (", ".join(names) if names else "none")


def _spelled(kind: InputKind) -> str:
    return "a repository" if kind == "repository" else "one function goal"
