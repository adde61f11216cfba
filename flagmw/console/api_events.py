"""``/api/v1/events``: live updates as server-sent events.

Every 0.2 s the stream reads the store's change token (cheap: a memory-mapped counter
for SQLite, the listener's last notification for PostgreSQL and Redis); when it moved,
or at least once a second (expiries move no token), it reads the state and sends what
changed since the last look:

* ``rev`` — ``{"rev", "parent_rev", "author", "message", "action"}``: a publish or rollback;
* ``override.created`` — the override (as in ``GET /api/v1/overrides``);
* ``override.ended`` / ``override.expired`` — ``{"id", "key", "scope_label", …}``;
* ``override.renewed`` — the override with its new expiry.

The first event is ``hello`` with the head rev and the ids in force. A comment line is
sent every 15 s so proxies keep the connection. ``limit`` ends the stream after that many
events (for scripts and tests).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from flagmw.console.auth import Principal, reader
from flagmw.console.state import Console
from flagmw.console.views import override_row
from flagmw.core.overrides import Override
from flagmw.errors import FlagmwError
from flagmw.stores.base import StoreState

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["events"])
Reader = Annotated[Principal, Depends(reader)]

TICK = 0.2
FULL_LOOK = 1.0
HEARTBEAT = 15.0


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def changes(
    store_get: Any, old: StoreState | None, new: StoreState, now: float
) -> list[tuple[str, Any]]:
    """The events between two reads of the store state."""
    out: list[tuple[str, Any]] = []
    old_head = old.head.rev if old and old.head else None
    if new.head is not None and new.head.rev != old_head and old is not None:
        h = new.head
        out.append(
            (
                "rev",
                {
                    "rev": h.rev,
                    "parent_rev": h.parent_rev,
                    "author": h.author,
                    "message": h.message,
                    "action": h.action,
                },
            )
        )
    before: dict[str, Override] = {o.id: o for o in old.overrides} if old else {}
    after = {o.id: o for o in new.overrides}
    if old is not None:
        for oid, ov in after.items():
            if oid not in before:
                out.append(("override.created", override_row(ov, now)))
            elif ov.expires_at != before[oid].expires_at:
                out.append(("override.renewed", override_row(ov, now)))
        for oid, ov in before.items():
            if oid not in after:
                with contextlib.suppress(FlagmwError):
                    ov = store_get(oid)
                name = "override.ended" if ov.ended_at is not None else "override.expired"
                out.append((name, override_row(ov, now)))
    return out


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
            state = await anyio.to_thread.run_sync(store.read_state, console.clock())
            token = state.token
            sent = 0
            yield _sse(
                "hello",
                {
                    "rev": state.head.rev if state.head else None,
                    "overrides": [o.id for o in state.overrides],
                },
            )
            last_look = last_beat = time.monotonic()
            while limit is None or sent < limit:
                await anyio.sleep(TICK)
                if await request.is_disconnected():
                    return
                now_m = time.monotonic()
                try:
                    moved = store.change_token() != token
                except FlagmwError:
                    moved = False
                if moved or now_m - last_look >= FULL_LOOK:
                    last_look = now_m
                    try:
                        new = await anyio.to_thread.run_sync(store.read_state, console.clock())
                    except FlagmwError:
                        continue
                    for name, data in changes(store.get_override, state, new, console.clock()):
                        yield _sse(name, data)
                        sent += 1
                        last_beat = now_m
                        if limit is not None and sent >= limit:
                            return
                    state, token = new, new.token
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
