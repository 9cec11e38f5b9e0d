"""Input is checked before any work: the graph's input schema, the CLI's arguments, errors.

The operator's incident: `input={}` gave `KeyError: 'goal'`, `{"goal": 5}` a `TypeError`,
`{"goal": ""}` ran the whole team; a bad `--out` failed only after the task ran, with a raw
traceback; a model exception printed a 240-line traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from graphs.state import MAX_GOAL_CHARS, InvalidTaskInputError
from service.exit_codes import ExitCode
from service.team_deps import compile_pipeline, graph
from tests.conftest import cli_env, scripted, write_script
from tests.e2e.cli_support import GOAL, RIGHT_ADD, add_script, output, strategos

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({}, "no goal and no chat message"),
        ({"goal": 5}, "goal: Input should be a valid string"),
        ({"goal": ""}, "goal: String should have at least 1 character"),
        ({"goal": " \n"}, "goal: must not be blank"),
        ({"goal": "x" * (MAX_GOAL_CHARS + 1)}, "at most 20000 characters"),
        ({"goal": GOAL, "entry_point": 3}, "entry_point: Input should be a valid string"),
    ],
)
async def test_the_graph_rejects_a_bad_input_before_any_model_call(
    tmp_path: Path, given: dict[str, Any], problem: str
) -> None:
    model = scripted([])  # any model call would raise ScriptMismatchError instead
    ctx = TeamContext(model=model, out_dir=str(tmp_path / "out"), use_memory=False)
    team = compile_pipeline(InMemorySaver())
    with pytest.raises(InvalidTaskInputError, match="invalid task input") as caught:
        await team.ainvoke(given, {"configurable": {"thread_id": "bad"}}, context=ctx)
    assert problem in str(caught.value)
    assert "\n" not in str(caught.value)
    assert model.calls == 0


def test_the_served_input_schema_states_the_constraints() -> None:
    schema = graph.get_input_jsonschema()
    # A goal, or a chat whose last human message is the goal: neither alone is required.
    assert "required" not in schema and "messages" in schema["properties"]
    goal = schema["properties"]["goal"]
    assert goal["type"] == "string" and goal["minLength"] == 1
    assert goal["maxLength"] == MAX_GOAL_CHARS


def test_a_bad_out_fails_before_the_task_starts(tmp_path: Path) -> None:
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "s.json")))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out, why in ((blocker, "is not a directory"), (blocker / "sub", "a file")):
        done = strategos(["run", GOAL, "--out", str(out), "--task-id", "o1"], env)
        assert done.returncode == ExitCode.USAGE, output(done)
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"error: --out {out} ") and why in line
        assert done.stdout == ""
    assert not (tmp_path / "data" / "tasks" / "o1").exists(), "nothing may be recorded"


def test_goals_come_from_a_file_or_stdin_and_are_checked(tmp_path: Path) -> None:
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(add_script(tmp_path / "s.json")))
    goal_file = tmp_path / "goal.txt"
    goal_file.write_text(GOAL)
    from_file = strategos(
        ["run", "--goal-file", str(goal_file), "--approve", "auto", "--out", str(tmp_path / "f")],
        env,
    )
    assert from_file.returncode == ExitCode.DELIVERED, output(from_file)
    assert (tmp_path / "f" / "solution.py").read_text() == RIGHT_ADD
    piped = strategos(
        ["run", "-", "--approve", "auto", "--out", str(tmp_path / "p")], env, stdin=GOAL
    )
    assert piped.returncode == ExitCode.DELIVERED, output(piped)
    assert (tmp_path / "p" / "solution.py").read_text() == RIGHT_ADD

    long_file = tmp_path / "long.txt"
    long_file.write_text("x" * (MAX_GOAL_CHARS + 1))
    cases = {
        "no goal": [],
        "empty goal": [" "],
        "long goal": ["--goal-file", str(long_file)],
        "missing file": ["--goal-file", str(tmp_path / "missing.txt")],
        "two goals": [GOAL, "--goal-file", str(goal_file)],
        "bad entry point": [GOAL, "--entry-point", "not a name"],
    }
    for name, args in cases.items():
        done = strategos(["run", *args], env, stdin="")
        assert done.returncode == ExitCode.USAGE, f"{name}: {output(done)}"
        assert len(done.stderr.strip().splitlines()) == 1, f"{name}: {output(done)}"
        assert done.stderr.startswith("error: "), f"{name}: {output(done)}"


def test_an_error_is_one_line_without_debug_and_a_traceback_with_it(tmp_path: Path) -> None:
    no_coder = write_script(tmp_path / "s.json", [])  # the model fails on the first call
    env = cli_env(tmp_path, STRATEGOS_SCRIPTED_MODEL=str(no_coder))
    run = ["run", GOAL, "--approve", "auto", "--out", str(tmp_path / "out")]
    quiet = strategos([*run, "--task-id", "e1"], env)
    assert quiet.returncode == ExitCode.ERROR, output(quiet)
    [line] = quiet.stderr.strip().splitlines()
    assert line.startswith("error: ScriptMismatchError: no scripted reply for role 'coder'")
    assert "`strategos resume e1`" in line and "--debug" in line

    loud = strategos(["--debug", *run, "--task-id", "e2"], env)
    assert loud.returncode == ExitCode.ERROR, output(loud)
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1].startswith("error: ScriptMismatchError")
