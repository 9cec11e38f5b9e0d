"""`strategos serve` takes its knobs from `Settings`: database, Redis keys, Aegra's timing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from service.cli import app
from service.rate_limits import LimitStore
from service.serving.serve import aegra_env, serve
from service.settings import SERVING_DATABASE_URL, SERVING_REDIS_URL, Settings, get_settings

REPO = Path(__file__).resolve().parents[2]


def test_serving_uses_the_configured_postgresql_else_the_local_default() -> None:
    assert Settings(database_url=None).serving_database_url() == SERVING_DATABASE_URL
    assert Settings(database_url="").serving_database_url() == SERVING_DATABASE_URL
    for url in ("postgresql://u@db:5432/prod", "postgres://u@db/prod"):
        assert Settings(database_url=url).serving_database_url() == url


def test_serving_refuses_a_configured_database_that_is_not_postgresql() -> None:
    settings = Settings(database_url="sqlite:///secret-path/ledger.sqlite")
    with pytest.raises(ValueError, match="needs PostgreSQL") as caught:
        settings.serving_database_url()
    assert "STRATEGOS_DATABASE_URL" in str(caught.value)
    assert "secret-path" not in str(caught.value)


def test_serving_redis_defaults_to_the_local_server() -> None:
    assert Settings(redis_url=None).serving_redis_url() == SERVING_REDIS_URL
    assert Settings(redis_url="redis://r:6380/2").serving_redis_url() == "redis://r:6380/2"


@pytest.mark.parametrize(
    ("prefix", "aegra"),
    [
        ("strategos", "strategos:aegra:"),
        ("strategos-test-ab12cd34", "strategos-test-ab12cd34:aegra:"),
        ("strategos-test:ab12cd34:", "strategos-test:ab12cd34:aegra:"),
    ],
)
def test_aegra_keys_live_under_the_prefix_apart_from_the_limit_store(
    prefix: str, aegra: str
) -> None:
    settings = Settings(redis_prefix=prefix)
    assert settings.aegra_redis_prefix() == aegra
    assert aegra.startswith(prefix)  # tests delete `{prefix}*`
    store = LimitStore(settings, None)
    for key in (store._key("rate", "t"), store._key("inflight"), store._key("model429", "1")):
        assert key.startswith(prefix)
        assert not key.startswith(aegra)


def test_aegra_env_derives_aegra_and_the_child_settings(tmp_path: Path) -> None:
    settings = Settings(
        database_url=None,
        redis_url=None,
        redis_prefix="p",
        aegra_lease_s=9,
        aegra_heartbeat_s=3,
        aegra_workers=2,
        checkpoint_retention_min=60.0,
    )
    config = tmp_path / "langgraph.json"
    env = aegra_env(settings, host="127.0.0.1", port=2099, config=config, base={"KEEP": "1"})
    assert env["KEEP"] == "1"
    assert env["AEGRA_CONFIG"] == str(config)
    assert env["PORT"] == "2099"
    assert env["DATABASE_URL"] == env["STRATEGOS_DATABASE_URL"] == SERVING_DATABASE_URL
    assert env["REDIS_URL"] == env["STRATEGOS_REDIS_URL"] == SERVING_REDIS_URL
    assert env["STRATEGOS_REDIS_PREFIX"] == "p"
    assert env["WORKER_QUEUE_KEY"] == "p:aegra:jobs"
    assert env["REDIS_CHANNEL_PREFIX"] == "p:aegra:run:"
    assert env["LEASE_DURATION_SECONDS"] == "9"
    assert env["HEARTBEAT_INTERVAL_SECONDS"] == "3"
    assert env["WORKER_COUNT"] == "2"
    assert '"default_ttl": 60.0' in env["AEGRA_THREAD_TTL"]


def test_the_lease_must_outlive_two_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="must exceed twice"):
        Settings(aegra_lease_s=4, aegra_heartbeat_s=2)
    monkeypatch.setenv("STRATEGOS_AEGRA_LEASE_S", "7")
    monkeypatch.setenv("STRATEGOS_AEGRA_HEARTBEAT_S", "3")
    assert (Settings().aegra_lease_s, Settings().aegra_heartbeat_s) == (7, 3)


def test_serve_stops_before_starting_anything_on_a_non_postgresql_database() -> None:
    settings = Settings(database_url=str(REPO / "nowhere.sqlite"))
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        serve("127.0.0.1", 2099, REPO / "langgraph.json", settings)


def test_the_cli_reports_a_non_postgresql_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATEGOS_DATABASE_URL", "sqlite:///ledger.sqlite")
    get_settings.cache_clear()
    sigterm = signal.getsignal(signal.SIGTERM)  # the CLI's callback replaces it
    try:
        result = CliRunner().invoke(app, ["serve", "--port", "2099"])
    finally:
        signal.signal(signal.SIGTERM, sigterm)
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "needs PostgreSQL" in result.output
