"""The platform handed to both teams as one typed `TeamDeps`, and the graphs it serves.

Built once per process from the settings. The nodes see only `graphs.deps.TeamDeps`; this is
where the model, the gateway, memory, the delivery folder and the limits come from
(`service.deps`), and where a model call is made and accounted (`service.llm.models`).
`langgraph.json` serves `graph` (the pipeline, `coding_team`) and `selection_graph` (the
execution-first team, `coding_team_selection`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from functools import reduce
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel, JsonValue

from graphs.context import TeamContext
from graphs.deps import Limits, ModelOutputError, ModelServing, Sampling, text_of
from graphs.plan_solve import compile_plan_solve
from graphs.plan_state import PlanInput, PlanState
from graphs.react import compile_react_worker
from graphs.react_state import ReactInput, ReactState, RepoInput, RepoState
from graphs.reflexion import compile_reflexion
from graphs.repo_team import compile_repo_team
from graphs.selection_state import SelectionState
from graphs.selection_team import compile_selection_team
from graphs.state import TeamInput, TeamState, Usage, add_usage
from graphs.team import compile_team
from graphs.tot import compile_tot
from graphs.tot_state import TotState
from memory.episodic import EpisodicMemory
from memory.graph import MemoryGraph
from memory.reflexion import lesson_texts
from memory.tokens import FallbackTokenCounter, HttpTokenizer, TokenCounter
from nodes.loop_guard import make_similarity
from nodes.reflect import ReflexionState
from nodes.tot_search import TotConfig
from service import deps
from service.llm.guarded import BudgetExceeded, CallBudget
from service.llm.models import LOCAL_SERVER, StructuredOutputError, structured_call, usage_of
from service.llm.prices import account
from service.llm.scripted import ScriptedChatModel
from service.llm.tool_calls import ask_json_tool_call
from service.settings import Settings, get_settings
from tools.gateway import SandboxLimits, ToolGateway
from tools.telemetry import MODEL_CALLS, MODEL_TOKENS

LESSONS_K = 3


def _local_server_url() -> str | None:
    """The bundled llama-server's base URL if this process started it."""
    url = getattr(LOCAL_SERVER, "_url", None)
    return url.rstrip("/") if isinstance(url, str) else None


PIPELINE_ROLES = ("supervisor", "coder", "tester", "reviewer")
SELECTION_ROLES = ("sample", "repair", "probe", "referee")
"""The nodes of each team that call the model: the roles its budget is shared among."""


