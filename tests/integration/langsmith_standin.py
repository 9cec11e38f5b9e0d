"""A stand-in for LangSmith's HTTP API, on loopback: just enough to receive an experiment.

It answers what the `langsmith` client sends for an upload — `GET /info`, datasets, bulk
examples, sessions (projects and experiments), `POST /runs/batch` (and `/runs`) and feedback —
and keeps every body, so a test asserts what arrived. `/info` advertises the JSON batch endpoint
and no compressed or multipart ingestion. Anything else is recorded as unexpected and refused.
"""

from __future__ import annotations

import datetime
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TENANT = str(uuid.uuid4())


@dataclass
class Received:
    """Everything the stand-in was sent."""

    datasets: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    session_updates: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _app(got: Received) -> FastAPI:  # noqa: C901 - one small handler per endpoint
    app = FastAPI()

    @app.middleware("http")
    async def keys(request: Request, call_next: Any) -> Any:
        got.keys.add(request.headers.get("x-api-key", ""))
        return await call_next(request)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {
            "version": "0.10.0",
            "instance_flags": {},
            "batch_ingest_config": {
                "use_multipart_endpoint": False,
                "scale_up_qsize_trigger": 1000,
                "scale_up_nthreads_limit": 1,
                "scale_down_nempty_trigger": 4,
                "size_limit": 100,
                "size_limit_bytes": 20_971_520,
            },
        }

    @app.get("/datasets")
    async def find_datasets(name: str | None = None) -> list[dict[str, Any]]:
        return [d for d in got.datasets if name is None or d["name"] == name]

    @app.post("/datasets")
    async def create_dataset(request: Request) -> dict[str, Any]:
        body = await request.json()
        dataset = {**body, "id": str(uuid.uuid4()), "created_at": _now(), "modified_at": _now()}
        got.datasets.append(dataset)
        return dataset

    @app.post("/examples/bulk")
    async def create_examples(request: Request) -> list[dict[str, Any]]:
        body = await request.json()
        got.examples.extend(body)
        return [{"id": example["id"]} for example in body]

    @app.get("/sessions")
    async def find_sessions() -> list[dict[str, Any]]:
        return got.sessions[:1]

    @app.post("/sessions")
    async def create_session(request: Request) -> dict[str, Any]:
        body = await request.json()
        session = {**body, "tenant_id": TENANT, "start_time": _now()}
        got.sessions.append(session)
        return session

    @app.patch("/sessions/{session_id}")
    async def update_session(session_id: str, request: Request) -> dict[str, Any]:
        body = await request.json()
        got.session_updates.append({**body, "id": session_id})
        session = next(s for s in got.sessions if s["id"] == session_id)
        session.update({k: v for k, v in body.items() if v is not None})
        return session

    @app.post("/runs/batch")
    async def runs_batch(request: Request) -> dict[str, Any]:
        body = await request.json()
        got.runs.extend(body.get("post", []))
        return {}

    @app.post("/runs")
    async def create_run(request: Request) -> dict[str, Any]:
        got.runs.append(await request.json())
        return {}

    @app.post("/feedback")
    async def feedback(request: Request) -> dict[str, Any]:
        body = await request.json()
        got.feedback.append(body)
        return body

    @app.api_route("/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
    async def other(path: str, request: Request) -> JSONResponse:
        got.unexpected.append(f"{request.method} /{path}")
        return JSONResponse({"detail": "not in the stand-in"}, status_code=404)

    return app


@contextmanager
def langsmith_standin() -> Iterator[tuple[str, Received]]:
    """Serve the stand-in on a free loopback port; (its URL, what it received)."""
    got = Received()
    config = uvicorn.Config(_app(got), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the LangSmith stand-in did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", got
    finally:
        server.should_exit = True
        thread.join(timeout=10)
