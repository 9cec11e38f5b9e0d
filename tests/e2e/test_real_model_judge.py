"""The reviewer judge on the real local model: a verdict in the agreed shape, whatever it says.

What the bundled model decides about a remark can change with a build or a prompt, so the test
asserts what the evaluation relies on — a boolean score with a reason for each labelled item,
the calls counted — and leaves how often it agrees with the labels to `strategos eval --judge`
(bench/results/judge-agreement.json).
"""

from __future__ import annotations

import pytest

from eval.judge_agreement import load_labelled
from eval.llm_judge import FEEDBACK_KEY, RemarkJudge
from service.llm.models import chat_model
from service.settings import get_settings

pytestmark = [pytest.mark.model, pytest.mark.slow]


async def test_the_judge_gives_a_boolean_verdict_with_a_reason_on_labelled_items() -> None:
    settings = get_settings().model_copy(update={"otel_exporter": "none"})
    judge = RemarkJudge(chat_model(settings))
    items = load_labelled()
    chosen = [next(i for i in items if i.sensible), next(i for i in items if not i.sensible)]
    for item in chosen:
        verdict = await judge(item.goal, item.code, item.remark)
        assert verdict["key"] == FEEDBACK_KEY
        assert isinstance(verdict["score"], bool), verdict
        assert verdict["comment"].strip(), verdict
    assert judge.model.usage["model_calls"] >= len(chosen)
    assert judge.model.usage["completion_tokens"] > 0
