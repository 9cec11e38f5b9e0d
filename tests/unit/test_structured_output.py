"""structured_call: validated output, the bounded repair retry, and the coder's edit schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai import LengthFinishReasonError
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ValidationError

from nodes.coder import CodeEdit, FileEdit
from nodes.supervisor import RouteDecision
from service.llm.models import StructuredOutputError, structured_call
from service.llm.scripted import Script, ScriptedChatModel, ScriptRule

SYSTEM = "# role: coder@1\nReply with JSON only."
REPAIR = "That output was invalid"
GOOD_EDIT = {"files": [{"path": "solution.py", "content": "def f(x):\n    return x\n"}]}


def scripted(*rules: dict[str, Any]) -> ScriptedChatModel:
    return ScriptedChatModel(script=Script(rules=[ScriptRule(**rule) for rule in rules]))


async def test_valid_output_is_parsed_with_its_usage() -> None:
    model = scripted({"role": "coder", "reply": {**GOOD_EDIT, "summary": "identity"}})
    edit, usage = await structured_call(model, SYSTEM, "Write f.", CodeEdit)
    assert isinstance(edit, CodeEdit)
    assert edit.files[0].path == "solution.py"
    assert edit.files[0].content == "def f(x):\n    return x\n"
    assert edit.summary == "identity"
    assert usage["model_calls"] == 1
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert model.calls == 1


async def test_invalid_json_is_repaired_with_the_validation_error_shown() -> None:
    model = scripted(
        # Matches only the repair turn, and only if it quotes the error and names the schema.
        {
            "role": "supervisor",
            "when": [REPAIR, "Invalid JSON", "RouteDecision schema"],
            "reply": {"next": "deliver", "reason": "fixed"},
        },
        {"role": "supervisor", "reply": "Sure! I think we should deliver."},
    )
    system = "# role: supervisor@1\nReply with JSON only."
    decision, usage = await structured_call(model, system, "Decide.", RouteDecision, retries=2)
    assert decision == RouteDecision(next="deliver", reason="fixed")
    assert model.calls == 2
    assert usage["model_calls"] == 2


async def test_schema_violation_is_repaired_and_both_attempts_are_counted() -> None:
    model = scripted(
        {
            "role": "supervisor",
            "when": [REPAIR, "next: Input should be 'coder' or 'deliver'"],
            "reply": {"next": "coder", "reason": "try again"},
        },
        {"role": "supervisor", "reply": {"next": "tester"}},
    )
    system = "# role: supervisor@1\nReply with JSON only."
    decision, usage = await structured_call(model, system, "Decide.", RouteDecision)
    assert decision.next == "coder"
    assert usage["model_calls"] == 2

    # The tokens of both attempts add up: more than a single successful call costs.
    single = scripted({"role": "supervisor", "reply": {"next": "coder", "reason": "try again"}})
    _, one = await structured_call(single, system, "Decide.", RouteDecision)
    assert usage["prompt_tokens"] > one["prompt_tokens"]
    assert usage["completion_tokens"] > one["completion_tokens"]


@pytest.mark.parametrize("retries", [0, 1, 2])
async def test_always_invalid_output_raises_after_the_retry_budget(retries: int) -> None:
    model = scripted({"role": "coder", "reply": {"files": []}})
    with pytest.raises(StructuredOutputError) as caught:
        await structured_call(model, SYSTEM, "Write f.", CodeEdit, retries=retries)
    assert model.calls == retries + 1
    message = str(caught.value)
    assert "CodeEdit" in message
    assert f"after {retries + 1} attempts" in message
    assert "files" in message  # the last validation error is named


async def test_fenced_json_is_accepted() -> None:
    fenced = "```json\n" + json.dumps(GOOD_EDIT) + "\n```"
    model = scripted({"role": "coder", "reply": fenced})
    edit, usage = await structured_call(model, SYSTEM, "Write f.", CodeEdit, retries=0)
    assert edit.files[0].path == "solution.py"
    assert usage["model_calls"] == 1


async def test_bare_fence_without_language_is_accepted() -> None:
    fenced = "```\n" + json.dumps(GOOD_EDIT) + "\n```\n"
    model = scripted({"role": "coder", "reply": fenced})
    edit, _ = await structured_call(model, SYSTEM, "Write f.", CodeEdit, retries=0)
    assert edit.files[0].content.startswith("def f")


async def test_python_syntax_error_is_fed_back_to_the_coder() -> None:
    broken = {"files": [{"path": "solution.py", "content": "def f(x)\n    return x\n"}]}
    model = scripted(
        {"role": "coder", "when": [REPAIR, "SyntaxError"], "reply": GOOD_EDIT},
        {"role": "coder", "reply": broken},
    )
    edit, usage = await structured_call(model, SYSTEM, "Write f.", CodeEdit)
    assert edit.files[0].content == GOOD_EDIT["files"][0]["content"]
    assert usage["model_calls"] == 2


async def test_path_escaping_the_workspace_is_fed_back_to_the_coder() -> None:
    escaping = {"files": [{"path": "../evil.py", "content": "X = 1\n"}]}
    model = scripted(
        {"role": "coder", "when": [REPAIR, "relative inside the workspace"], "reply": GOOD_EDIT},
        {"role": "coder", "reply": escaping},
    )
    edit, _ = await structured_call(model, SYSTEM, "Write f.", CodeEdit)
    assert edit.files[0].path == "solution.py"
    assert model.calls == 2


@pytest.mark.parametrize("content", ["def f(x)\n    return x\n", "x = (1,\n", "  indented = 1\n"])
def test_file_edit_rejects_python_that_does_not_parse(content: str) -> None:
    with pytest.raises(ValidationError, match="SyntaxError"):
        FileEdit(path="solution.py", content=content)


def test_file_edit_error_names_the_file_and_line() -> None:
    with pytest.raises(ValidationError) as caught:
        FileEdit(path="pkg/mod.py", content="x = 1\ny = (\n")
    assert "pkg/mod.py line" in str(caught.value)


def test_file_edit_does_not_parse_non_python_files() -> None:
    edit = FileEdit(path="README.md", content="def f(x)\n")
    assert edit.content == "def f(x)\n"


@pytest.mark.parametrize(
    "path", ["../x.py", "a/../../x.py", "pkg/../x.py", "/etc/passwd", "/tmp/x.py", ".", "a/.."]
)
def test_file_edit_rejects_paths_outside_the_workspace(path: str) -> None:
    with pytest.raises(ValidationError, match="relative inside the workspace"):
        FileEdit(path=path, content="X = 1\n")


def test_file_edit_normalises_a_safe_relative_path() -> None:
    assert FileEdit(path="  ./pkg//mod.py ", content="X = 1\n").path == "pkg/mod.py"


def test_code_edit_needs_at_least_one_file() -> None:
    with pytest.raises(ValidationError):
        CodeEdit(files=[])
    with pytest.raises(ValidationError):
        FileEdit(path="solution.py", content="")


class _Verdict(BaseModel):
    verdict: str


class _CutOffOnce(ScriptedChatModel):
    """Raises what the OpenAI client raises when an answer hits max_tokens, then answers."""

    async def _agenerate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        if self.calls == 0:
            self.calls += 1
            completion = ChatCompletion.model_validate(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "m",
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "length",
                            "message": {"role": "assistant", "content": '{"verdict": "app'},
                        }
                    ],
                    "usage": {
                        "prompt_tokens": 300,
                        "completion_tokens": 1024,
                        "total_tokens": 1324,
                    },
                }
            )
            raise LengthFinishReasonError(completion=completion)
        return await super()._agenerate(messages, stop, run_manager, **kwargs)


async def test_an_answer_cut_off_at_the_length_limit_is_repaired_and_counted() -> None:
    model = _CutOffOnce.model_validate(
        {"script": {"rules": [{"role": "", "when": ["cut off"], "reply": {"verdict": "ok"}}]}}
    )
    parsed, usage = await structured_call(model, "system", "user", _Verdict, retries=1)
    assert parsed.verdict == "ok"
    assert usage["model_calls"] == 2
    assert usage["completion_tokens"] >= 1024, "the cut-off answer's tokens are counted"
