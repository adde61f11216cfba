"""The console's ASGI application: :func:`create_app`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagmw.console import (
    api_approvals,
    api_audit,
    api_events,
    api_flags,
    api_health,
    api_overrides,
    api_snapshots,
    api_tenants,
    pages,
    pages_actions,
)
from flagmw.console.problems import install_handlers, problem_response
from flagmw.console.state import Console
from flagmw.console.webhooks import Notifier, Webhook
from flagmw.core.registry import FlagRegistry
from flagmw.stores.base import Store

if TYPE_CHECKING:
    from flagmw.rollout.ticker import RolloutTicker

__all__ = ["MAX_BODY", "create_app"]

#: The largest request body accepted (bytes): a snapshot document fits; more is a 413.
MAX_BODY = 1_048_576

_HERE = Path(__file__).parent

_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class _TooLarge(Exception):
    pass


class _Guard:
    """Body size limit (413 as problem+json, before the route runs), security headers and
    ``Server-Timing: app;dur=<ms>`` (request in to response headers out) on every
    response, and the request counter of ``/metrics``."""

    #: the FastAPI application inside, and the notifier of its webhooks (if any)
    fastapi: FastAPI
    notifier: Notifier | None = None

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", ())).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await self._too_large(scope, receive, send)
            return
        seen = 0
        started = False
        t0 = time.perf_counter()

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > MAX_BODY:
                    raise _TooLarge
            return msg

        async def sending(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
                self.console.metrics.count(msg["status"])
                took = f"app;dur={(time.perf_counter() - t0) * 1000:.3f}".encode()
                msg["headers"] = [
                    *msg.get("headers", []),
                    *_SECURITY_HEADERS,
                    (b"server-timing", took),
                ]
            await send(msg)

        try:
            await self.app(scope, limited, sending)
        except _TooLarge:
            if not started:
                await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.console.metrics.count(413)
        resp = problem_response(413, f"the request body is over {MAX_BODY} bytes")
        await resp(scope, receive, send)


def create_app(
    store: Store,
    registry: FlagRegistry | None = None,
    *,
    environment: str = "production",
    max_ttl: str | float = "24h",
    clock: Callable[[], float] = time.time,
    secure_cookies: bool = False,
    webhooks: Sequence[Webhook] = (),
    webhook_backoff: float = 0.5,
    code_paths: Sequence[str] = (),
    rollout_ticker: RolloutTicker | None = None,
) -> Any:
    """The console (admin API and dashboard) on ``store``.

    Args:
        store: any store: memory, SQLite, PostgreSQL, Redis. The console reads and
            writes it through :class:`~flagmw.client.FlagClient` only.
        registry: the application's registry; None: the one stored with the head
            snapshot (followed when a publish changes it).
        environment: the environment values are resolved for.
        max_ttl: the longest TTL of a kill or override.
        clock: seconds since the epoch (tests inject one).
        secure_cookies: mark the session cookie ``Secure`` (served over TLS).
        webhooks: where to deliver every kill, override, publish and rollback
            (:mod:`flagmw.console.webhooks`; watched while the app runs, from its
            lifespan start to its end).
        webhook_backoff: the first retry delay of a failed delivery (seconds; doubles).
        code_paths: source trees the Hygiene page scans for unreferenced flags.
        rollout_ticker: runs the rollout controller while the app runs (lifespan start
            to end; ``flagmw serve --rollout-tick``); each advance, completion,
            rollback or pause is delivered to the webhooks as ``rollout.<action>``.

    Returns:
        a FastAPI application (ASGI), wrapped in the body-size and header guard; the
        FastAPI app itself is ``app.fastapi`` and the :class:`Console` ``app.console``.
    """
    console = Console(
        store,
        registry,
        environment=environment,
        max_ttl=max_ttl,
        clock=clock,
        secure_cookies=secure_cookies,
        code_paths=code_paths,
    )
    notifier = Notifier(console, list(webhooks), backoff=webhook_backoff) if webhooks else None
    if rollout_ticker is not None and notifier is not None and rollout_ticker.on_action is None:
        hooks = notifier
        rollout_ticker.on_action = lambda r: hooks.enqueue(f"rollout.{r.action}", asdict(r))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if notifier is not None:
            notifier.start()
        if rollout_ticker is not None:
            rollout_ticker.start()
        try:
            yield
        finally:
            if rollout_ticker is not None:
                rollout_ticker.stop()
            if notifier is not None:
                notifier.stop()

    api = FastAPI(
        lifespan=lifespan,
        title="flagmw console",
        version="1",
        description="The admin HTTP API of flagmw: flags with value and source, "
        "explain, snapshots, kills and overrides, audit, live events. Authenticate with "
        "`Authorization: Bearer <token>` (`flagmw token create`). Errors are "
        "application/problem+json.",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    api.state.console = console
    api.state.notifier = notifier
    install_handlers(api)
    for module in (
        api_health,
        api_flags,
        api_snapshots,
        api_approvals,
        api_tenants,
        api_overrides,
        api_audit,
        api_events,
    ):
        api.include_router(module.router)
    api.include_router(pages.router)
    api.include_router(pages_actions.router)
    api.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    guarded = _Guard(api, console)
    guarded.fastapi = api
    guarded.console = console
    guarded.notifier = notifier
    return guarded
