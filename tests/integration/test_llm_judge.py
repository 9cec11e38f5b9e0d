"""The reviewer judge on the scripted model: its agreement with the labels, and the rule it obeys.

The judge (openevals' `create_async_llm_as_judge` behind the project's structured call) is
played by the scripted model, so the verdicts are chosen here: the agreement figures are then
exact, and the gating rule — the judge's score decides pass/fail only when its measured kappa
allows — is checked on a real trajectory run in which the referee asked a question.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console

from eval.judge_agreement import (
    KAPPA_THRESHOLD,
    MIN_ITEMS,
    JudgeStatus,
    agreement,
    judge_status,
    load_labelled,
    measure_agreement,
)
from eval.llm_judge import FEEDBACK_KEY, RemarkJudge, load_judge_prompt
from eval.trajectory_run import Case, run_trajectory_eval
from service.settings import Settings
from tests.conftest import REPO, cli_env, scripted, write_script
from tests.integration.test_selection_team import ODD, RIGHT, coder

ITEMS = load_labelled()
ROLE = load_judge_prompt().id.split("@")[0]


def judge_rule(when: str, score: bool, reasoning: str = "checked") -> dict[str, Any]:
    """A scripted verdict for the judge call whose prompt contains `when`."""
    return {"role": ROLE, "when": [when], "reply": {"reasoning": reasoning, "score": score}}


def test_the_labelled_set_is_varied_and_every_label_says_why() -> None:
    assert len(ITEMS) >= MIN_ITEMS
    assert len({item.id for item in ITEMS}) == len(ITEMS)
    sensible = sum(item.sensible for item in ITEMS)
    assert 0.3 <= sensible / len(ITEMS) <= 0.7  # both kinds, neither a token few
    assert all(item.goal and item.code and item.remark and item.why for item in ITEMS)


def test_agreement_is_accuracy_kappa_and_the_confusion_counts() -> None:
    labels = [True, True, True, False, False, False]
    perfect = agreement(labels, labels)
    assert (perfect["accuracy"], perfect["kappa"]) == (1.0, 1.0)
    always_yes = agreement(labels, [True] * 6)
    assert always_yes["accuracy"] == 0.5 and always_yes["kappa"] == 0.0  # no skill beyond chance
    found = agreement(labels, [True, True, False, False, False, True])
    assert found["confusion"] == {
        "true_positive": 2,
        "false_positive": 1,
        "false_negative": 1,
        "true_negative": 2,
    }
    assert found["accuracy"] == round(4 / 6, 3) and found["kappa"] == round(1 / 3, 3)
    missing = agreement(labels, [None, True, True, False, False, None])
    assert missing["no_verdict"] == 2 and missing["accuracy"] == round(4 / 6, 3)


def test_the_judge_counts_only_from_a_substantial_agreement_on_enough_items() -> None:
    assert judge_status(None) == "advisory"
    assert judge_status({"items": MIN_ITEMS, "kappa": KAPPA_THRESHOLD}) == "counted"
    assert judge_status({"items": MIN_ITEMS, "kappa": KAPPA_THRESHOLD - 0.01}) == "advisory"
    assert judge_status({"items": MIN_ITEMS - 1, "kappa": 1.0}) == "advisory"


async def test_the_judge_is_measured_against_every_label() -> None:
    wrong = {ITEMS[0].id, ITEMS[-1].id}  # the scripted judge disagrees on these two
    rules = [judge_rule(i.remark, i.sensible != (i.id in wrong), i.why) for i in ITEMS]
    model = scripted(rules)
    model.record = True
    found = await measure_agreement(ITEMS, model)
    assert found["items"] == len(ITEMS) and found["no_verdict"] == 0
    assert found["accuracy"] == round((len(ITEMS) - 2) / len(ITEMS), 3)
    assert found["kappa"] >= KAPPA_THRESHOLD and found["status"] == "counted"
    confusion = found["confusion"]
    assert confusion["false_negative"] == 1 and confusion["false_positive"] == 1
    assert found["prompt"] == load_judge_prompt().id
    assert found["usage"]["model_calls"] == len(ITEMS)
    first = "\n".join(model.recorded[0])
    assert ITEMS[0].goal in first and ITEMS[0].code.strip() in first and ITEMS[0].remark in first
    assert [row["reason"] for row in found["rows"]] == [item.why for item in ITEMS]


async def test_a_judge_that_cannot_answer_gives_no_verdict_not_a_crash() -> None:
    model = scripted([{"role": ROLE, "reply": "I think it is fine."}])
    verdict = await RemarkJudge(model)(ITEMS[0].goal, ITEMS[0].code, ITEMS[0].remark)
    assert verdict["key"] == FEEDBACK_KEY and verdict["score"] is None
    assert "no verdict" in verdict["comment"]


CLOSE_CALL = Case(
    id="referee-asked",
    goal="Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5",
    reference={
        "steps": [],
        "tools": [],
        "status": "delivered",
        "min_model_calls": 7,
    },
    settings={"sample_inputs": 8, "widen_rounds": 0},
    script=[
        coder(ODD, seed=102),
        coder(ODD, seed=103),
        coder("no code at all", seed=104),
        coder(RIGHT),
        {"role": "tester", "reply": {"calls": ["add(-1, -2)"]}},
        {"role": "reviewer", "when": ["Output A: -3"], "reply": {"answer": "A"}},
        judge_rule("Input: add(-1, -2)", False, "the goal settles it"),
    ],
    why="two clusters of two: the referee is asked which output the goal requires",
)


@pytest.mark.parametrize("status", ["counted", "advisory"])
async def test_the_judges_score_decides_pass_fail_only_when_it_counts(status: str) -> None:
    settings = Settings(otel_exporter="none")
    found = await run_trajectory_eval(
        [CLOSE_CALL], settings, False, Console(quiet=True), cast(JudgeStatus, status)
    )
    row = found["rows"][0]
    assert row["success"] and row["tool_validity"] and row["safety"]
    verdict = row["judge"]
    assert verdict["remarks"][0].startswith("Input: add(-1, -2). Output A is")
    assert verdict["score"] is False and verdict["status"] == status
    assert row["passed"] is (status == "advisory")
    assert found["totals"]["judge"] == status


def test_strategos_eval_judge_writes_the_agreement(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "judge.json", [judge_rule(i.remark, i.sensible) for i in ITEMS]
    )
    out = tmp_path / "agreement.json"
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script), STRATEGOS_OTEL_EXPORTER="none")
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "eval", "--judge", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kappa 1.00" in done.stdout and "counted" in done.stdout
    found = json.loads(out.read_text())
    assert found["model"] == "scripted" and found["accuracy"] == 1.0
    assert [row["id"] for row in found["rows"]] == [item.id for item in ITEMS]
    refused = subprocess.run(
        [sys.executable, "-m", "service.cli", "eval", "--judge", "--model", "scripted"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode != 0 and "--judge runs on the configured model" in refused.stderr
