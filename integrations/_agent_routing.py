"""One ``create_agent`` model call under flags, for :mod:`flagmw.integrations.langchain`:
disabled tools hidden, and — with routes — the call routed by the route flag with the
fallback ladder.

The ladder is LangChain's own public ``ModelFallbackMiddleware``: it tries its models
in order, lets LangGraph's ``GraphBubbleUp`` (interrupts, drains) through, re-raises the
last error when every model failed, and before each attempt drops the provider cache
settings the target model does not accept (Anthropic ``cache_control``, Fireworks
session affinity, ``prompt_cache_key``: an outer middleware may have set them for the
agent's model). It always tries the agent's request first; here that first attempt is
answered by :class:`_AgentModelSkipped` without calling any model, so the primary route
is the first model really called, and it is sanitized like every fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from langchain.agents.middleware import ModelFallbackMiddleware
from langchain.agents.middleware.types import ExtendedModelResponse, ModelRequest, ModelResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langgraph.errors import GraphBubbleUp

from flagmw.core.runconfig import RunConfig
from flagmw.langgraph.routes import FALLBACK_USED_KEY, ROUTE_KEY, filter_tools, select_routes
from flagmw.langgraph.run import RunState
from flagmw.langgraph.tool_gate import Gate

log = logging.getLogger("flagmw")


class _AgentModelSkipped(Exception):
    """Stands for the agent's own model in the fallback ladder (never reaches a caller:
    the ladder goes on to the routes)."""


def _ai_message(result: Any) -> AIMessage | None:
    if isinstance(result, AIMessage):
        return result
    if isinstance(result, ExtendedModelResponse):
        result = result.model_response
    if isinstance(result, ModelResponse):
        for msg in reversed(result.result):
            if isinstance(msg, AIMessage):
                return msg
    return None


class _Attempts:
    """The routes tried in one call, in ladder order (the first attempt is the agent's
    own model, skipped)."""

    __slots__ = ("errors", "index", "names")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = names
        self.index = -1
        self.errors: list[Exception] = []

    def next(self) -> str:
        self.index += 1
        if self.index == 0:
            raise _AgentModelSkipped
        return self.names[self.index - 1]

    def failed(self, route: str, exc: Exception) -> None:
        self.errors.append(exc)
        log.warning("flagmw: model route %r failed (%s)", route, exc)


class ModelRouter:
    """Hides disabled tools from a model call and routes it (see the module docs).

    Args:
        routes: route name → chat model, or None to keep the agent's model.
        route_flag: the flag naming the primary route.
        fallbacks: a json flag holding the fallback ladder, or the ladder itself.
        tool_gates: gates by tool name for tools that cannot carry ``@gated``.
    """

    def __init__(
        self,
        routes: Mapping[str, BaseChatModel] | None,
        route_flag: str,
        fallbacks: str | Sequence[str] | None,
        tool_gates: Mapping[str, str | Gate] | None,
    ) -> None:
        self.routes = dict(routes) if routes is not None else None
        self.route_flag = route_flag
        self.fallbacks = fallbacks
        self.tool_gates = dict(tool_gates) if tool_gates is not None else None
        self._ladders: dict[tuple[str, ...], ModelFallbackMiddleware[Any, Any]] = {}

    def hide(self, request: ModelRequest[Any], rc: RunConfig) -> ModelRequest[Any]:
        """``request`` without the tools whose gates are off (and without a
        ``tool_choice`` that forces one of them)."""
        tools, tool_choice = filter_tools(
            request.tools, request.tool_choice, rc, gates=self.tool_gates
        )
        if len(tools) == len(request.tools):
            return request
        return request.override(tools=tools, tool_choice=tool_choice)

    def _ladder(self, rc: RunConfig) -> tuple[str, ...]:
        assert self.routes is not None
        primary, ladder = select_routes(
            rc, list(self.routes), flag=self.route_flag, fallbacks=self.fallbacks
        )
        return (primary, *ladder)

    def _fallback(self, names: tuple[str, ...]) -> ModelFallbackMiddleware[Any, Any]:
        mw = self._ladders.get(names)
        if mw is None:
            assert self.routes is not None
            mw = ModelFallbackMiddleware(*(self.routes[n] for n in names))
            self._ladders[names] = mw
        return mw

    def call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Any],
        run: RunState,
    ) -> Any:
        """Make the model call (sync)."""
        request = self.hide(request, run.rc)
        if self.routes is None:
            return handler(request)
        names = self._ladder(run.rc)
        tried = _Attempts(names)

        def attempt(req: ModelRequest[Any]) -> Any:
            route = tried.next()
            try:
                return handler(req)
            except GraphBubbleUp:
                raise
            except Exception as exc:
                tried.failed(route, exc)
                raise

        result = self._fallback(names).wrap_model_call(request, attempt)
        return _served(result, run, tried)

    async def acall(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[Any]],
        run: RunState,
    ) -> Any:
        """Make the model call (async)."""
        request = self.hide(request, run.rc)
        if self.routes is None:
            return await handler(request)
        names = self._ladder(run.rc)
        tried = _Attempts(names)

        async def attempt(req: ModelRequest[Any]) -> Any:
            route = tried.next()
            try:
                return await handler(req)
            except GraphBubbleUp:
                raise
            except Exception as exc:
                tried.failed(route, exc)
                raise

        result = await self._fallback(names).awrap_model_call(request, attempt)
        return _served(result, run, tried)


def _served(result: Any, run: RunState, tried: _Attempts) -> Any:
    """Stamp the route on the answer and record the ``model_route`` event."""
    route, primary = tried.names[tried.index - 1], tried.names[0]
    used = route != primary
    message = _ai_message(result)
    if message is not None:
        message.response_metadata = {
            **message.response_metadata,
            ROUTE_KEY: route,
            FALLBACK_USED_KEY: used,
        }
    first = tried.errors[0] if tried.errors else None
    run.event(
        "model_route",
        route=route,
        primary=primary,
        fallback_used=used,
        error=f"{type(first).__name__}: {first}" if used and first is not None else None,
    )
    return result
