"""What the team's nodes need from the platform, as one typed object handed in at build time.

Nodes of the execution-first core (`graphs/selection_team.py`) import nothing from `service/`:
the service builds a `TeamDeps` once (`service.team_deps.ServiceDeps`) and the graph builder
closes over it, so a test hands in its own and every dependency a node uses is visible here.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime
from pydantic import BaseModel

from graphs.context import TeamContext
from graphs.state import Usage
from tools.gateway import ToolGateway


@dataclass(frozen=True)
class Limits:
    """Effective per-task limits: the context's values, else the deployment's defaults."""

    max_steps: int
    max_iterations: int
    token_budget: int


@dataclass(frozen=True)
class Sampling:
    """How many candidates a round draws, and how they are decoded."""

    samples: int = 4
    """Candidates per round besides the greedy one."""
    temperature: float = 0.8
    inputs: int = 8
    """Inputs the tester proposes (at most)."""
    repair_rounds: int = 2
    """Repair rounds before a fresh sampling round."""
    repair_targets: int = 2


class Node[S](Protocol):
    """A node of the team as LangGraph calls it: the state (or a `Send` payload) and runtime."""

    def __call__(self, state: S, *, runtime: Runtime[TeamContext]) -> Awaitable[dict[str, Any]]:
        """Run once; return the state update."""


class ModelOutputError(RuntimeError):
    """The model gave no valid answer within its retries; `usage` is what the attempts cost."""

    def __init__(self, message: str, usage: Usage) -> None:
        super().__init__(message)
        self.usage = usage


class TeamDeps(Protocol):
    """The platform as the nodes see it."""

    sampling: Sampling

    def run_context(self, runtime_context: Any) -> TeamContext:
        """The run's context, made safe for a served run (tenant, folder, policy, caps)."""

    def thread_id(self) -> str:
        """The running task's id."""

    def limits(self, ctx: TeamContext) -> Limits:
        """Step, attempt and token limits in force."""

    async def model(self, ctx: TeamContext) -> BaseChatModel:
        """The chat model for this run."""

    async def gateway(self, ctx: TeamContext) -> ToolGateway:
        """The one way a tool runs (validation, policy, ledger, sandbox)."""

    async def lessons(self, ctx: TeamContext, goal: str) -> list[str]:
        """Lessons of earlier similar tasks of this tenant (empty when memory is off)."""

    async def ask_text(
        self, model: BaseChatModel, system: str, user: str, *, temperature: float, seed: int
    ) -> tuple[str, Usage]:
        """One plain completion and what it cost."""

    async def ask_json[T: BaseModel](
        self, model: BaseChatModel, system: str, user: str, schema: type[T]
    ) -> tuple[T, Usage]:
        """A schema-constrained answer, validated (raises ModelOutputError)."""
