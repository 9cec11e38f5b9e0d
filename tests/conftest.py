"""Shared fixtures: scripted models, isolated data dirs, PostgreSQL schemas, the local model."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service.llm.scripted import ScriptedChatModel

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("STRATEGOS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


OPEN_LEDGERS: list[Any] = []
"""Ledgers a test opened through a helper (`gateway_in`), closed when the test ends."""


@pytest.fixture(autouse=True)
async def _close_open_ledgers() -> AsyncIterator[None]:
    """Close a test's ledgers on its own loop: a worker thread left open would call back into
    the loop after the session closed it."""
    yield
    while OPEN_LEDGERS:
        await OPEN_LEDGERS.pop().close()


def pytest_configure(config: pytest.Config) -> None:
    """In-process tests keep their data (memory, graph, ledger) out of the user's data dir.

    LangSmith's pytest plugin runs `@pytest.mark.langsmith` tests in its local mode unless
    LANGSMITH_TEST_TRACKING is set: a key in the environment alone never uploads test results.
    """
    os.environ["STRATEGOS_DATA_DIR"] = tempfile.mkdtemp(prefix="strategos-tests-")
    os.environ.setdefault("LANGSMITH_TEST_TRACKING", "false")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop what in-process tests started there, then remove the session's data dir."""
    from service.deps import close_memory
    from service.serving.graph_server import stop_embedded

    close_memory()
    stop_embedded()
    shutil.rmtree(os.environ.get("STRATEGOS_DATA_DIR", ""), ignore_errors=True)


def coder_reply(code: str, summary: str = "") -> dict[str, Any]:
    """A scripted coder answer writing `solution.py`."""
    return {"files": [{"path": "solution.py", "content": code}], "summary": summary}


def cases_reply(*cases: tuple[str, Any]) -> dict[str, Any]:
    """A scripted tester answer: calls with their expected values as JSON values."""
    return {"cases": [{"call": call, "expected": expected} for call, expected in cases]}


def review_reply(
    verdict: str = "approve",
    problems: list[tuple[str, str, Any]] | None = None,
    wrong: list[int] | None = None,
) -> dict[str, Any]:
    """A scripted reviewer answer; problems are (description, call, expected) triples."""
    return {
        "verdict": verdict,
        "problems": [
            {"description": text, "call": call, "expected": expected}
            for text, call, expected in problems or []
        ],
        "wrong_tests": wrong or [],
    }


def write_script(path: Path, rules: list[dict[str, Any]], latency_s: float = 0.0) -> Path:
    """Write a scripted-model file usable through STRATEGOS_SCRIPTED_MODEL."""
    path.write_text(json.dumps({"rules": rules, "latency_s": latency_s}))
    return path


def scripted(rules: list[dict[str, Any]]) -> ScriptedChatModel:
    """An in-process scripted model."""
    return ScriptedChatModel.model_validate({"script": {"rules": rules}})


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh schema in the machine's PostgreSQL, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a `strategos` subprocess with its own data dir and no OpenAI settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STRATEGOS_"))}
    env["STRATEGOS_DATA_DIR"] = str(tmp_path / "data")
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "160"
    env.update(extra)
    return env
