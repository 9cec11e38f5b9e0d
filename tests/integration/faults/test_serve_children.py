"""`strategos serve` leaves no process behind, however it is stopped.

An instance starts helpers on first use: FalkorDB for the memory graph and, with the embedded
model, `llama-server` (~2 GB). Stopping the service must stop them all: SIGTERM and SIGINT
(drained and stopped in order) and SIGKILL of `strategos serve` itself (the parent dying: no
code of ours runs, the kernel's parent-death signals must do it). Each test runs a real task,
so the helpers are really started, records every descendant of `strategos serve`, stops it,
and checks that none of them is left.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_script
from tests.integration.aegra import harness
from tests.integration.faults.conftest import KEY, fault_env
from tests.integration.faults.services import PostgresServer, RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

HELPER_TIMEOUT_S = 400.0
"""The real model loads slowly on a busy machine."""
GONE_TIMEOUT_S = 30.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, however deep."""
    found: set[int] = set()
    todo = children(pid)
    while todo:
        child = todo.pop()
        if child not in found:
            found.add(child)
            todo += children(child)
    return found


def program(pid: int) -> str:
    """The executable's name ('' once the process is gone)."""
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_until(check: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout_s:.0f}s")
        time.sleep(0.2)


@contextmanager
def instance(
    tmp: Path, pg: PostgresServer, redis_srv: RedisServer, *, scripted: bool = True
) -> Iterator[harness.Instance]:
    """One `strategos serve` with the memory graph on (and the scripted or the real model)."""
    prefix = f"strategos-test:{uuid.uuid4().hex[:8]}:"
    script = write_script(tmp / "script.json", harness.crash_rules(), latency_s=1.0)
    with harness.fresh_database(pg.url) as database_url:
        server_env = harness.server_env(tmp, database_url, script, prefix, redis_srv.url)
        server_env.update(fault_env(), STRATEGOS_MEMORY_GRAPH_ENABLED="true")
        if not scripted:
            del server_env["STRATEGOS_SCRIPTED_MODEL"]
        started = harness.start("solo", tmp, server_env)
        try:
            harness.wait_ready(started)
            yield started
        except BaseException:
            print(started.log_tail(80))
            raise
        finally:
            started.stop()
            harness.clean_redis(prefix, redis_srv.url)


def start_task(server: harness.Instance) -> None:
    created = httpx.post(
        f"{server.url}/v1/tasks",
        json={"goal": harness.GOAL, "options": {"approve": "auto"}},
        headers={"x-api-key": KEY},
        timeout=60.0,
    )
    assert created.status_code == 201, created.text


def helpers_started(server: harness.Instance, *names: str) -> set[int]:
    """The instance's descendants once every program in `names` runs among them."""
    found: set[int] = set()

    def up() -> bool:
        found.clear()
        found.update(descendants(server.proc.pid))
        programs = {program(pid) for pid in found}
        return all(name in programs for name in names)

    wait_until(up, f"{names} did not start:\n{server.log_tail()}", HELPER_TIMEOUT_S)
    return found


def stop_and_check(server: harness.Instance, signum: int, family: set[int]) -> None:
    """Send `signum` to `strategos serve` alone; nothing it started may survive."""
    names = {pid: program(pid) for pid in family}
    os.kill(server.proc.pid, signum)
    try:
        server.proc.wait(timeout=120)
        wait_until(
            lambda: not any(running(pid) for pid in family),
            f"left running after {signal.Signals(signum).name}: "
            f"{[names[p] for p in family if running(p)]}",
            GONE_TIMEOUT_S,
        )
    finally:  # a failed check must not leave them running either
        for pid in family:
            if running(pid) and program(pid) == names[pid]:
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_helper_outlives_serve(
    signum: int, tmp_path: Path, pg: PostgresServer, redis_srv: RedisServer
) -> None:
    with instance(tmp_path, pg, redis_srv) as server:
        start_task(server)
        family = helpers_started(server, "redis-server")
        assert server.child_pid() in family
        stop_and_check(server, signum, family)


@pytest.mark.model
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_llama_server_does_not_outlive_serve(
    signum: int, tmp_path: Path, pg: PostgresServer, redis_srv: RedisServer
) -> None:
    # No scripted model: the team's first model call starts the embedded llama-server.
    with instance(tmp_path, pg, redis_srv, scripted=False) as server:
        start_task(server)
        family = helpers_started(server, "llama-server")
        stop_and_check(server, signum, family)
