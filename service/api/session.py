"""What the task API's routes share (`Facade`) and each request's view of the server (`Session`).

The façade keeps no task state of its own: the LangGraph server's threads are the truth and the
ledger is the event log. `Facade` holds the long-lived pieces (the ledger, one SDK client per
server URL, the background run drivers); `Session` pairs them with the caller's identity, so
every call to the server carries the caller's own key and the server's auth applies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import Thread, ThreadState, ThreadStatus

from service.api.errors import ApiError, upstream_error
from service.api.tenancy import Identity
from tools.ledger import Ledger

TASK_KIND = "strategos_task"
"""Thread metadata `kind` of façade tasks; other threads of the server are not tasks."""


class Facade:
    """What the routes share: the ledger, SDK clients per server URL, and the run drivers."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._clients: dict[str, LangGraphClient] = {}
        self._drivers: set[asyncio.Task[None]] = set()
        self._latest: dict[str, asyncio.Task[None]] = {}

    def client(self, url: str) -> LangGraphClient:
        """One SDK client per server URL; the caller's key travels per request."""
        if url not in self._clients:
            self._clients[url] = get_client(
                url=url,
                api_key=None,
                timeout=(30.0, 600.0, 30.0, 30.0),
            )
        return self._clients[url]

    def spawn(self, task_id: str, coro: Any) -> asyncio.Task[None]:
        """Keep a reference to a task's background driver until it ends."""
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._drivers.add(task)
        self._latest[task_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            self._drivers.discard(finished)
            if self._latest.get(task_id) is finished:
                del self._latest[task_id]

        task.add_done_callback(done)
        return task

    def driving(self, task_id: str) -> bool:
        """Whether a driver in this process is following the task's latest run."""
        task = self._latest.get(task_id)
        return task is not None and not task.done()

    async def settle(self, task_id: str, timeout_s: float = 15.0) -> None:
        """Wait until this process's driver of the task has logged its run's outcome.

        A client may see the thread waiting (the server's state) a moment before the driver
        has appended WorkflowPaused; answering in between would log the answer first.
        """
        task = self._latest.get(task_id)
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)

    async def close(self) -> None:
        """Stop drivers (their runs go on in the server) and close clients and the ledger."""
        for task in list(self._drivers):
            task.cancel()
        await asyncio.gather(*self._drivers, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        await self.ledger.close()


def _headers(identity: Identity) -> dict[str, str]:
    return {"x-api-key": identity.api_key} if identity.api_key else {}


class Session:
    """One request's view of the server: the caller's identity and an SDK client."""

    def __init__(self, facade: Facade, identity: Identity, url: str) -> None:
        self.facade = facade
        self.identity = identity
        self.client = facade.client(url)
        self.headers = _headers(identity)

    async def thread(self, task_id: str) -> Thread:
        """The tenant's task thread, or 404 (also for threads that are not façade tasks)."""
        try:
            thread = await self.client.threads.get(task_id, headers=self.headers)
        except httpx.HTTPStatusError as exc:
            raise upstream_error(exc, "task") from None
        metadata = thread.get("metadata") or {}
        if metadata.get("kind") != TASK_KIND or metadata.get("tenant") != self.identity.tenant:
            raise ApiError(404, "not_found", "task not found")
        return thread

    async def state(self, task_id: str) -> ThreadState:
        """The thread's current state."""
        try:
            return await self.client.threads.get_state(task_id, headers=self.headers)
        except httpx.HTTPStatusError as exc:
            raise upstream_error(exc, "task") from None

    async def active_tasks(self, cap: int) -> int:
        """Tasks of this tenant running, queued or waiting for approval, counted up to `cap`.

        A bounded search rather than `threads.count`, which not every server implements
        (Aegra 0.11 has no `/threads/count`).
        """
        metadata = {"kind": TASK_KIND, "tenant": self.identity.tenant}
        statuses: Sequence[ThreadStatus] = ("busy", "interrupted")
        active = 0
        try:
            for status_ in statuses:
                found = await self.client.threads.search(
                    metadata=metadata, status=status_, limit=cap, headers=self.headers
                )
                active += len(found)
        except httpx.HTTPStatusError as exc:
            raise upstream_error(exc, "tasks") from None
        return min(active, cap)