class ServiceDeps:
    """`TeamDeps` on the service's model, gateway, memory and settings."""

    def __init__(self, settings: Settings, roles: Sequence[str] = ()) -> None:
        self.settings = settings
        self.budget = CallBudget(settings, roles)
        """Every model call reserves its worst case here first (`service.llm.guarded`)."""
        self.sampling = Sampling(
            samples=settings.samples,
            temperature=settings.sample_temperature,
            inputs=settings.sample_inputs,
            mutated=settings.mutated_inputs,
            widen=settings.widen_rounds,
            when=settings.sample_when,
            repair_rounds=settings.repair_rounds,
            referee=settings.referee,
        )
        self.prompt_budget = settings.prompt_token_budget
        self._tokens: TokenCounter | None = None
        self._cosine: Callable[[Sequence[str]], float] | None = None
        self.sandbox_limits = SandboxLimits(
            timeout_s=settings.sandbox_timeout_s,
            cpu_s=settings.sandbox_cpu_s,
            memory_mb=settings.sandbox_memory_mb,
            file_size_mb=settings.sandbox_file_size_mb,
        )

    def run_context(self, runtime_context: Any) -> TeamContext:
        """The run's context, made safe for a served run."""
        return deps.run_context(runtime_context)

    def thread_id(self) -> str:
        """The running task's id."""
        return deps.current_thread_id()

    def limits(self, ctx: TeamContext) -> Limits:
        """Step, attempt and token limits in force (and why a refused call stops the task)."""
        limits = deps.limits(ctx, self.settings)
        stop = self.budget.exhausted.get(self.thread_id(), "")
        return dataclasses.replace(limits, stop=stop) if stop else limits

    def destination(self, ctx: TeamContext, thread_id: str, fixed: str | None = None) -> Path:
        """The folder fixed in state if it is inside the run's delivery root, else the default."""
        return deps.destination(ctx, thread_id, fixed)

    async def model(self, ctx: TeamContext) -> BaseChatModel:
        """The injected or configured chat model."""
        return await deps.get_model(ctx)

    def serving(self, model: BaseChatModel) -> ModelServing:
        """Whether `model` is the scripted one or is served by the bundled llama-server."""
        local = _local_server_url()
        base = (model.openai_api_base or "").rstrip("/") if isinstance(model, ChatOpenAI) else ""
        return ModelServing(
            scripted=isinstance(model, ScriptedChatModel),
            local_url=base if base and base == local else None,
        )

    async def gateway(self, ctx: TeamContext) -> ToolGateway:
        """The tool gateway of this run."""
        return await deps.get_gateway(ctx)

    async def memory(self, ctx: TeamContext) -> EpisodicMemory | None:
        """The run's episodic memory (opened off the event loop)."""
        return await deps.get_memory(ctx)

    async def memory_graph(self, ctx: TeamContext) -> MemoryGraph | None:
        """The memory graph in the tenant's namespace (opened off the event loop)."""
        return await deps.get_memory_graph(ctx)

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
        bound = self._guarded(model).bind(temperature=temperature, seed=seed)
        reply = await bound.ainvoke([SystemMessage(system), HumanMessage(user)])
        return text_of(reply), counted(usage_of(reply), model, self.settings)

    async def ask_texts(
        self,
        model: BaseChatModel,
        system: str,
        user: str,
        *,
        n: int,
        temperature: float,
        seed: int,
    ) -> tuple[list[str], Usage]:
        """`n` samples; on the bundled server one request with `n` choices.

        Sent as `n` requests at once, each of the server's slots evaluates the whole prompt
        (a slot does not share a prefix another slot is still reading); asked for `n`
        choices, the server reads the prompt once and copies it to the other slots. The
        server reports one completion's tokens for all choices, so each choice is counted
        with its tokenizer.
        """
        local = self.serving(model).local_url
        if n <= 1 or local is None:
            replies = await asyncio.gather(
                *(
                    self.ask_text(model, system, user, temperature=temperature, seed=seed + i)
                    for i in range(max(n, 1))
                ),
                return_exceptions=True,
            )
            answered = _answered(replies)
            texts = [text for text, _ in answered]
            return texts, reduce(add_usage, (usage for _, usage in answered))
        messages = [SystemMessage(system), HumanMessage(user)]
        # Not streamed, even to a live view: a stream carries only the first choice.
        result = await self._guarded(model).agenerate(
            [messages], temperature=temperature, seed=seed, n=n, stream=False
        )
        choices = [g.message for g in result.generations[0] if isinstance(g, ChatGeneration)]
        texts = [text_of(message) for message in choices]
        counter = self._counter(local)
        completion = sum([await asyncio.to_thread(counter.count, text) for text in texts])
        prompt = usage_of(choices[0])["prompt_tokens"] if choices else 0
        usage: Usage = {"model_calls": n, "prompt_tokens": prompt, "completion_tokens": completion}
        return texts, counted(usage, model, self.settings)

    def _guarded(self, model: BaseChatModel) -> BaseChatModel:
        """`model` behind the hard budget, its prompts counted with its tokenizer if it has one."""
        local = self.serving(model).local_url
        return self.budget.guard(model, self._counter(local).count if local else None)

    def _counter(self, local_url: str) -> TokenCounter:
        """The bundled server's tokenizer (an estimate if it stops answering), made once."""
        if self._tokens is None:
            self._tokens = FallbackTokenCounter(HttpTokenizer(local_url))
        return self._tokens

    async def ask_tools(
        self,
        model: BaseChatModel,
        messages: Sequence[BaseMessage],
        tools: Sequence[Mapping[str, JsonValue]],
    ) -> tuple[AIMessage, Usage]:
        """One turn that must call a tool, one call at a time.

        On the bundled server (or with `STRATEGOS_TOOL_CALLS=json_schema`) the call is decoded
        under a JSON schema with one branch per tool (`service.llm.tool_calls`: the model's
        template has no tool format llama.cpp knows, and its generic tool grammar gave no parsed
        call); elsewhere native tool calling with `tool_choice="required"`. One call per turn
        keeps the calls in the order the model meant.
        """
        if self._json_tool_calls(model):
            reply = await ask_json_tool_call(self._guarded(model), messages, tools)
            return reply, counted(usage_of(reply), model, self.settings)
        bound = self._guarded(model).bind_tools(
            [dict(tool) for tool in tools], tool_choice="required", parallel_tool_calls=False
        )
        reply = await bound.ainvoke(list(messages))
        if not isinstance(reply, AIMessage):  # pragma: no cover - chat models answer so
            raise TypeError(f"the model answered a {type(reply).__name__}, not an AI message")
        return reply, counted(usage_of(reply), model, self.settings)

    def _json_tool_calls(self, model: BaseChatModel) -> bool:
        """Whether tool calls are decoded under a JSON schema rather than natively."""
        mode = self.settings.tool_calls
        local = self.serving(model).local_url is not None
        return mode == "json_schema" or (mode == "auto" and local)

    def similarity(self) -> Callable[[Sequence[str]], float] | None:
        """The loop guard's semantic check on the process's embedder (loaded on first use)."""
        return self._semantic

    def _semantic(self, texts: Sequence[str]) -> float:
        """Mean pairwise cosine; the embedder is opened by the first judgement that needs it."""
        if self._cosine is None:
            self._cosine = make_similarity(deps.default_embedder())
        return self._cosine(texts)

    async def ask_json[T: BaseModel](
        self,
        model: BaseChatModel,
        system: str,
        user: str,
        schema: type[T],
        *,
        retries: int | None = None,
        sample: bool = False,
    ) -> tuple[T, Usage]:
        """A schema-constrained answer with the bounded repair retry."""
        if retries is None:
            retries = self.settings.structured_retries
        try:
            answer, usage = await structured_call(
                self._guarded(model), system, user, schema, retries=retries, sample=sample
            )
        except BudgetExceeded as exc:
            exc.usage = counted(exc.usage, model, self.settings)  # the attempts before it
            raise
        except StructuredOutputError as exc:
            raise ModelOutputError(str(exc), counted(exc.usage, model, self.settings)) from None
        return answer, counted(usage, model, self.settings)


