"""``flagmw.wrap``: run-pinned flag configuration inside a LangGraph graph.

``wrap(graph, client)`` returns a copy of a compiled graph (same class, same API:
``invoke``, ``ainvoke``, ``stream``, ``astream``, ``batch``, ``get_state``,
``update_state``, ``with_config``, ``astream_events`` …) in which every run

* **pins** a :class:`~flagmw.runconfig.RunConfig`: resolved once when the run starts
  with new input, written into the metadata of the run's first checkpoint (as JSON
  primitives, key ``flagmw.pin``), and rehydrated — with its ``config_hash`` verified —
  when the run resumes (``Command(resume=...)``, ``invoke(None)`` after a crash, in
  another process or on another worker sharing the checkpointer);
* exposes it to every node, tool and model call through ``flagmw.current()`` (the
  :class:`~flagmw.run.RunState` is made current around each stretch of execution, and
  travels in ``config["configurable"][RUN_KEY]`` for the checkpointer and tools);
* re-resolves **hot** flags at every step boundary through LangGraph's own
  :class:`~langgraph.runtime.RunControl`, and **drains** the run (LangGraph saves the
  checkpoint and stops before the next superstep) when a run-kill flag turns off;
* reports its lifecycle and events to :class:`~flagmw.run.RunObserver` objects (the
  trace writer is one).

Why these mechanisms (verified against langgraph 1.2, see
``shared/reference/langgraph-integration.md``): ``Pregel.stream`` / ``astream`` are the
single entry point of every run (``invoke``, ``batch`` and ``astream_events`` go
through them), so the wrapper is a dynamic subclass of the graph's own class that
overrides those two, constructed the way ``Pregel.copy`` does. The pin cannot live in a
state channel or in run-wide ``config["metadata"]``: checkpointers serialise those at
every step, so the cost would grow with the number of steps; instead a checkpointer
delegate adds it to exactly one checkpoint per run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import (
    AsyncIterator,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextvars import ContextVar
from typing import Any, Literal, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
)
from langgraph.pregel import Pregel

from flagmw.client.client import FlagClient
from flagmw.core.runconfig import RunConfig
from flagmw.langgraph.checkpointer import PinningCheckpointer
from flagmw.langgraph.context import ContextBuilder, effective_config, read_config
from flagmw.langgraph.gates import gate_nodes
from flagmw.langgraph.keys import LENT_CHECKPOINTER_KEY, TASK_ID_KEY, AnyGraph, ResumePolicy
from flagmw.langgraph.lifecycle import _Invocation, _Settings
from flagmw.langgraph.pin import afind_pin, decode_pin, find_pin
from flagmw.langgraph.run import RUN_KEY, RunObserver, RunState, _run_var, current_run
from flagmw.langgraph.tool_gate import Gate

__all__ = ["wrap"]

log = logging.getLogger("flagmw")

G = TypeVar("G", bound=AnyGraph)


# -- the wrapped graph ---------------------------------------------------------------


class _FlagmwGraph(Pregel[Any, Any, Any, Any]):
    """The behaviour ``wrap`` adds; mixed in front of the graph's own class.

    Its settings are a class attribute of the dynamic subclass, so ``copy()`` and
    ``with_config()`` (which rebuild the object from its ``__dict__``) keep them.
    """

    _flagmw: _Settings
    _flagmw_base: type[AnyGraph]

    def _flagmw_parent(self, merged: RunnableConfig) -> tuple[bool, RunState | None]:
        """``(passthrough, parent)``: the wrapped run this invocation is nested in (a node
        or tool of another wrapped graph calling this one), and whether it is this
        same wrapped graph re-entered as its own subgraph — the only case that shares
        the run; any other wrapped graph gets a run of its own."""
        parent = current_run(optional=True)
        if parent is None:
            parent = (merged.get("configurable") or {}).get(RUN_KEY)
        if parent is None or parent.owner is None:  # none, or flagmw.testing.pinned
            return False, None
        conf = merged.get("configurable") or {}
        return (parent.owner is self._flagmw and TASK_ID_KEY in conf), parent

    def _flagmw_config(self, config: RunnableConfig | None) -> RunnableConfig:
        """The invocation's effective config, as far as the wrapper reads it: the whole
        merge for a custom context builder (it is given the config), else only what
        needs merging (:func:`~flagmw.langgraph.context.read_config`)."""
        if self._flagmw.context is not None:
            return effective_config(self.config, config)
        return read_config(self.config, config)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        token = _whole.set(self)  # LangGraph's invoke reads the whole stream (see _whole)
        try:
            return super().invoke(input, config, **kwargs)
        finally:
            _whole.reset(token)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        token = _whole.set(self)
        try:
            return await super().ainvoke(input, config, **kwargs)
        finally:
            _whole.reset(token)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        whole = _taken_whole(self)
        merged = self._flagmw_config(config)
        passthrough, parent = self._flagmw_parent(merged)
        if passthrough:
            return super().stream(input, config, **kwargs)
        return self._flagmw_stream(input, config, kwargs, merged, parent, whole)

    def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        whole = _taken_whole(self)
        merged = self._flagmw_config(config)
        passthrough, parent = self._flagmw_parent(merged)
        if passthrough:
            return super().astream(input, config, **kwargs)
        return self._flagmw_astream(input, config, kwargs, merged, parent, whole)

    # The run lifecycle lives in _Invocation (one implementation); the two methods
    # below differ only in their I/O: reading the pin, and driving LangGraph's sync or
    # async stream.

    def _flagmw_stream(
        self,
        input: Any,
        config: RunnableConfig | None,
        kwargs: dict[str, Any],
        merged: RunnableConfig,
        parent: RunState | None,
        whole: bool = False,
    ) -> Iterator[Any]:
        inv = _Invocation(self, self._flagmw, input, config, kwargs, merged)
        cp = inv.cp if inv.must_find_pin else None
        found = find_pin(cp, merged, ns=inv.ns) if cp is not None else inv.no_pin
        down = inv.launch(self, input, found, parent)
        inner = cast(Generator[Any, None, None], super().stream(input, inv.config, **down))
        run = inv.run
        try:
            if whole and not (inv.observed or inv.scrubbing):
                # read by LangGraph's invoke: the run stays current for the whole stream
                token = _run_var.set(run)
                try:
                    yield from inner
                finally:
                    _reset_run(token)
            else:
                while True:
                    if inv.observed:
                        with inv:
                            chunk = next(inner, _END)
                    else:  # what ``with inv`` does once no observer needs activating
                        token = _run_var.set(run)
                        try:
                            chunk = next(inner, _END)
                        finally:
                            _run_var.reset(token)
                    if chunk is _END:
                        break
                    yield inv.scrub(chunk) if inv.scrubbing else chunk
            inv.completed()
        except BaseException as exc:
            err = inv.failed(exc)
            if err is exc:
                raise
            raise err from exc
        finally:
            if inv.must_close:
                with inv:
                    inner.close()
            inv.ended()

    async def _flagmw_astream(
        self,
        input: Any,
        config: RunnableConfig | None,
        kwargs: dict[str, Any],
        merged: RunnableConfig,
        parent: RunState | None,
        whole: bool = False,
    ) -> AsyncIterator[Any]:
        inv = _Invocation(self, self._flagmw, input, config, kwargs, merged)
        cp = inv.cp if inv.must_find_pin else None
        found = await afind_pin(cp, merged, ns=inv.ns) if cp is not None else inv.no_pin
        # the store reads the start needs (a change to load, the tenant's overlay), in a
        # worker thread: the event loop never waits on the store
        await self._flagmw.client.aready(inv.early_context(input))
        down = inv.launch(self, input, found, parent)
        inner = super().astream(input, inv.config, **down)
        run = inv.run
        try:
            if whole and not (inv.observed or inv.scrubbing):
                # read by LangGraph's ainvoke: the run stays current for the whole stream
                token = _run_var.set(run)
                try:
                    async for chunk in inner:
                        yield chunk
                finally:
                    _reset_run(token)
            else:
                while True:
                    if inv.observed:
                        with inv:
                            chunk = await anext(inner, _END)
                    else:  # what ``with inv`` does once no observer needs activating
                        token = _run_var.set(run)
                        try:
                            chunk = await anext(inner, _END)
                        finally:
                            _run_var.reset(token)
                    if chunk is _END:
                        break
                    yield inv.scrub(chunk) if inv.scrubbing else chunk
            inv.completed()
        except BaseException as exc:
            err = inv.failed(exc)
            if err is exc:
                raise
            raise err from exc
        finally:
            if inv.must_close:
                aclose = getattr(inner, "aclose", None)
                if aclose is not None:
                    with inv:
                        await aclose()
            inv.ended()

    # -- reading the pin -------------------------------------------------------------

    def get_pinned_config(self, config: RunnableConfig) -> RunConfig | None:
        """The RunConfig pinned for the thread in ``config`` (at its ``checkpoint_id``
        when given): what a resume with ``on_resume="pinned"`` would use (before hot
        flags are brought up to date). None when the thread has no pin.

        Raises:
            IntegrityError: the stored pin fails verification.
            ValueError: the graph has no checkpointer.
        """
        cp = self._flagmw_checkpointer(config)
        found = find_pin(cp, effective_config(self.config, config))
        return None if found.pin is None else decode_pin(found.pin)

    async def aget_pinned_config(self, config: RunnableConfig) -> RunConfig | None:
        """Async twin of :meth:`get_pinned_config`."""
        cp = self._flagmw_checkpointer(config)
        found = await afind_pin(cp, effective_config(self.config, config))
        return None if found.pin is None else decode_pin(found.pin)

    def _flagmw_checkpointer(self, config: RunnableConfig) -> BaseCheckpointSaver[Any]:
        conf = config.get("configurable") or {}
        cp = conf.get(LENT_CHECKPOINTER_KEY, self.checkpointer)
        if not isinstance(cp, BaseCheckpointSaver):
            raise ValueError(f"graph {self.name!r} has no checkpointer: nothing is pinned")
        return cp


_END: Any = object()

#: The wrapped graph whose next ``stream`` / ``astream`` call comes from its own
#: ``invoke`` / ``ainvoke`` (set there, taken by that call). LangGraph's invoke reads the
#: whole stream itself: no code of the caller runs between two chunks, so the run is
#: made current once for the whole stream instead of around each chunk.
_whole: ContextVar[object] = ContextVar("flagmw_whole", default=None)


def _taken_whole(graph: object) -> bool:
    """Whether this ``stream`` call is ``graph``'s own invoke reading it; takes the mark
    (a node of the run that streams the same graph gets the per-chunk path)."""
    if _whole.get() is not graph:
        return False
    _whole.set(None)  # undone by invoke's reset
    return True


def _reset_run(token: Any) -> None:
    # ValueError: finalised in another context (dropped unfinished): nothing to undo there
    with contextlib.suppress(ValueError):
        _run_var.reset(token)


# -- wrap ----------------------------------------------------------------------------


def _default_tracer() -> RunObserver | None:
    try:
        import opentelemetry.trace  # noqa: F401

        from flagmw.tracing.writer import RunTracer  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return None
    except Exception:
        log.warning("flagmw: flagmw.tracing failed to import; runs are not traced", exc_info=True)
        return None
    try:
        return cast(RunObserver, RunTracer())
    except Exception:
        log.warning("flagmw: RunTracer() failed; runs are not traced", exc_info=True)
        return None


def wrap(
    graph: G,
    client: FlagClient,
    *,
    name: str | None = None,
    context: ContextBuilder | None = None,
    on_resume: ResumePolicy = "pinned",
    tracer: RunObserver | Literal[False] | None = None,
    observers: Sequence[RunObserver] = (),
    gates: Mapping[str, str | Gate] | None = None,
) -> G:
    """Put flagmw inside a compiled LangGraph graph.

    Returns a copy of ``graph`` — an instance of a subclass of the graph's own class,
    with the same API — whose runs get a pinned :class:`~flagmw.runconfig.RunConfig`
    (readable with ``flagmw.current()`` in any node, tool or model call), hot flags
    re-resolved at each step boundary, and run kills that drain the run. ``graph``
    itself is not changed.

    Works on graphs from ``StateGraph.compile()``, ``langgraph.prebuilt`` and
    ``langchain.agents.create_agent``. Plain subgraphs of the wrapped graph share its
    run; a wrapped graph called from a node or tool of another wrapped graph (or run as
    its node) gets a run of its own, with ``RunState.parent`` the caller's run.

    Args:
        graph: a compiled graph (a ``Pregel`` instance). When it has a checkpointer,
            the copy uses a :class:`PinningCheckpointer` around it.
        client: the :class:`~flagmw.client.FlagClient` that resolves flags.
        name: the agent's name: the default ``route`` of the evaluation context and
            ``gen_ai.agent.name`` in the trace (default: the graph's ``name``).
        context: ``(config, input) -> EvaluationContext``; default
            :func:`context_from_config` (tenant, user, thread, run, plan and route from
            ``config["configurable"]``).
        on_resume: what a resumed run uses: ``"pinned"`` (default: the RunConfig pinned
            when the run started, with hot flags brought up to date), ``"live"`` (a fresh
            resolution, pinned from then on), ``"fail_if_changed"`` (the pin, but raise
            :class:`ConfigChangedError` before running when a fresh resolution differs
            in a pinned flag).
        tracer: a :class:`~flagmw.run.RunObserver` that writes the trace; None (default)
            uses ``flagmw.tracing.RunTracer()`` when it and OpenTelemetry import; False
            disables tracing.
        observers: more :class:`~flagmw.run.RunObserver` objects.
        gates: tool name → flag key (or :class:`~flagmw.tools.Gate`): gates the tools
            of the graph's ``ToolNode`` s by name at execution, for graphs whose tools
            you cannot decorate (templates, prebuilt agents built before wrapping); a
            call to a disabled tool gets the ``ToolMessage(status="error")`` of
            ``@gated`` (:mod:`flagmw.langgraph.gates`). Warns about names no ToolNode
            has and about ungated tools whose ``gated()`` copy is never used.

    Raises:
        TypeError: ``graph`` is not a compiled LangGraph graph; a gate is neither a
            flag key nor a Gate.
        ValueError: an unknown ``on_resume`` policy.
        RuntimeError: ``gates`` needs a ToolNode of an unsupported langgraph-prebuilt.

    Example::

        graph = flagmw.wrap(builder.compile(checkpointer=saver), client, name="support")
        graph.invoke({"messages": [...]}, {"configurable": {"thread_id": "t-1",
                                                          "tenant_id": "acme"}})
    """
    if not isinstance(graph, Pregel):
        raise TypeError(
            f"flagmw.wrap expects a compiled LangGraph graph (builder.compile(), "
            f"create_agent(...)), got {type(graph).__name__}"
        )
    if on_resume not in ("pinned", "live", "fail_if_changed"):
        raise ValueError(
            f"on_resume must be 'pinned', 'live' or 'fail_if_changed', got {on_resume!r}"
        )
    if not isinstance(client, FlagClient):
        raise TypeError(f"flagmw.wrap expects a FlagClient, got {type(client).__name__}")
    base: type[AnyGraph] = getattr(type(graph), "_flagmw_base", type(graph))
    attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
    checkpointer = attrs.get("checkpointer")
    if isinstance(checkpointer, PinningCheckpointer):  # re-wrapping a wrapped graph
        checkpointer = checkpointer.inner
    if isinstance(checkpointer, BaseCheckpointSaver):
        attrs["checkpointer"] = PinningCheckpointer(checkpointer)
    agent_name = name or getattr(graph, "name", None) or "LangGraph"
    attrs["nodes"] = gate_nodes(attrs["nodes"], gates, client, graph_name=agent_name)
    chosen = _default_tracer() if tracer is None else (None if tracer is False else tracer)
    every = tuple(o for o in (chosen, *observers) if o is not None)
    settings = _Settings(
        client=client,
        name=agent_name,
        context=context,
        on_resume=on_resume,
        observers=every,
        kill_keys=tuple(sorted(client.registry.run_kill_keys)),
    )
    cls = type(
        "Flagged" + base.__name__,
        (_FlagmwGraph, base),
        {"_flagmw": settings, "_flagmw_base": base, "__module__": __name__},
    )
    return cast(G, cls(**attrs))
