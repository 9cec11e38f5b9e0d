"""Pushing a task's events over its WebSocket (`/v1/tasks/{task_id}/stream`) until it ends.

The stream is a tail of the ledger, not of the run: it polls the task's event log after the
client's cursor, so a client that reconnects with its `last_event_id` misses nothing and sees
nothing twice, whichever instance it reaches. It ends once a terminal event is sent and the
server agrees the task is finished; while idle it reconciles, so a run whose driver died with its
instance still ends the stream. While PostgreSQL or Redis is unreachable it closes with 1013
(try again later) and the client resumes from its last event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from service.api.errors import ApiError
from service.api.outage import OUTAGE_TYPES, is_outage
from service.api.run_outcome import reconcile
from service.api.schemas import ErrorDetail, StreamMessage, event_view
from service.api.session import Session
from service.api.task_state import state_values, task_status, with_values

TERMINAL_KINDS = frozenset({"WorkflowCompleted", "WorkflowFailed"})
POLL_S = 0.2
RECONCILE_EVERY_S = 2.0


async def stream_error(ws: WebSocket, code: str, message: str, close_code: int) -> None:
    """Send an error message and close the socket (quietly, if the client is gone)."""
    msg = StreamMessage(type="error", error=ErrorDetail(code=code, message=message))
    with contextlib.suppress(Exception):
        await ws.send_json(msg.model_dump(mode="json", exclude_none=True))
        await ws.close(code=close_code)


async def pump_events(ws: WebSocket, sess: Session, task_id: str, cursor: int) -> None:
    """Send the ledger's events after `cursor` as they are appended, until the task ends."""
    closed = asyncio.Event()

    async def watch_close() -> None:
        with contextlib.suppress(Exception):
            while True:
                message = await ws.receive()
                if message.get("type") == "websocket.disconnect":
                    break
        closed.set()

    watcher = asyncio.create_task(watch_close())
    last_kind = ""
    if cursor > 0:
        previous = await sess.facade.ledger.events(task_id, cursor - 1, 1)
        last_kind = previous[0].kind if previous else ""
    last_check = time.monotonic()
    try:
        while not closed.is_set():
            events = await sess.facade.ledger.events(task_id, cursor, 200)
            for event in events:
                msg = StreamMessage(type="event", event=event_view(event))
                await ws.send_json(msg.model_dump(mode="json", exclude_none=True))
                cursor, last_kind = event.id, event.kind
            if last_kind in TERMINAL_KINDS and len(events) < 200:
                thread = await with_values(sess, await sess.thread(task_id))
                status_ = task_status(str(thread["status"]), state_values(thread), False)
                if status_ in ("completed", "failed"):
                    end = StreamMessage(type="end", status=status_)
                    await ws.send_json(end.model_dump(mode="json", exclude_none=True))
                    await ws.close()
                    return
            if not events:
                if time.monotonic() - last_check > RECONCILE_EVERY_S:
                    last_check = time.monotonic()
                    # The task may have been deleted, or its run's driver died with its
                    # instance: then this logs the outcome, and the stream can end.
                    await reconcile(sess, await sess.thread(task_id))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), POLL_S)
    except (WebSocketDisconnect, RuntimeError):
        return
    except ApiError as exc:
        await stream_error(ws, exc.code, exc.message, 4000 + min(exc.status_code, 999))
    except OUTAGE_TYPES as exc:
        if not is_outage(exc):
            raise
        # 1013 "try again later": the client reconnects with its last event id.
        await stream_error(ws, "unavailable", "a service the stream reads is unavailable", 1013)
    finally:
        watcher.cancel()
        if ws.application_state == WebSocketState.CONNECTED and closed.is_set():
            with contextlib.suppress(Exception):
                await ws.close()