def _answered(replies: list[tuple[str, Usage] | BaseException]) -> list[tuple[str, Usage]]:
    """The samples that were answered; those the budget refused are left out (not sent).

    Any other error is raised; so is a refusal when no sample was answered at all.
    """
    answered = [reply for reply in replies if not isinstance(reply, BaseException)]
    refused = [reply for reply in replies if isinstance(reply, BudgetExceeded)]
    for reply in replies:
        if isinstance(reply, BaseException) and not isinstance(reply, BudgetExceeded):
            raise reply
    if not answered:
        raise refused[0]
    return answered


def counted(
    usage: Usage, model: BaseChatModel | None = None, settings: Settings | None = None
) -> Usage:
    """`usage`, priced at `model`'s price and added to the metrics under node and tenant."""
    node, tenant = deps.current_caller()
    usage = account(
        usage,
        model,
        settings or get_settings(),
        local_url=_local_server_url(),
        node=node,
        tenant=tenant,
    )
    MODEL_CALLS.labels(node=node, tenant=tenant).inc(usage["model_calls"])
    MODEL_TOKENS.labels(node=node, tenant=tenant, kind="prompt").inc(usage["prompt_tokens"])
    MODEL_TOKENS.labels(node=node, tenant=tenant, kind="completion").inc(usage["completion_tokens"])
    return usage


def compile_pipeline(
    checkpointer: BaseCheckpointSaver[Any] | None = None, settings: Settings | None = None
) -> CompiledStateGraph[TeamState, TeamContext, TeamInput, TeamState]:
    """The pipeline team (supervisor, coder, tester, reviewer) on this service's dependencies."""
    return compile_team(ServiceDeps(settings or get_settings(), PIPELINE_ROLES), checkpointer)


def compile_selection(
    checkpointer: BaseCheckpointSaver[Any] | None = None, settings: Settings | None = None
) -> CompiledStateGraph[SelectionState, TeamContext, TeamInput, SelectionState]:
    """The execution-first team on this service's dependencies."""
    service_deps = ServiceDeps(settings or get_settings(), SELECTION_ROLES)
    return compile_selection_team(service_deps, checkpointer)


