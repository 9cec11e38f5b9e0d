"""What the team's nodes need from the platform, as one typed object handed in at build time.

Nodes import nothing from `service/`: the service builds a `TeamDeps` once
(`service.team_deps.ServiceDeps`) and the graph builders (`graphs/team.py`,
`graphs/selection_team.py`) close over it, so a test hands in its own and every dependency a
node uses is visible here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, JsonValue

from graphs.context import TeamContext
from graphs.state import Usage
from memory.episodic import EpisodicMemory
from memory.graph import MemoryGraph
from tools.gateway import SandboxLimits, ToolGateway


@dataclass(frozen=True)
class Limits:
    """Effective per-task limits: the context's values, else the deployment's defaults."""

    max_steps: int
    max_iterations: int
    token_budget: int
    stop: str = ""
    """Why the task must stop although the counters allow more: a model call was refused by
    the hard budget at the call layer (task budget or tenant quota), so routing ends the task."""


@dataclass(frozen=True)
class Sampling:
    """How many candidates a round draws, and how they are decoded."""

    samples: int = 4
    """Candidates per round besides the greedy one."""
    temperature: float = 0.8
    inputs: int = 0
    """Inputs the tester proposes (at most; 0: no tester call — mutated inputs tell as much)."""
    mutated: int = 12
    """Inputs mutated from the goal's examples (at most; no model call)."""
    widen: int = 1
    """Extra sampling calls into the same batch when the examples leave no clear winner."""
    when: Literal["always", "unsure"] = "always"
    """When the first round samples: always, or only when the greedy answer alone is unsure
    (it fails an example, the goal states none, or it raises or changes type on the other
    inputs) — a cascade."""
    repair_rounds: int = 2
    """Repair rounds before a fresh sampling round."""
    repair_targets: int = 2
    referee: bool = True
    """Whether close clusters are put to the reviewer as one concrete question."""


@dataclass(frozen=True)
class ModelServing:
    """How a chat model is served, as plain data: prompts are counted the way it bills.

    Which model object is the scripted one or talks to the bundled server is the service's
    knowledge; the prompt assembler needs only these facts to pick a tokenizer.
    """

    scripted: bool = False
    """The scripted test model, which bills len/4 tokens."""
    local_url: str | None = None
    """The bundled llama-server's base URL when the model is served by it (it has /tokenize)."""


class Node[S](Protocol):
    """A node of the team as LangGraph calls it: the state (or a `Send` payload) and runtime."""

    def __call__(self, state: S, *, runtime: Runtime[TeamContext]) -> Awaitable[dict[str, Any]]:
        """Run once; return the state update."""


class ModelOutputError(RuntimeError):
    """The model gave no valid answer within its retries; `usage` is what the attempts cost."""

    def __init__(self, message: str, usage: Usage) -> None:
        super().__init__(message)
        self.usage = usage


def text_of(message: BaseMessage) -> str:
    """A message's text, whether its content is a string or a list of parts.

    Here, below both, because the nodes render the state's messages into prompts and the
    service reads the model's replies with the same rule.
    """
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(part if isinstance(part, str) else str(part.get("text", "")) for part in content)


class TeamDeps(Protocol):
    """The platform as the nodes see it."""

    sampling: Sampling
    prompt_budget: int
    """Tokens one prompt may take (`STRATEGOS_PROMPT_TOKEN_BUDGET`): prompts are packed to fit."""
    sandbox_limits: SandboxLimits
    """Resource limits of one sandboxed test run of the pipeline's tester."""

    def run_context(self, runtime_context: Any) -> TeamContext:
        """The run's context, made safe for a served run (tenant, folder, policy, caps)."""

    def thread_id(self) -> str:
        """The running task's id ("local" outside a run)."""

    def limits(self, ctx: TeamContext) -> Limits:
        """Step, attempt and token limits in force."""

    def destination(self, ctx: TeamContext, thread_id: str, fixed: str | None = None) -> Path:
        """Where this run delivers: `fixed` (from state) if it is still allowed, else the default.

        State can be edited by a client, so a fixed folder outside the run's delivery root
        falls back to the default one.
        """

    async def model(self, ctx: TeamContext) -> BaseChatModel:
        """The chat model for this run."""

    def serving(self, model: BaseChatModel) -> ModelServing:
        """How `model` is served, so its prompts are counted with its own tokenizer."""

    async def gateway(self, ctx: TeamContext) -> ToolGateway:
        """The one way a tool runs (validation, policy, ledger, sandbox)."""

    async def memory(self, ctx: TeamContext) -> EpisodicMemory | None:
        """Episodic memory of this run (None when memory is off): lessons, paged-out history."""

    async def memory_graph(self, ctx: TeamContext) -> MemoryGraph | None:
        """The memory graph in the tenant's namespace (None when memory or the graph is off)."""

    async def lessons(self, ctx: TeamContext, goal: str) -> list[str]:
        """Lessons of earlier similar tasks of this tenant (empty when memory is off)."""

    async def ask_text(
        self, model: BaseChatModel, system: str, user: str, *, temperature: float, seed: int
    ) -> tuple[str, Usage]:
        """One plain completion and what it cost."""

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
        """`n` sampled completions of one prompt, and what they cost (`n` model calls).

        A server that decodes them in one request reads the prompt once; otherwise they are
        `n` requests with seeds `seed` … `seed + n - 1`.
        """

    async def ask_tools(
        self,
        model: BaseChatModel,
        messages: Sequence[BaseMessage],
        tools: Sequence[Mapping[str, JsonValue]],
    ) -> tuple[AIMessage, Usage]:
        """One tool-calling turn: the reply must call one of `tools` (OpenAI-style definitions).

        The bundled server decodes the call under a grammar built from the tools' schemas, so
        its arguments always parse; what they mean is still the gateway's to validate.
        """

    def similarity(self) -> Callable[[Sequence[str]], float] | None:
        """Mean pairwise cosine of texts' embeddings (the bundled embedder), or None.

        For the loop guard's semantic-repeat check. Blocking: call it off the event loop.
        """

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
        """A schema-constrained answer, validated, with a bounded repair retry.

        `retries` defaults to the deployment's (`STRATEGOS_STRUCTURED_RETRIES`); `sample`
        decodes every attempt at a small temperature, since a greedy repair of failing code
        tends to return that very code. Raises ModelOutputError, which carries the usage.
        """
