"""Async twins of the client's operations (issue 8 §2): an event loop never waits on
the store.

The store drivers flagmw uses (sqlite3, psycopg's pool, redis-py) are synchronous; each
twin here is the same operation with its store I/O in a worker thread
(:func:`asyncio.to_thread`) — one implementation, not a second client. What never does
I/O stays synchronous and cheap: ``is_enabled``/``value``/``resolve`` of what is loaded,
and ``poll()`` when the store's change token has not moved (a pushing store's listener
thread reads every change as it arrives, so step boundaries find it loaded).

:meth:`AsyncOperations.aready` is what an async run calls before it starts (the LangGraph
wrapper's ``ainvoke``/``astream`` do): it loads a change the token announces and the
overlays the run's context needs (a tenant never seen before in a 100k-tenant fleet), in
a worker thread, only when there is something to load.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flagmw.client.overlays import StoreOverlays
from flagmw.client.results import PublishResult
from flagmw.core.context import EvaluationContext
from flagmw.core.overrides import Override
from flagmw.core.runconfig import RunConfig
from flagmw.errors import FlagmwError

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.core.compiled import CompiledSnapshot, View

__all__ = ["AsyncOperations"]

R = TypeVar("R")


async def _to_thread(func: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
    """:func:`asyncio.to_thread`, with asyncio imported on first use (the ``flagmw``
    command and sync-only applications never load it: ~16 ms at start-up)."""
    import asyncio

    return await asyncio.to_thread(func, *args, **kwargs)


class AsyncOperations:
    """The ``a``-prefixed twins of :class:`~flagmw.client.FlagClient` (a mixin)."""

    _token: Any
    _view: View
    _canary: CompiledSnapshot | None
    _healthy: bool
    _retry_at: float
    clock: Callable[[], float]
    _change_token: Callable[[], Any]

    if TYPE_CHECKING:  # pragma: no cover - provided by the client

        def refresh(self, *, force: bool = False) -> bool: ...
        def poll(self) -> int: ...
        def resolve(
            self, ctx: EvaluationContext | None = None, *, at: float | None = None
        ) -> RunConfig: ...

    # -- what a run start needs ----------------------------------------------------------

    def _refresh_due(self) -> bool:
        if not self._healthy:
            return self.clock() >= self._retry_at
        try:
            return bool(self._change_token() != self._token)
        except FlagmwError:
            return True  # refresh() records the failure (in the worker thread)

    def _overlays_due(self, ctx: EvaluationContext) -> list[StoreOverlays]:
        docs = [self._view.compiled.document]
        canary = self._canary  # a config canary head: the run may be assigned either rev
        if canary is not None:
            docs.append(canary.document)
        out = []
        for doc in docs:
            for section, name in (("tenants", ctx.tenant_id), ("routes", ctx.route)):
                overlays = doc.get(section)
                if (
                    name is not None
                    and isinstance(overlays, StoreOverlays)
                    and name not in overlays.bodies
                    and name in overlays.names
                ):
                    out.append(overlays)
        return out

    def _load_for(self, ctx: EvaluationContext | None) -> None:
        if self._refresh_due():
            self.refresh()
        if ctx is not None:
            for overlays in self._overlays_due(ctx):
                name = ctx.tenant_id if overlays.section == "tenants" else ctx.route
                if name is not None:
                    overlays.get(name)

    async def aready(self, ctx: EvaluationContext | None = None) -> None:
        """Load, in a worker thread, what ``poll()`` and ``resolve(ctx)`` would read
        from the store now: a change the store's token announces, and ``ctx``'s tenant
        and route overlays when they are not loaded yet. Returns at once when there is
        nothing to load. Never raises for store problems (they are reported by
        ``status()``, as for ``poll``)."""
        if self._refresh_due() or (ctx is not None and self._overlays_due(ctx)):
            await _to_thread(self._load_for, ctx)

    async def apoll(self) -> int:
        """:meth:`poll` with its store reads in a worker thread."""
        await self.aready()
        return self.poll()

    async def aresolve(
        self, ctx: EvaluationContext | None = None, *, at: float | None = None
    ) -> RunConfig:
        """:meth:`resolve` with its store reads in a worker thread."""
        await self.aready(ctx)
        return self.resolve(ctx, at=at)

    # -- writes --------------------------------------------------------------------------

    def _sync(self) -> Any:
        """The client itself, typed loosely: its sync operations live in the other
        mixins of :class:`~flagmw.client.FlagClient`."""
        return self

    async def apublish(
        self, source: str | os.PathLike[str] | Mapping[str, Any], **kwargs: Any
    ) -> PublishResult:
        """:meth:`publish` in a worker thread (same arguments and errors)."""
        return await _to_thread(self._sync().publish, source, **kwargs)

    async def apublish_overlays(
        self, source: str | os.PathLike[str] | Mapping[str, Any], **kwargs: Any
    ) -> PublishResult:
        """:meth:`publish_overlays` in a worker thread (same arguments and errors)."""
        return await _to_thread(self._sync().publish_overlays, source, **kwargs)

    async def arollback(self, rev: int, **kwargs: Any) -> PublishResult:
        """:meth:`rollback` in a worker thread (same arguments and errors)."""
        return await _to_thread(self._sync().rollback, rev, **kwargs)

    async def akill(self, key: Any, **kwargs: Any) -> Override:
        """:meth:`kill` in a worker thread (same arguments and errors)."""
        return await _to_thread(self._sync().kill, key, **kwargs)

    async def aoverride(self, key: Any, value: Any, **kwargs: Any) -> Override:
        """:meth:`override` in a worker thread (same arguments and errors)."""
        return await _to_thread(self._sync().override, key, value, **kwargs)

    async def arenew(self, override_id: str, **kwargs: Any) -> Override:
        """:meth:`renew` in a worker thread (same arguments and errors)."""
        return await _to_thread(self._sync().renew, override_id, **kwargs)

    async def aend_override(self, override_id: str, **kwargs: Any) -> Override:
        """:meth:`end_override` in a worker thread (same arguments and errors)."""
        return await _to_thread(self._sync().end_override, override_id, **kwargs)
