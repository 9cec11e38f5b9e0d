"""`STRATEGOS_SANDBOX` chooses the backend the team's tools run in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from graphs.context import TeamContext
from service import deps
from service.settings import Settings, get_settings
from tools.sandbox import LocalSandbox
from tools.sandbox.e2b import E2BSandbox
from tools.sandbox.executor import ExecutorServer
from tools.sandbox.gvisor import GVisorSandbox


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    deps._default_sandbox.cache_clear()
    yield
    get_settings.cache_clear()
    deps._default_sandbox.cache_clear()


@pytest.mark.parametrize(("name", "kind"), [("local", LocalSandbox), ("gvisor", GVisorSandbox)])
async def test_the_setting_picks_the_backend_and_it_runs_code(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None, name: str, kind: type
) -> None:
    monkeypatch.setenv("STRATEGOS_SANDBOX", name)
    sandbox = await deps.get_sandbox(TeamContext())
    assert isinstance(sandbox, kind)
    result = await sandbox.run_python({"main.py": "print(6 * 7)"}, "main.py")
    assert result.stdout.strip() == "42"


def test_an_unknown_backend_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATEGOS_SANDBOX", "docker")
    with pytest.raises(ValidationError, match="'local', 'gvisor' or 'e2b'"):
        Settings()


async def test_e2b_is_configured_from_the_settings_alone(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    """The executor URL and key come from Settings; the SDK reads no variable of its own."""
    with ExecutorServer() as executor:
        monkeypatch.setenv("STRATEGOS_SANDBOX", "e2b")
        monkeypatch.setenv("E2B_SANDBOX_URL", executor.url)
        monkeypatch.setenv("E2B_API_KEY", "e2b_" + "0" * 40)
        options = get_settings().sandbox_options()
        assert options["sandbox_url"] == executor.url and options["debug"] is True
        for name in ("E2B_SANDBOX_URL", "E2B_API_KEY"):  # the SDK cannot fall back on them
            monkeypatch.delenv(name)
        sandbox = await deps.get_sandbox(TeamContext())
        assert isinstance(sandbox, E2BSandbox)
        result = await sandbox.run_python({"main.py": "print(6 * 7)"}, "main.py")
        assert result.stdout.strip() == "42"
