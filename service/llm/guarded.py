"""The hard budget at the model-call layer: every request reserves its worst case first.

`ServiceDeps.ask_*` hand the nodes' model to `CallBudget.guard`, which wraps it in a
`BudgetedChatModel`. Every request that wrapper sends — a plain completion, each of `n`
samples, each repair attempt of a structured answer — first reserves `prompt + n × completion`
tokens (the prompt counted with the model's tokenizer where it has one, else len/3, which errs
high) against the task's budget (`limits.token_budget`, keyed by the task id so a task's `Send`
branches share it), the tenant's quotas (`service.quotas`) and, when the operator caps it,
the role's share (`service.llm.allocator`). What does not fit is shortened to the completion
limit that does, down to `budget_floor_tokens`; below that it is refused with `BudgetExceeded`
and never sent. Afterwards the usage the model reported is settled.

`BudgetExceeded` is a `ModelOutputError`, which every node already turns into "no answer this
time"; the reason is also kept for the task, so the guards (`Limits.stop`) end the task with it
at the next routing step instead of retrying.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding
from openai import LengthFinishReasonError
from pydantic import ConfigDict

from graphs.deps import ModelOutputError, text_of
from graphs.state import Usage
from service import deps
from service.budget import (
    UNLIMITED,
    Grant,
    Ledger,
    MemoryLedger,
    Pool,
    task_pool,
)
from service.budget_redis import redis_ledger
from service.llm.allocator import role_free
from service.quotas import describe, quota_for, tenant_pools, window_end, window_of
from service.rate_limits import get_limit_store
from service.settings import Settings
from tools.telemetry import MODEL_BUDGET

__all__ = ["BudgetExceeded", "BudgetedChatModel", "CallBudget"]

log = logging.getLogger(__name__)
MESSAGE_OVERHEAD = 8
"""Tokens a chat template adds around one message (role markers), counted into the prompt."""
EXHAUSTED_KEPT = 10_000
"""Refused tasks whose reason a team remembers (each stops at its next routing step)."""
ZERO: Usage = {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}


class BudgetExceeded(ModelOutputError):
    """A model call that does not fit the task's budget or the tenant's quota: not sent."""

    def __init__(self, message: str, usage: Usage, *, retry_after_s: int = 0) -> None:
        super().__init__(message, usage)
        self.retry_after_s = retry_after_s
        """For a tenant window: seconds until it frees (0 for the task's own budget)."""


def estimate_tokens(text: str) -> int:
    """len/3 rounded up: above what a BPE tokenizer bills for prose and code."""
    return math.ceil(len(text) / 3)


@dataclass(frozen=True)
class CallScope:
    """Whose call this is: the task (None outside a run), tenant, role and task budget."""

    task_id: str | None
    tenant: str | None
    role: str
    token_budget: int


class CallBudget:
    """Reserve and settle model calls; one per `ServiceDeps` (its in-process task ledger)."""

    def __init__(self, settings: Settings, roles: Sequence[str] = ()) -> None:
        self.settings = settings
        self.roles = tuple(roles)
        self._memory = MemoryLedger()
        self.exhausted: OrderedDict[str, str] = OrderedDict()
        """Why a task's last call was refused, by task id (read by `ServiceDeps.limits`); the
        latest `EXHAUSTED_KEPT` tasks."""

    def ledger(self) -> Ledger:
        """Redis when configured (shared by instances), else this object's own."""
        if not self.settings.redis_url:
            return self._memory
        store = get_limit_store()
        if store.redis is None:
            return self._memory
        return redis_ledger(store.redis, self.settings)

    def scope(self) -> CallScope:
        """The running task, tenant and node; no task outside a graph run."""
        role, tenant = deps.current_caller()
        inside = deps._run_config() is not None
        budget = self.settings.token_budget
        if inside:
            from langgraph.runtime import get_runtime

            try:
                ctx = deps.run_context(get_runtime().context)
                budget = deps.limits(ctx, self.settings).token_budget
            except RuntimeError:
                pass
        return CallScope(
            task_id=deps.current_thread_id() if inside else None,
            tenant=tenant if inside and tenant != "-" else None,
            role=role,
            token_budget=budget,
        )

    def pools(self, scope: CallScope, now: float) -> list[Pool]:
        """The task's budget and the tenant's windows this call must fit."""
        pools = []
        if scope.task_id is not None:
            ttl = self.settings.budget_ledger_ttl_s
            pools.append(task_pool(scope.task_id, scope.token_budget, ttl))
        if scope.tenant is not None:
            pools += tenant_pools(quota_for(self.settings, scope.tenant), scope.tenant, now)
        return pools

    async def _role_free(self, ledger: Ledger, scope: CallScope, task: Pool) -> int:
        """The role's room under the allocator, or UNLIMITED when roles are not capped."""
        fraction = self.settings.budget_role_max_fraction
        if fraction >= 1.0 or not self.roles:
            return UNLIMITED
        snap = await ledger.snapshot(task)
        busy = snap.busy - {scope.role}
        return role_free(scope.role, task.limit, self.roles, snap.by_role, busy, fraction)

    @asynccontextmanager
    async def reserve(self, prompt: int, want: int, n: int, spent: Usage) -> AsyncIterator[Grant]:
        """Reserve `prompt + n × completion` (completion ≤ `want`) or raise BudgetExceeded.

        The grant's `completion` is the limit to send; settle with `settle` inside the block.
        A block cut off (cancelled) settles the worst case; a failed request settles nothing.
        """
        scope, now, ledger = self.scope(), time.time(), self.ledger()
        pools = self.pools(scope, now)
        task = pools[0] if scope.task_id is not None else None
        free = UNLIMITED if task is None else await self._role_free(ledger, scope, task)
        floor = min(self.settings.budget_floor_tokens, want)
        rid = uuid.uuid4().hex
        room, blocker = await ledger.reserve(
            pools,
            rid=rid,
            prompt=prompt,
            want=want,
            n=n,
            floor=floor,
            ttl_s=self.settings.budget_reservation_ttl_s,
            role=scope.role,
            role_free=free,
        )
        if blocker:
            raise self._refusal(scope, pools, blocker, prompt + floor, spent, now)
        outcome = "sent" if room == want else "shortened"
        MODEL_BUDGET.labels(node=scope.role, tenant=scope.tenant or "-", outcome=outcome).inc()
        grant = Grant(rid, tuple(pools), prompt, room, n, scope.role)
        try:
            yield grant
        except LengthFinishReasonError as exc:
            used = exc.completion.usage
            tokens = used.total_tokens if used else grant.tokens
            await self.settle(ledger, grant, tokens, n)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            # Cut off mid-answer: the tokens may be spent, so the worst case stands.
            await asyncio.shield(self.settle(ledger, grant, grant.tokens, n))
            raise
        except BaseException:
            # A request that failed (429, 5xx, connection) bills nothing.
            await self.settle(ledger, grant, 0, n)
            raise

    async def settle(self, ledger: Ledger, grant: Grant, tokens: int, steps: int) -> None:
        """Replace the reservation by the usage; a model billing more is logged as overrun."""
        if tokens > grant.tokens:
            log.warning("model call billed %d tokens over its reservation", tokens - grant.tokens)
        await ledger.settle(grant, tokens=tokens, steps=steps)

    def _refusal(
        self, scope: CallScope, pools: list[Pool], blocker: int, need: int, spent: Usage, now: float
    ) -> BudgetExceeded:
        """The refusal naming the limit that blocked (remembered for the task's guard)."""
        reason, wait, limit = _why(scope, pools, blocker, need, now)
        if scope.task_id is not None:
            self.exhausted[scope.task_id] = reason
            self.exhausted.move_to_end(scope.task_id)
            while len(self.exhausted) > EXHAUSTED_KEPT:
                self.exhausted.popitem(last=False)
        outcome = f"refused_{limit}"
        MODEL_BUDGET.labels(node=scope.role, tenant=scope.tenant or "-", outcome=outcome).inc()
        return BudgetExceeded(reason, spent, retry_after_s=wait)

    async def spent_by_role(self, task_id: str) -> dict[str, int]:
        """Tokens each role of the task settled or holds reserved (for the report)."""
        return dict((await self.ledger().snapshot(task_pool(task_id))).by_role)

    def guard(
        self, model: BaseChatModel, count: Callable[[str], int] | None = None
    ) -> BudgetedChatModel:
        """`model` behind this budget (`count`: the serving model's tokenizer, if any)."""
        want = getattr(model, "max_tokens", None) or self.settings.max_completion_tokens
        return BudgetedChatModel(
            inner=model,
            budget=self,
            want=int(want),
            count=count,
            disable_streaming=model.disable_streaming,
        )


def _why(
    scope: CallScope, pools: list[Pool], blocker: int, need: int, now: float
) -> tuple[str, int, str]:
    """(reason, seconds until it may pass, which limit: role, task or tenant)."""
    if blocker == -1:
        share = f"the {scope.role} role used its share of the task's {scope.token_budget} tokens"
        return f"token budget: {share} (STRATEGOS_BUDGET_ROLE_MAX_FRACTION)", 0, "role"
    pool = pools[blocker - 1]
    if pool.key.startswith("task:"):
        left = f"fewer are left of the task's {scope.token_budget}"
        return (
            f"token budget spent: a {scope.role} call needs at least {need} tokens and {left}",
            0,
            "task",
        )
    wait = max(1, math.ceil(window_end(window_of(pool), now) - now))
    return f"{describe(pool, scope.tenant or '-')} is spent; it frees in {wait} s", wait, "tenant"


def _limited(kwargs: dict[str, Any], completion: int, want: int) -> dict[str, Any]:
    """The call's parameters with the granted completion limit, when it is not the model's own.

    Left out when the call got all it asked for, so a request (and a response-cache key) is
    what it was without the budget.
    """
    if completion == want and "max_tokens" not in kwargs:
        return kwargs
    return {**kwargs, "max_tokens": completion}


def _usage(result: ChatResult, n: int, limit: int) -> tuple[int, int]:
    """(prompt, completion) tokens the call used; `n` choices counted one by one."""
    message = result.generations[0].message if result.generations else None
    meta = getattr(message, "usage_metadata", None) or {}
    prompt, completion = int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0))
    if n > 1:  # a server may report one choice's tokens for all of them
        counted = sum(min(limit, estimate_tokens(text_of(g.message))) for g in result.generations)
        completion = max(completion, counted)
    return prompt, completion


