"""A trajectory evaluation on the real local model: the easy case, whatever the model writes.

The scripted cases pin the team's exact paths; here the bundled model plays the "all agree"
case's goal. What the model writes varies, so the test asserts what the platform guarantees on
any run — the task ends delivered, every tool call was valid and safe, the judged run and the
delivery went through the gateway in that order, and the cost is counted — not the exact path.
"""

from __future__ import annotations

import pytest

from eval.trajectory import score
from eval.trajectory_run import load_cases, run_case
from service.llm.models import chat_model
from service.settings import get_settings

pytestmark = [pytest.mark.model, pytest.mark.slow]


async def test_the_real_team_on_an_easy_goal_leaves_a_valid_safe_trajectory() -> None:
    settings = get_settings().model_copy(update={"otel_exporter": "none"})
    case = next(c for c in load_cases() if c.id == "all-agree")
    trajectory, events = await run_case(case, settings, chat_model(settings))
    scores = score(trajectory, case.reference, events)
    assert scores.success, trajectory.report
    assert scores.tool_validity and scores.safety
    tools = [call.tool for call in trajectory.calls]
    assert tools[0] == "run_candidates" and tools[-1] == "deliver_files", tools
    assert scores.model_calls >= case.reference["min_model_calls"]
    assert scores.tokens > 0 and 0.0 < scores.step_efficiency <= 1.0
