"""LLM-as-judge: whether a reviewer's remark makes sense for this goal and this code.

Code checks whether a task took its reference path; it cannot check whether the reviewer's
critique (pipeline team) or question (the selection team's referee) is about the goal and the
code at all, or right about Python. An openevals judge (`create_async_llm_as_judge`) asks the
project's own chat model, with the versioned prompt `eval/prompts/reviewer_judge@N.md`, for a
boolean score and its reason.

openevals calls `judge.with_structured_output(schema)`. The project's models answer structured
calls through `service.llm.models.structured_call` instead (JSON-schema constrained output with
a repair retry, which a 1.5B model needs, and the only structured path the scripted model
speaks), so `StructuredJudge` puts that call behind openevals' interface.

Whether the judge's score may decide anything is measured, not assumed: see
`eval.judge_agreement`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from openevals.llm import create_async_llm_as_judge
from pydantic import BaseModel, Field

from graphs.state import Usage, add_usage
from nodes.prompts import load_prompt
from service.llm.models import StructuredOutputError, structured_call

__all__ = [
    "FEEDBACK_KEY",
    "PROMPT_DIR",
    "PROMPT_NAME",
    "JudgePrompt",
    "RemarkJudge",
    "StructuredJudge",
    "Verdict",
    "load_judge_prompt",
]

PROMPT_DIR = Path(__file__).parent / "prompts"
PROMPT_NAME = "reviewer_judge"
FEEDBACK_KEY = "reviewer_remark_sensible"


@dataclass(frozen=True)
class JudgePrompt:
    """The judge's instructions (system) and the template the item fills in (user)."""

    id: str
    system: str
    template: str


@cache
def load_judge_prompt(version: int | None = None) -> JudgePrompt:
    """`reviewer_judge@version` (the newest when None): a `---` line splits system from user.

    Loaded by the project's prompt registry (`nodes.prompts`: the role line, newest version),
    so results can say which prompt judged and the scripted model can tell its calls apart.
    """
    prompt = load_prompt(PROMPT_NAME, version, directory=PROMPT_DIR)
    system, sep, template = prompt.text.partition("\n---\n")
    if not sep:
        raise ValueError(f"{prompt.id}.md needs a '---' line between system and user")
    return JudgePrompt(id=prompt.id, system=system, template=template.strip())


class Verdict(BaseModel):
    """The judge's answer, in openevals' default shape (reasoning first: it reasons, then says)."""

    reasoning: str = Field(max_length=1500)
    score: bool


class StructuredJudge(BaseChatModel):
    """A project chat model as openevals' judge: structured answers via `structured_call`."""

    inner: BaseChatModel
    retries: int = 2
    usage: Usage = Field(
        default_factory=lambda: Usage(model_calls=0, prompt_tokens=0, completion_tokens=0)
    )
    """What every judge call cost so far (the results report it)."""

    @property
    def _llm_type(self) -> str:
        return "strategos-judge"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self.inner._generate(messages, stop=stop, **kwargs)

    def with_structured_output(
        self, schema: dict[str, Any] | type, *, include_raw: bool = False, **kwargs: Any
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Answer openevals' default boolean schema with a validated `Verdict` dict."""
        fields = set(schema.get("properties", {})) if isinstance(schema, dict) else set()
        if fields != set(Verdict.model_fields) or include_raw:
            raise ValueError(f"the judge answers {sorted(Verdict.model_fields)} only")

        def sync(_: LanguageModelInput) -> dict[str, Any] | BaseModel:
            raise TypeError("the reviewer judge is async: use create_async_llm_as_judge")

        return RunnableLambda(sync, afunc=self._answer)

    async def _answer(self, given: LanguageModelInput) -> dict[str, Any] | BaseModel:
        """Answer the OpenAI-style message dicts openevals sends, as (system, user)."""
        messages = cast(Sequence[Mapping[str, Any]], given)
        system = "\n\n".join(str(m["content"]) for m in messages if m.get("role") == "system")
        user = "\n\n".join(str(m["content"]) for m in messages if m.get("role") != "system")
        try:
            verdict, usage = await structured_call(
                self.inner, system, user, Verdict, retries=self.retries
            )
        except StructuredOutputError as exc:
            self.usage = add_usage(self.usage, exc.usage)
            raise
        self.usage = add_usage(self.usage, usage)
        return verdict.model_dump()


class RemarkJudge:
    """The openevals evaluator over one prompt version, on one chat model."""

    def __init__(self, model: BaseChatModel, version: int | None = None) -> None:
        self.prompt = load_judge_prompt(version)
        self.model = StructuredJudge(inner=model)
        self._evaluate = create_async_llm_as_judge(
            prompt=self.prompt.template,
            system=self.prompt.system,
            judge=self.model,
            feedback_key=FEEDBACK_KEY,
        )

    async def __call__(self, goal: str, code: str, remark: str) -> dict[str, Any]:
        """`{"key", "score": bool | None, "comment"}`; None when no valid verdict came back.

        A model that cannot produce the verdict is a measured failure of the judge (the
        agreement counts it against the judge), not a crash of the evaluation.
        """
        try:
            result = await self._evaluate(
                outputs=remark, goal=goal, code=code.rstrip(), remark=remark
            )
        except StructuredOutputError as exc:
            return {"key": FEEDBACK_KEY, "score": None, "comment": f"no verdict: {exc}"[:300]}
        found = result[0] if isinstance(result, list) else result
        return {
            "key": FEEDBACK_KEY,
            "score": bool(found["score"]),
            "comment": str(found.get("comment") or ""),
        }