class BudgetedChatModel(BaseChatModel):
    """A chat model whose every request is reserved in a `CallBudget` before it is sent."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseChatModel
    budget: CallBudget
    want: int
    count: Callable[[str], int] | None = None
    spent: Usage = ZERO
    """What this wrapper's calls cost so far (carried by a refusal)."""

    @property
    def _llm_type(self) -> str:
        return f"budgeted-{self.inner._llm_type}"

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """The inner model's tool binding (its format of the tools), sent through this one."""
        bound = self.inner.bind_tools(tools, **kwargs)
        extra = bound.kwargs if isinstance(bound, RunnableBinding) else {}
        return self.bind(**extra)

    async def _prompt_tokens(self, messages: list[BaseMessage]) -> int:
        """The larger of the tokenizer's count and len/3, per message, plus its overhead."""
        total = 0
        for message in messages:
            text = text_of(message)
            counted = await asyncio.to_thread(self.count, text) if self.count else 0
            total += max(counted, estimate_tokens(text)) + MESSAGE_OVERHEAD
        return total

    def _add(self, prompt: int, completion: int, n: int) -> None:
        self.spent = {
            "model_calls": self.spent["model_calls"] + n,
            "prompt_tokens": self.spent["prompt_tokens"] + prompt,
            "completion_tokens": self.spent["completion_tokens"] + completion,
        }

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise RuntimeError("a budgeted model is called asynchronously (ainvoke)")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        n = max(1, int(kwargs.get("n") or 1))
        want = int(kwargs.get("max_tokens") or self.want)
        prompt = await self._prompt_tokens(messages)
        async with self.budget.reserve(prompt, want, n, self.spent) as grant:
            limited = _limited(kwargs, grant.completion, want)
            result = await self.inner._agenerate(
                messages, stop=stop, run_manager=run_manager, **limited
            )
            used_prompt, completion = _usage(result, n, grant.completion)
            await self.budget.settle(self.budget.ledger(), grant, used_prompt + completion, n)
        self._add(used_prompt, completion, n)
        return result

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        want = int(kwargs.get("max_tokens") or self.want)
        prompt = await self._prompt_tokens(messages)
        async with self.budget.reserve(prompt, want, 1, self.spent) as grant:
            used_prompt = completion = 0
            async for chunk in self.inner._astream(
                messages, stop=stop, **_limited(kwargs, grant.completion, want)
            ):
                meta = getattr(chunk.message, "usage_metadata", None) or {}
                used_prompt += int(meta.get("input_tokens", 0))
                completion += int(meta.get("output_tokens", 0))
                yield chunk
            await self.budget.settle(self.budget.ledger(), grant, used_prompt + completion, 1)
        self._add(used_prompt, completion, 1)
