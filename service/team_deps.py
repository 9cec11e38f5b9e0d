"""The platform handed to the execution-first team as one typed `TeamDeps`, and its graph.

Built once per process from the settings. The nodes see only `graphs.deps.TeamDeps`; this is
where the model, the gateway, memory and the limits come from (`service.deps`), and where a
model call is made and accounted (`service.models`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel

from graphs.context import TeamContext
from graphs.deps import Limits, ModelOutputError, Sampling
from graphs.selection_state import SelectionState
from graphs.selection_team import compile_selection_team
from graphs.state import TeamInput, Usage
from memory.reflexion import lesson_texts
from nodes.approval import approval
from nodes.deliver import deliver
from service import deps
from service.models import StructuredOutputError, structured_call, text_of, usage_of
from service.settings import Settings, get_settings
from tools.gateway import ToolGateway

LESSONS_K = 3


class ServiceDeps:
    """`TeamDeps` on the service's model, gateway, memory and settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sampling = Sampling(samples=settings.samples, temperature=settings.sample_temperature)

    def run_context(self, runtime_context: Any) -> TeamContext:
        """The run's context, made safe for a served run."""
        return deps.run_context(runtime_context)

    def thread_id(self) -> str:
        """The running task's id."""
        return deps.current_thread_id()

    def limits(self, ctx: TeamContext) -> Limits:
        """Step, attempt and token limits in force."""
        return deps.limits(ctx, self.settings)

    async def model(self, ctx: TeamContext) -> BaseChatModel:
        """The injected or configured chat model."""
        return await deps.get_model(ctx)

    async def gateway(self, ctx: TeamContext) -> ToolGateway:
        """The tool gateway of this run."""
        return await deps.get_gateway(ctx)

    async def lessons(self, ctx: TeamContext, goal: str) -> list[str]:
        """Lessons of this tenant's earlier similar tasks (other tasks' only)."""
        memory = await deps.get_memory(ctx)
        if memory is None:
            return []
        hits = await asyncio.to_thread(memory.lessons, goal, ctx.tenant, LESSONS_K)
        return lesson_texts(hits, exclude_task=self.thread_id())

    async def ask_text(
        self, model: BaseChatModel, system: str, user: str, *, temperature: float, seed: int
    ) -> tuple[str, Usage]:
        """One completion at `temperature` with `seed` (reproducible samples)."""
        bound = model.bind(temperature=temperature, seed=seed)
        reply = await bound.ainvoke([SystemMessage(system), HumanMessage(user)])
        return text_of(reply), usage_of(reply)

    async def ask_json[T: BaseModel](
        self, model: BaseChatModel, system: str, user: str, schema: type[T]
    ) -> tuple[T, Usage]:
        """A schema-constrained answer with the bounded repair retry."""
        try:
            return await structured_call(
                model, system, user, schema, retries=self.settings.structured_retries
            )
        except StructuredOutputError as exc:
            raise ModelOutputError(str(exc), exc.usage) from None


def destination(ctx: TeamContext, thread_id: str) -> str:
    """Where this run delivers (the task's own folder for a served run)."""
    return str(deps.out_dir(ctx, thread_id))


def compile_team(
    checkpointer: BaseCheckpointSaver[Any] | None = None, settings: Settings | None = None
) -> CompiledStateGraph[SelectionState, TeamContext, TeamInput, SelectionState]:
    """The execution-first team on this service's dependencies."""
    team_deps = ServiceDeps(settings or get_settings())
    return compile_selection_team(team_deps, approval, deliver, destination, checkpointer)


graph = compile_team()
"""Entry point for `langgraph.json` (`coding_team_selection`): no checkpointer, the server's."""
