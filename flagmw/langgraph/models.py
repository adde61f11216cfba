"""Routed models: a flag of the run chooses which chat model answers, per call.

``routed_model({"gpt-4o": big, "gpt-4o-mini": small}, flag="model.primary",
fallbacks="model.fallbacks")`` is a ``BaseChatModel`` facade (reference
``langgraph-integration.md`` §8, "Routed facade model"): it works in any graph, needs no
change to the graph or its nodes, and at every call

1. reads the run's RunConfig (:func:`flagmw.current`),
2. picks the primary route from ``flag`` and the fallback ladder from ``fallbacks``,
3. drops the tools whose gates are off (:mod:`flagmw.tools`) from the tools bound
   with ``bind_tools`` — a disabled tool is never offered to the model,
4. binds the kept tools to the route and calls it; when the route raises (anything but
   LangGraph's ``GraphBubbleUp``: interrupts and drains always propagate), the next
   route of the ladder is tried, and when every route failed the last error propagates,
5. records which route served: ``response_metadata["flagmw_route"]``,
   ``response_metadata["flagmw_fallback_used"]`` and a ``model_route`` run event.

The route's own run is traced as a child of the routed model's run and tagged
``nostream``, so ``stream_mode="messages"`` emits each token once (from the routed
model). With ``create_agent``, the middleware (:mod:`flagmw.integrations.langchain`)
can route with ``request.override(model=...)`` instead.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph.constants import TAG_NOSTREAM
from langgraph.errors import GraphBubbleUp
from pydantic import ConfigDict

from flagmw.core.registry import FlagRegistry
from flagmw.errors import UnknownRouteError
from flagmw.langgraph.routes import (
    FALLBACK_USED_KEY,
    ROUTE_KEY,
    check_route_flags,
    filter_tools,
    select_routes,
)
from flagmw.langgraph.run import current_run

__all__ = ["RoutedChatModel", "UnknownRouteError", "filter_tools", "routed_model", "select_routes"]

log = logging.getLogger("flagmw")


# -- the facade ------------------------------------------------------------------------


def _as_chunk(message: BaseMessage) -> AIMessageChunk:
    """A chunk for ``message`` (a route that cannot stream yields a whole message)."""
    if isinstance(message, AIMessageChunk):
        return message
    if isinstance(message, BaseMessageChunk) or not isinstance(message, AIMessage):
        return AIMessageChunk(content=message.content, id=message.id)
    import json

    return AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        usage_metadata=message.usage_metadata,
        id=message.id,
        tool_call_chunks=[
            {
                "name": tc["name"],
                "args": json.dumps(tc["args"]),
                "id": tc["id"],
                "index": i,
                "type": "tool_call_chunk",
            }
            for i, tc in enumerate(message.tool_calls)
        ],
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class RoutedChatModel(BaseChatModel):
    """A chat model whose target is chosen per call by a flag of the run.

    Build it with :func:`routed_model`. Attributes:

    Attributes:
        routes: route name → chat model.
        flag: the flag whose value names the primary route (an enum of the route
            names, ideally).
        fallbacks: a json flag holding the fallback ladder (a list of route names), or
            the ladder itself; None for no fallback.
        default_route: the route used outside a flagmw run (None: such a call raises
            :class:`~flagmw.NoRunConfigError`).
        tool_gates: extra tool gates by tool name or provider-tool type (see
            :func:`flagmw.tools.check_tool`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    routes: dict[str, BaseChatModel]
    flag: str
    fallbacks: str | list[str] | None = None
    default_route: str | None = None
    tool_gates: dict[str, str] | None = None

    @property
    def _llm_type(self) -> str:
        return "flagmw-routed"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"routes": list(self.routes), "flag": self.flag, "fallbacks": self.fallbacks}

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: Any = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools for every route. They are filtered by their gates at each call, in
        the run making the call, and converted by the route that serves it.

        Args:
            tools: tools in any form the routes' ``bind_tools`` accept.
            tool_choice: passed to the route (reset when it forces a hidden tool).
            kwargs: passed to the route's ``bind_tools``.
        """
        return self.bind(tools=list(tools), tool_choice=tool_choice, **kwargs)

    # -- per call ----------------------------------------------------------------------

    def _plan(self, kwargs: dict[str, Any]) -> tuple[str, Iterator[tuple[str, Runnable[Any, Any]]]]:
        """The primary route and ``[(route, bound route)]`` in the order to try them
        (routes are bound lazily: a fallback is only bound when it is needed)."""
        state = current_run(optional=True)
        rc = state.rc if state is not None else None
        primary, ladder = select_routes(
            rc,
            list(self.routes),
            flag=self.flag,
            fallbacks=self.fallbacks,
            default_route=self.default_route,
        )
        tools = kwargs.pop("tools", None)
        tool_choice = kwargs.pop("tool_choice", None)
        if tools is not None:
            tools, tool_choice = filter_tools(tools, tool_choice, rc, gates=self.tool_gates)

        def attempts() -> Iterator[tuple[str, Runnable[Any, Any]]]:
            for name in (primary, *ladder):
                yield name, self._bind(self.routes[name], tools, tool_choice, kwargs)

        return primary, attempts()

    @staticmethod
    def _bind(
        route: BaseChatModel, tools: list[Any] | None, tool_choice: Any, kwargs: dict[str, Any]
    ) -> Runnable[Any, Any]:
        if tools:
            if tool_choice is not None:
                return route.bind_tools(tools, tool_choice=tool_choice, **kwargs)
            return route.bind_tools(tools, **kwargs)
        # no tool left (or none bound): call the route without tools, as create_agent
        # does; an empty tools list is an error for some providers
        return route.bind(**kwargs) if kwargs else route

    @staticmethod
    def _config(
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    ) -> RunnableConfig:
        # The route's run is a child of ours (LLM run managers have no get_child, so it
        # is built as ParentRunManager.get_child does); `nostream` keeps LangGraph's
        # messages stream from emitting the route's tokens a second time.
        config: RunnableConfig = {"tags": [TAG_NOSTREAM]}
        if run_manager is not None:
            manager: BaseCallbackManager = (
                AsyncCallbackManager(handlers=[], parent_run_id=run_manager.run_id)
                if isinstance(run_manager, AsyncCallbackManagerForLLMRun)
                else CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
            )
            manager.set_handlers(run_manager.inheritable_handlers)
            manager.add_tags(run_manager.inheritable_tags)
            manager.add_metadata(run_manager.inheritable_metadata)
            config["callbacks"] = manager
        return config

    def _served(
        self, message: BaseMessage, route: str, primary: str, errors: list[BaseException]
    ) -> None:
        used = route != primary
        message.response_metadata = {
            **message.response_metadata,
            ROUTE_KEY: route,
            FALLBACK_USED_KEY: used,
        }
        state = current_run(optional=True)
        if state is not None:
            state.event(
                "model_route",
                route=route,
                primary=primary,
                fallback_used=used,
                error=_describe(errors[0]) if used and errors else None,
            )

    def _failed(self, route: str, exc: Exception, errors: list[BaseException]) -> None:
        errors.append(exc)
        log.warning("flagmw: model route %r failed (%s)", route, _describe(exc))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        primary, attempts = self._plan(kwargs)
        errors: list[BaseException] = []
        config = self._config(run_manager)
        for name, runnable in attempts:
            try:
                message = runnable.invoke(messages, config, stop=stop)
            except GraphBubbleUp:
                raise
            except Exception as exc:
                self._failed(name, exc, errors)
                continue
            self._served(message, name, primary, errors)
            return ChatResult(generations=[ChatGeneration(message=message)])
        raise errors[-1]

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        primary, attempts = self._plan(kwargs)
        errors: list[BaseException] = []
        config = self._config(run_manager)
        for name, runnable in attempts:
            try:
                message = await runnable.ainvoke(messages, config, stop=stop)
            except GraphBubbleUp:
                raise
            except Exception as exc:
                self._failed(name, exc, errors)
                continue
            self._served(message, name, primary, errors)
            return ChatResult(generations=[ChatGeneration(message=message)])
        raise errors[-1]

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # A fallback is possible until the route yields its first chunk; once tokens
        # have reached the caller, a failure propagates (they cannot be taken back).
        primary, attempts = self._plan(kwargs)
        errors: list[BaseException] = []
        config = self._config(run_manager)
        for name, runnable in attempts:
            stream = iter(runnable.stream(messages, config, stop=stop))
            try:
                first = next(stream, None)
            except GraphBubbleUp:
                raise
            except Exception as exc:
                self._failed(name, exc, errors)
                continue
            if first is None:  # pragma: no cover - a route that streams nothing
                first = AIMessageChunk(content="")
            chunk = _as_chunk(first)
            self._served(chunk, name, primary, errors)
            yield ChatGenerationChunk(message=chunk)
            for item in stream:
                yield ChatGenerationChunk(message=_as_chunk(item))
            return
        raise errors[-1]

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        primary, attempts = self._plan(kwargs)
        errors: list[BaseException] = []
        config = self._config(run_manager)
        for name, runnable in attempts:
            stream = runnable.astream(messages, config, stop=stop).__aiter__()
            try:
                first = await anext(stream, None)
            except GraphBubbleUp:
                raise
            except Exception as exc:
                self._failed(name, exc, errors)
                continue
            if first is None:  # pragma: no cover - a route that streams nothing
                first = AIMessageChunk(content="")
            chunk = _as_chunk(first)
            self._served(chunk, name, primary, errors)
            yield ChatGenerationChunk(message=chunk)
            async for item in stream:
                yield ChatGenerationChunk(message=_as_chunk(item))
            return
        raise errors[-1]


def routed_model(
    routes: Mapping[str, BaseChatModel],
    *,
    flag: str,
    fallbacks: str | Sequence[str] | None = None,
    default_route: str | None = None,
    tool_gates: Mapping[str, str] | None = None,
    registry: FlagRegistry | None = None,
) -> RoutedChatModel:
    """A chat model that picks its target per call from the run's RunConfig.

    Example::

        model = flagmw.routed_model(
            {"gpt-4o": ChatOpenAI(model="gpt-4o"), "gpt-4o-mini": ChatOpenAI(model="gpt-4o-mini")},
            flag="model.primary",          # enum flag: choices are the route names
            fallbacks="model.fallbacks",   # json flag: ["gpt-4o-mini"]
        )
        answer = model.bind_tools(tools).invoke(messages)   # inside a wrapped graph
        answer.response_metadata["flagmw_route"]            # 'gpt-4o'

    Args:
        routes: route name → chat model (at least one).
        flag: the flag whose value names the primary route.
        fallbacks: a json flag holding the fallback ladder (a list of route names)
            tried in order when the primary raises, or the ladder itself.
        default_route: the route used outside a flagmw run; without it such a call
            raises :class:`~flagmw.NoRunConfigError` (a run is required).
        tool_gates: extra tool gates by tool name or provider-tool type.
        registry: when given, checked now: the flags exist, ``flag`` is an enum (or
            string) flag whose choices are all routes, ``fallbacks`` is a json flag.

    Raises:
        ValueError: no routes, a route that is not a ``BaseChatModel``, or a
            ``default_route`` / literal fallback that is not a route.
        ValidationError: ``registry`` disagrees with the routes (every problem listed).
    """
    if not routes:
        raise ValueError("routed_model() needs at least one route")
    for name, model in routes.items():
        if not isinstance(model, BaseChatModel):
            raise ValueError(
                f"routed_model() route {name!r} is a {type(model).__name__}, not a BaseChatModel"
            )
    names = list(routes)
    if default_route is not None and default_route not in routes:
        raise ValueError(
            f"routed_model(default_route={default_route!r}) is not a route "
            f"(routes: {', '.join(names)})"
        )
    if fallbacks is not None and not isinstance(fallbacks, str):
        fallbacks = list(fallbacks)
        unknown = [f for f in fallbacks if f not in routes]
        if unknown:
            raise ValueError(
                f"routed_model(fallbacks=...) names {unknown}, which are not routes "
                f"(routes: {', '.join(names)})"
            )
    if registry is not None:
        check_route_flags(registry, names, flag, fallbacks)
    return RoutedChatModel(
        routes=dict(routes),
        flag=flag,
        fallbacks=fallbacks,
        default_route=default_route,
        tool_gates=dict(tool_gates) if tool_gates is not None else None,
    )