def compile_named(
    team: Literal["pipeline", "selection", "repo"],
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    settings: Settings | None = None,
) -> CompiledStateGraph[Any, TeamContext, Any, Any]:
    """The team called `team` (a task record names the one its checkpoints belong to)."""
    if team == "repo":  # `strategos run --repo`: the repository agent
        return compile_repo(checkpointer, settings)
    if team == "selection":
        return compile_selection(checkpointer, settings)
    return compile_pipeline(checkpointer, settings)


graph = compile_pipeline()
"""Entry point for `langgraph.json` (`coding_team`): no checkpointer, the server's."""

selection_graph = compile_selection()
"""Entry point for `langgraph.json` (`coding_team_selection`): no checkpointer, the server's."""


REACT_ROLES = ("agent",)
"""The ReAct worker's node that calls the model (also the repository agent's, in its worker)."""


def compile_react(
    checkpointer: BaseCheckpointSaver[Any] | None = None, settings: Settings | None = None
) -> CompiledStateGraph[ReactState, TeamContext, ReactInput, ReactState]:
    """The ReAct worker on its own (a tool-calling loop over the catalogue tools)."""
    return compile_react_worker(ServiceDeps(settings or get_settings(), REACT_ROLES), checkpointer)


react_graph = compile_react()
"""Entry point for `langgraph.json` (`react_worker`): no checkpointer, the server's."""


def compile_repo(
    checkpointer: BaseCheckpointSaver[Any] | None = None, settings: Settings | None = None
) -> CompiledStateGraph[RepoState, TeamContext, RepoInput, RepoState]:
    """The repository agent: a ReAct worker on a repository's copy, its tests, approval, a patch."""
    return compile_repo_team(ServiceDeps(settings or get_settings(), REACT_ROLES), checkpointer)


repo_graph = compile_repo()
"""Entry point for `langgraph.json` (`repo_agent`): no checkpointer, the server's."""


PLAN_SOLVE_ROLES = ("plan", "replan", "agent")
"""Plan-and-Solve's nodes that call the model: the planner, the re-planner, each worker's turn."""


def compile_plan_solve_agent(
    checkpointer: BaseCheckpointSaver[Any] | None = None, settings: Settings | None = None
) -> CompiledStateGraph[PlanState, TeamContext, PlanInput, PlanState]:
    """Plan-and-Solve: a validated DAG of subtasks run in waves of ReAct workers, then merged."""
    settings = settings or get_settings()
    service_deps = ServiceDeps(settings, PLAN_SOLVE_ROLES)
    return compile_plan_solve(service_deps, checkpointer, settings.plan_max_subtasks)


plan_solve_graph = compile_plan_solve_agent()
"""Entry point for `langgraph.json` (`plan_and_solve`): no checkpointer, the server's."""


TOT_ROLES = ("expand",)
"""Tree of Thoughts' node that calls the model: each child program is one `expand` call."""


def compile_tot_agent(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    settings: Settings | None = None,
    config: TotConfig | None = None,
) -> CompiledStateGraph[TotState, TeamContext, TeamInput, TotState]:
    """Tree of Thoughts: a beam search over programs, scored on the goal's own examples."""
    return compile_tot(ServiceDeps(settings or get_settings(), TOT_ROLES), checkpointer, config)


tot_graph = compile_tot_agent()
"""Entry point for `langgraph.json` (`tree_of_thoughts`): no checkpointer, the server's."""


REFLEXION_ROLES = ("agent", "reflect")
"""Reflexion's nodes that call the model: each attempt's worker turn and the critique."""


def compile_reflexion_agent(
    checkpointer: BaseCheckpointSaver[Any] | None = None, settings: Settings | None = None
) -> CompiledStateGraph[ReflexionState, TeamContext, RepoInput, ReflexionState]:
    """Reflexion on a repository: worker attempts, a critique after each failed one."""
    return compile_reflexion(ServiceDeps(settings or get_settings(), REFLEXION_ROLES), checkpointer)


reflexion_graph = compile_reflexion_agent()
"""Entry point for `langgraph.json` (`reflexion`): no checkpointer, the server's."""
