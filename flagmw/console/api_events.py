"""``/api/v1/events``: live updates as server-sent events.

Every 0.2 s the stream reads the store's change token (cheap: a memory-mapped counter
for SQLite, the listener's last notification for PostgreSQL and Redis); when it moved,
or at least once a second (expiries move no token), it asks the store's change feed
(:mod:`flagmw.console.feed`: the audit log since the last look, and the state for
expiries) and sends ``rev``, ``override.created``, ``override.renewed``,
``override.ended`` and ``override.expired`` events, in the order they happened.

The first event is ``hello`` with the head rev and the ids in force. A comment line is
sent every 15 s so proxies keep the connection. ``limit`` ends the stream after that many
events (for scripts and tests).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from flagmw.console.auth import Principal, reader
from flagmw.console.feed import ChangeFeed
from flagmw.console.state import Console
from flagmw.errors import FlagmwError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["events"])
Reader = Annotated[Principal, Depends(reader)]

TICK = 0.2
FULL_LOOK = 1.0
HEARTBEAT = 15.0


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/events", operation_id="events", response_class=StreamingResponse)
async def events(
    request: Request,
    who: Reader,
    limit: Annotated[int | None, Query(ge=1, le=10_000)] = None,
) -> StreamingResponse:
    """A ``text/event-stream`` of new revs and overrides created, renewed, ended or
    expired (see the module docstring)."""
    console: Console = request.app.state.console
    store = console.store

    async def stream() -> AsyncIterator[str]:
        console.metrics.sse_clients += 1
        try:
            feed = await anyio.to_thread.run_sync(ChangeFeed, store, console.clock())
            sent = 0
            yield _sse(
                "hello",
                {
                    "rev": feed.state.head.rev if feed.state.head else None,
                    "overrides": [o.id for o in feed.state.overrides],
                },
            )
            last_look = last_beat = time.monotonic()
            while limit is None or sent < limit:
                await anyio.sleep(TICK)
                if await request.is_disconnected():
                    return
                now_m = time.monotonic()
                try:
                    moved = store.change_token() != feed.token
                except FlagmwError:
                    moved = False
                if moved or now_m - last_look >= FULL_LOOK:
                    last_look = now_m
                    try:
                        found = await anyio.to_thread.run_sync(feed.look, console.clock())
                    except FlagmwError:
                        continue
                    for name, data in found:
                        yield _sse(name, data)
                        sent += 1
                        last_beat = now_m
                        if limit is not None and sent >= limit:
                            return
                if now_m - last_beat >= HEARTBEAT:
                    last_beat = now_m
                    yield ": keep-alive\n\n"
        finally:
            console.metrics.sse_clients -= 1

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
