"""The CLI's report says why the task stopped and who spent what (scripted model)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cases_reply, cli_env, coder_reply, write_script
from tests.e2e.test_real_model import run_cli
from tests.integration.test_team_scripted import ADD_GOAL, WRONG_ADD


def test_the_report_shows_the_budget_reason_and_tokens_by_role(tmp_path: Path) -> None:
    rules = [
        {"role": "coder", "reply": coder_reply(WRONG_ADD + "# padding\n" * 40)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "supervisor", "reply": {"next": "coder", "reason": "keep trying"}},
    ]
    script = write_script(tmp_path / "s", rules)
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(script), STRATEGOS_MAX_ITERATIONS="50")
    args = ["run", ADD_GOAL, "--approve", "auto", "--out", str(tmp_path / "out")]
    done = run_cli([*args, "--token-budget", "3000"], env, 300)
    printed = " ".join(done.stdout.split())
    assert "stopped because token budget spent: a " in printed, done.stdout + done.stderr
    assert "of the task's 3000" in printed
    roles = printed.split("tokens by role ", 1)[1]
    spent = dict(zip(roles.split()[0:4:2], roles.split()[1:4:2], strict=True))
    assert set(spent) == {"coder", "tester"}
    assert sum(int(v.rstrip(",")) for v in spent.values()) <= 3000
