"""The architecture router's table: auto, allowed, forbidden and a mismatched input, each case.

What a run asks for decides which agent works on it; a wrong answer either runs an agent the
operator switched off or hands a repository to an agent that writes one function.
"""

from __future__ import annotations

import pytest

from graphs.architectures import (
    ARCHITECTURE_NAMES,
    ARCHITECTURES,
    check_names,
    choose_architecture,
    input_kind,
    takes,
)
from service.architecture_entry import cli_architecture
from service.settings import Settings

ALL = set(ARCHITECTURE_NAMES)
REPO = True
FUNCTION = False


def test_the_registry_names_every_architecture_with_its_input() -> None:
    assert {name: arch.takes for name, arch in ARCHITECTURES.items()} == {
        "team": "function",
        "selection": "function",
        "tree_of_thoughts": "function",
        "react": "repository",
        "plan_and_solve": "repository",
        "repo_agent": "repository",
        "reflexion": "repository",
    }


@pytest.mark.parametrize(
    ("requested", "has_repo", "allowed", "chosen"),
    [
        ("auto", REPO, ALL, "plan_and_solve"),
        ("auto", FUNCTION, ALL, "selection"),
        ("auto", REPO, {"repo_agent", "team"}, "repo_agent"),  # plan_and_solve switched off
        ("auto", FUNCTION, {"team", "repo_agent"}, "team"),
        ("auto", FUNCTION, {"tree_of_thoughts"}, "tree_of_thoughts"),
        ("team", FUNCTION, ALL, "team"),
        ("selection", FUNCTION, {"selection"}, "selection"),
        ("tree_of_thoughts", FUNCTION, ALL, "tree_of_thoughts"),
        ("react", REPO, ALL, "react"),
        ("repo_agent", REPO, ALL, "repo_agent"),
        ("reflexion", REPO, {"reflexion"}, "reflexion"),
        ("plan_and_solve", REPO, ALL, "plan_and_solve"),
    ],
)
def test_allowed_requests_that_fit_the_input_are_routed(
    requested: str, has_repo: bool, allowed: set[str], chosen: str
) -> None:
    assert choose_architecture(requested, has_repo, allowed) == chosen


@pytest.mark.parametrize(
    ("requested", "has_repo", "allowed", "says"),
    [
        ("selection", FUNCTION, {"team"}, "'selection' is not allowed here"),
        ("react", REPO, {"repo_agent", "team"}, "'react' is not allowed here"),
        ("swarm", FUNCTION, ALL, "unknown architecture 'swarm'"),
        ("", FUNCTION, ALL, "unknown architecture ''"),
        ("repo_agent", FUNCTION, ALL, "'repo_agent' takes a repository"),
        ("plan_and_solve", FUNCTION, ALL, "this task is one function goal"),
        ("team", REPO, ALL, "'team' takes one function goal"),
        ("tree_of_thoughts", REPO, ALL, "this task is a repository"),
        ("auto", REPO, {"team", "selection"}, "no allowed architecture takes a repository"),
        ("auto", FUNCTION, {"react"}, "no allowed architecture takes one function goal"),
        ("auto", FUNCTION, set(), "allowed: none"),
    ],
)
def test_forbidden_unknown_or_mismatched_requests_name_the_allowed_ones(
    requested: str, has_repo: bool, allowed: set[str], says: str
) -> None:
    with pytest.raises(ValueError, match="allowed") as refused:
        choose_architecture(requested, has_repo, allowed)
    assert says in str(refused.value)
    for name in allowed:  # the allowed ones that fit the input are named
        if takes(name) == input_kind(has_repo):
            assert name in str(refused.value)


def test_a_mismatch_offers_only_the_allowed_architectures_that_fit() -> None:
    with pytest.raises(ValueError) as refused:
        choose_architecture("team", REPO, {"team", "repo_agent", "react"})
    assert "that fit (react, repo_agent)" in str(refused.value)


def test_auto_takes_a_callers_preference_first_when_it_is_allowed_and_fits() -> None:
    assert choose_architecture("auto", FUNCTION, ALL, prefer=("team",)) == "team"
    assert choose_architecture("auto", FUNCTION, ALL - {"team"}, prefer=("team",)) == "selection"
    assert choose_architecture("auto", REPO, ALL, prefer=("team", "react")) == "react"


def test_the_operators_cap_and_default_refuse_unknown_names_at_start() -> None:
    assert check_names(["team", "react"]) == ["team", "react"]
    with pytest.raises(ValueError, match="unknown architectures swarm"):
        Settings(architectures_allowed=["team", "swarm"])
    with pytest.raises(ValueError, match="unknown architectures hive"):
        Settings(architecture_default="hive")
    assert Settings().architectures_allowed == list(ARCHITECTURE_NAMES)


@pytest.mark.parametrize(
    ("requested", "team", "has_repo", "settings", "chosen"),
    [
        (None, None, FUNCTION, {}, "team"),  # the CLI's configured team, as before
        (None, None, FUNCTION, {"team": "selection"}, "selection"),
        (None, None, REPO, {}, "repo_agent"),  # the repository agent, as before
        (None, None, FUNCTION, {"architecture_default": "selection"}, "selection"),
        (None, "selection", FUNCTION, {}, "selection"),
        ("auto", "selection", FUNCTION, {}, "selection"),
        ("team", None, FUNCTION, {"team": "selection"}, "team"),
        (None, None, FUNCTION, {"architectures_allowed": ["selection"]}, "selection"),
        (
            None,
            None,
            REPO,
            {"architectures_allowed": ["plan_and_solve", "repo_agent"]},
            "repo_agent",
        ),
    ],
)
def test_the_cli_keeps_its_defaults_under_auto_and_honours_a_choice(
    requested: str | None,
    team: str | None,
    has_repo: bool,
    settings: dict[str, object],
    chosen: str,
) -> None:
    assert cli_architecture(requested, team, has_repo, Settings(**settings)) == chosen  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("requested", "team", "has_repo", "says"),
    [
        ("react", None, REPO, "'react' is served (graph `strategos`), not run from the CLI"),
        ("selection", "pipeline", FUNCTION, "give --architecture or --team, not both"),
        (None, "swarm", FUNCTION, "--team must be pipeline or selection, not 'swarm'"),
        ("repo_agent", None, FUNCTION, "'repo_agent' takes a repository"),
    ],
)
def test_the_cli_refuses_what_it_cannot_run(
    requested: str | None, team: str | None, has_repo: bool, says: str
) -> None:
    with pytest.raises(ValueError) as refused:
        cli_architecture(requested, team, has_repo, Settings())
    assert says in str(refused.value)
