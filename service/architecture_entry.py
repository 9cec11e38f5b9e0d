"""The served entry graph `strategos`: one assistant that runs a task on the chosen architecture.

```
START → route ─Command(goto=…)─► team | selection | react | plan_and_solve | repo_agent | … → END
```

`route` reads the run context's `architecture` ("auto" or a name), asks the pure router
(`graphs.architectures.choose_architecture`) with the input's kind and the operator's allowed
set, records the choice and jumps there. Each architecture is its own compiled graph added as
a subgraph node, so Studio draws it, its checkpoints live in the entry thread's namespace, and
its approval `interrupt()` pauses the entry run and is resumed through it with
`Command(resume=…)`. Which graph a name stands for is looked up by attribute on
`service.team_deps` (an architecture whose graph is not there yet is refused with its name).
The CLI decides its `--architecture` the same way (`cli_architecture`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command
from typing_extensions import TypedDict

from graphs.architectures import ARCHITECTURE_NAMES, AUTO, choose_architecture
from graphs.context import TeamContext
from service import deps
from service.settings import Settings, get_settings

Graph = CompiledStateGraph[Any, Any, Any, Any]

GRAPH_ATTRIBUTES: dict[str, str] = {
    "team": "graph",
    "selection": "selection_graph",
    "react": "react_graph",
    "plan_and_solve": "plan_solve_graph",
    "repo_agent": "repo_graph",
    "reflexion": "reflexion_graph",
    "tree_of_thoughts": "tot_graph",
}
"""Where each architecture's served graph lives on `service.team_deps`."""

CLI_TEAMS: dict[str, Literal["pipeline", "selection", "repo"]] = {
    "team": "pipeline",
    "selection": "selection",
    "repo_agent": "repo",
}
"""The architectures `strategos run` drives to a report and a delivery, as task-record teams."""
TEAM_ARCHITECTURES = {"pipeline": "team", "selection": "selection"}
"""`--team`/`STRATEGOS_TEAM` spelled as architectures."""


class EntryInput(TypedDict):
    """A function goal (`goal`, `entry_point`) or a repository (`repo_files`/`files`), or a chat."""

    goal: NotRequired[str]
    entry_point: NotRequired[str]
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    repo_files: NotRequired[dict[str, str]]
    files: NotRequired[dict[str, str]]


class EntryState(EntryInput):
    """The input, the architecture chosen, and what the architecture ended with."""

    architecture: NotRequired[str]
    report: NotRequired[dict[str, object]]
    outcome: NotRequired[dict[str, object]]


def architecture_graph(name: str) -> Graph:
    """The served graph of architecture `name`; a LookupError when the service has none yet."""
    from service import team_deps

    attribute = GRAPH_ATTRIBUTES[name]
    found = getattr(team_deps, attribute, None)
    if found is None:
        raise LookupError(
            f"architecture {name!r} has no served graph yet (service.team_deps.{attribute})"
        )
    return found  # type: ignore[no-any-return]


def available_graphs(names: Collection[str] = ARCHITECTURE_NAMES) -> dict[str, Graph]:
    """The graphs of `names` the service has (one not written yet is left out)."""
    found: dict[str, Graph] = {}
    for name in names:
        try:
            found[name] = architecture_graph(name)
        except LookupError:
            continue
    return found


def _has_repo(state: Mapping[str, Any]) -> bool:
    return bool(state.get("repo_files") or state.get("files"))


def make_route(allowed: Collection[str], served: Collection[str]) -> Any:
    """The entry node: choose (the pure router), record the choice, jump to its subgraph.

    The choice is checkpointed with the jump, so a resumed run continues in the same
    architecture; a repository given only as `repo_files` or `files` is handed on as both.
    """

    async def route(state: EntryState, runtime: Runtime[TeamContext]) -> Command[str]:
        requested = deps.context_of(runtime.context).architecture
        name = choose_architecture(requested, _has_repo(state), allowed)
        if name not in served:
            raise LookupError(f"architecture {name!r} is allowed but not served by this build")
        update: dict[str, Any] = {"architecture": name}
        if _has_repo(state):
            repo = state.get("repo_files") or state.get("files") or {}
            update["repo_files"] = dict(state.get("repo_files") or repo)
            update["files"] = dict(state.get("files") or repo)
        return Command(goto=name, update=update)

    return route


def build_entry(
    graphs: Mapping[str, Graph], allowed: Collection[str]
) -> StateGraph[EntryState, TeamContext, EntryInput, EntryState]:
    """`route`, then each architecture's compiled graph as a subgraph node, then the end."""
    builder = StateGraph(EntryState, context_schema=TeamContext, input_schema=EntryInput)
    builder.add_node("route", make_route(allowed, set(graphs)), destinations=tuple(graphs))
    for name, graph in graphs.items():
        builder.add_node(name, graph)
        builder.add_edge(name, END)
    builder.add_edge(START, "route")
    return builder


def compile_entry(
    checkpointer: BaseCheckpointSaver[Any] | None = None, settings: Settings | None = None
) -> CompiledStateGraph[EntryState, TeamContext, EntryInput, EntryState]:
    """The entry graph over every served architecture, within the operator's allowed set."""
    settings = settings or get_settings()
    graphs = available_graphs()
    builder = build_entry(graphs, settings.architectures_allowed)
    return builder.compile(checkpointer=checkpointer, name="strategos")


def cli_architecture(
    requested: str | None, team: str | None, has_repo: bool, settings: Settings
) -> str:
    """The architecture `strategos run` runs; a ValueError (a usage error) when none fits.

    `--architecture` wins, else `--team`, else `STRATEGOS_ARCHITECTURE_DEFAULT`. "auto" keeps
    the CLI's own defaults first (`STRATEGOS_TEAM` for a function goal, the repository agent
    for a repository) and chooses among the architectures the CLI drives to a delivery.
    """
    if team is not None:
        if team not in TEAM_ARCHITECTURES:
            raise ValueError(f"--team must be {' or '.join(TEAM_ARCHITECTURES)}, not {team!r}")
        if requested not in (None, AUTO):
            raise ValueError("give --architecture or --team, not both")
        requested = TEAM_ARCHITECTURES[team]
    requested = requested or settings.architecture_default
    allowed = settings.architectures_allowed
    if requested == AUTO:  # only what the CLI can drive to a delivery
        allowed = [name for name in allowed if name in CLI_TEAMS]
    prefer = ("repo_agent",) if has_repo else (TEAM_ARCHITECTURES[settings.team],)
    name = choose_architecture(requested, has_repo, allowed, prefer)
    if name not in CLI_TEAMS:
        raise ValueError(
            f"architecture {name!r} is served (graph `strategos`), not run from the CLI, which "
            f"runs {', '.join(CLI_TEAMS)}"
        )
    return name


strategos_graph = compile_entry()
"""Entry point for `langgraph.json` (`strategos`): no checkpointer, the server's."""
