"""flagmw inside LangChain ``create_agent``: :class:`FlagmwMiddleware`.

Needs ``pip install 'flagmw[langchain]'``. It is the alternative to
:func:`flagmw.wrap` for agents built with ``create_agent``; both can be combined (the
middleware then uses the run the wrapper made and pins nothing itself)::

    from langchain.agents import create_agent
    from flagmw.integrations.langchain import FlagmwMiddleware

    agent = create_agent(
        model,
        tools=[refund, search],
        middleware=[FlagmwMiddleware(client, name="support_agent")],
        checkpointer=saver,
    )
    agent.invoke({"messages": [("user", "refund order 17")]},
                 {"configurable": {"thread_id": "t-1", "tenant_id": "acme"}})

What each hook does (DESIGN §3; reference ``langgraph-integration.md`` §1):

* ``before_agent`` (every new input, never on resume) resolves the RunConfig and pins
  it in the private state channel ``flagmw_pin`` as JSON primitives — a plain
  ``LastValue`` channel, so it is checkpointed and a resumed run (``Command(resume=…)``,
  ``invoke(None)``, another process) sees the same config. It pins again on the next
  turn (``pin="turn"``) or keeps the thread's first pin (``pin="thread"``).
* ``before_model`` is the step boundary of the agent loop: when the client saw a change,
  the hot keys are re-resolved (``flag_changed`` events, stored in the pin), and a kill
  of a run-kill flag (``agent.enabled``) ends the run with ``jump_to: "end"``, a final
  ``AIMessage`` saying why and a ``ToolMessage`` for every pending tool call.
* ``wrap_model_call`` hides disabled tools (filters ``request.tools``, resets a
  ``tool_choice`` that forces a hidden one) and, with ``routes=``, routes the call to
  the model named by the route flag, with the fallback ladder.
* ``wrap_tool_call`` re-checks hot keys and refuses a call to a disabled tool with a
  ``ToolMessage(status="error")`` (a model may call a hidden tool anyway).
* Model and tool calls run with the run current, so :func:`flagmw.current`, gated tools
  and :func:`flagmw.routed_model` work inside them.

Every hook has a sync and an async variant (a middleware with only one fails under the
other API).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

try:
    from langchain.agents.middleware.types import (
        AgentMiddleware,
        ModelRequest,
        hook_config,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "flagmw.integrations.langchain needs the 'langchain' extra "
        f"({exc.name} is not installed): pip install 'flagmw[langchain]'"
    ) from exc

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from flagmw.client.client import FlagClient
from flagmw.core.runconfig import Layer, RunConfig
from flagmw.integrations._agent_outcomes import OutcomeMiddleware
from flagmw.integrations._agent_pin import (
    PIN_KEY,
    FlagmwAgentState,
    PinnedRuns,
    current_config,
    is_pin,
    pending_tool_calls,
    pin_key,
    thread_id,
    turn_marker,
)
from flagmw.integrations._agent_routing import ModelRouter
from flagmw.integrations._agent_shadow import ShadowMiddleware
from flagmw.langgraph.context import ContextBuilder, context_from_config
from flagmw.langgraph.run import RunObserver, RunState, active_run_kill, current_run, use_run
from flagmw.langgraph.tool_gate import Gate, Refusal, check_tool, warn_ungated_twin

__all__ = [
    "PIN_KEY",
    "FlagmwAgentState",
    "FlagmwMiddleware",
    "OutcomeMiddleware",
    "ShadowMiddleware",
]

log = logging.getLogger("flagmw")


class FlagmwMiddleware(AgentMiddleware[FlagmwAgentState, Any, Any]):
    """Pins, gates and routes a ``create_agent`` agent with flagmw.

    Args:
        client: the application's :class:`~flagmw.FlagClient`.
        name: the agent's name: the default ``route`` of the evaluation context and
            the run's ``gen_ai.agent.name`` (stored as :attr:`agent_name`; the
            middleware's own ``name`` stays ``"FlagmwMiddleware"``).
        context: ``(config, state) -> EvaluationContext``, as for ``flagmw.wrap``
            (default :func:`flagmw.graph.context_from_config`: tenant, user, thread,
            run, plan and route from ``config["configurable"]``).
        routes: route name → chat model; when given, every model call is routed by
            ``route_flag`` (``request.override(model=...)``), with the ``fallbacks``
            ladder. Without it, the agent's model is used (which may itself be a
            :func:`flagmw.routed_model`).
        route_flag: the flag naming the primary route (default ``"model.primary"``).
        fallbacks: a json flag holding the fallback ladder, or the ladder itself.
        tool_gates: gates for tools that cannot carry ``@gated`` (provider dict tools,
            third-party and MCP tools): tool name (or provider-tool ``type``) → flag
            key or :class:`~flagmw.tools.Gate`.
        pin: ``"turn"`` (default: every new input resolves a new RunConfig, as
            ``flagmw.wrap`` does) or ``"thread"`` (the thread's first RunConfig is kept
            for all its turns; hot keys still move).
        observers: receive the run events (``flag_changed``, ``tool_refused``,
            ``run_drained``, ``model_route``), e.g. the trace writer.

    Raises:
        ValueError: ``routes`` is empty, a route is not a chat model, or ``pin`` is
            neither ``"turn"`` nor ``"thread"``.

    Example::

        agent = create_agent(model, tools=[refund, search], checkpointer=InMemorySaver(),
                             middleware=[FlagmwMiddleware(client, name="support_agent")])
    """

    state_schema = FlagmwAgentState

    def __init__(
        self,
        client: FlagClient,
        *,
        name: str = "agent",
        context: ContextBuilder | None = None,
        routes: Mapping[str, BaseChatModel] | None = None,
        route_flag: str = "model.primary",
        fallbacks: str | Sequence[str] | None = None,
        tool_gates: Mapping[str, str | Gate] | None = None,
        pin: Literal["turn", "thread"] = "turn",
        observers: Sequence[RunObserver] = (),
    ) -> None:
        super().__init__()
        if routes is not None:
            if not routes:
                raise ValueError("FlagmwMiddleware(routes=...) needs at least one route")
            for route, model in routes.items():
                if not isinstance(model, BaseChatModel):
                    raise ValueError(
                        f"FlagmwMiddleware route {route!r} is a {type(model).__name__}, "
                        "not a BaseChatModel"
                    )
        if pin not in ("turn", "thread"):
            raise ValueError(f"FlagmwMiddleware(pin=...) must be 'turn' or 'thread', got {pin!r}")
        self.client = client
        self.agent_name = name
        self.context = context
        self.routes = dict(routes) if routes is not None else None
        self.route_flag = route_flag
        self.fallbacks = fallbacks
        self.tool_gates = dict(tool_gates) if tool_gates is not None else None
        self.pin = pin
        self.observers = tuple(observers)
        self.tools = []
        self._pinned = PinnedRuns(client, name, self.observers)
        self._router = ModelRouter(self.routes, route_flag, fallbacks, self.tool_gates)

    # -- the run -------------------------------------------------------------------------

    def _external(self) -> RunState | None:
        """The run made by ``flagmw.wrap`` (or ``use_run``), when there is one."""
        return current_run(optional=True)

    def _resolve_pin(self, state: Mapping[str, Any]) -> dict[str, Any]:
        config = current_config() or {}
        ctx = (
            self.context(config, state)
            if self.context is not None
            else context_from_config(config, state, route=self.agent_name)
        )
        rc = self.client.resolve(ctx)
        return {"rc": rc.to_dict(), "turn": turn_marker(state.get("messages") or [])}

    def _sync_hot(self, run: RunState, step: int | None) -> bool:
        """Re-resolve the hot keys when the client changed; True when values changed."""
        generation = self.client.poll()
        if generation == run.generation:
            return False
        run.step += 1
        return run.refresh_hot(generation, step=step)

    def _run_kill(self, rc: RunConfig) -> tuple[str, str | None, str | None] | None:
        """``(key, reason, override_id)`` of a run-kill flag that is off, if any."""
        key = active_run_kill(rc, sorted(self.client.registry.run_kill_keys))
        if key is None:
            return None
        prov = rc.provenance[key]
        if prov.layer is Layer.OVERRIDE:
            return key, prov.reason, prov.override_id
        return key, f"set by {prov.describe()}", None

    @staticmethod
    @contextlib.contextmanager
    def _current(run: RunState | None, external: bool) -> Iterator[None]:
        if run is None or external:
            yield
            return
        with use_run(run):
            yield

    # -- before_agent: pin ---------------------------------------------------------------

    def _before_agent(self, state: Mapping[str, Any]) -> dict[str, Any] | None:
        if self._external() is not None:
            return None  # flagmw.wrap pinned this run; never pin twice
        pin = state.get(PIN_KEY)
        if is_pin(pin):
            if self.pin == "thread":
                return None
            if pin.get("turn") == turn_marker(state.get("messages") or []):
                return None  # already pinned for this turn
        return {PIN_KEY: self._resolve_pin(state)}

    def before_agent(self, state: FlagmwAgentState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Pin the RunConfig of the new turn (see the module docs)."""
        return self._before_agent(state)

    async def abefore_agent(
        self, state: FlagmwAgentState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async variant of :meth:`before_agent`."""
        return self._before_agent(state)

    # -- before_model: hot keys and the run kill ----------------------------------------

    def _before_model(self, state: Mapping[str, Any]) -> dict[str, Any] | None:
        if self._external() is not None:
            return None  # flagmw.wrap re-resolves and drains at its step boundaries
        config = current_config() or {}
        thread = thread_id(config)
        update: dict[str, Any] = {}
        pin = state.get(PIN_KEY)
        run = self._pinned.of(state, thread)
        if run is None:
            # a thread checkpointed before the middleware was added: pin now
            update[PIN_KEY] = pin = self._resolve_pin(state)
            run = self._pinned.of(update, thread)
            assert run is not None
        step = (config.get("metadata") or {}).get("langgraph_step")
        self._sync_hot(run, step if isinstance(step, int) else None)
        stored = pin["rc"] if isinstance(pin, Mapping) else {}
        # also persists a hot change first seen at a tool call (wrap_tool_call cannot
        # write state)
        if run.rc.config_hash != stored.get("config_hash") or len(run.rc.changes) != len(
            stored.get("changes") or ()
        ):
            update[PIN_KEY] = new_pin = {**dict(pin or {}), "rc": run.rc.to_dict()}
            self._pinned.remember(pin_key(thread, new_pin), run)
        kill = self._run_kill(run.rc)
        if kill is None:
            return update or None
        key, reason, override_id = kill
        run.drain = kill
        run.event(
            "run_drained",
            key=key,
            reason=reason,
            override_id=override_id,
            step=step if isinstance(step, int) else None,
        )
        why = f"kill {override_id}: {reason}" if override_id else (reason or "off")
        text = f"The agent was stopped by flag {key} ({why})."
        messages: list[AnyMessage] = [
            ToolMessage(
                f"Not run: {text}",
                tool_call_id=tc["id"],
                name=tc.get("name"),
                status="error",
            )
            for tc in pending_tool_calls(state.get("messages") or [])
        ]
        messages.append(AIMessage(text, response_metadata={"flagmw_run_kill": key}))
        return {**update, "jump_to": "end", "messages": messages}

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: FlagmwAgentState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Step boundary: re-resolve hot keys; end the run on a run kill."""
        return self._before_model(state)

    @hook_config(can_jump_to=["end"])
    async def abefore_model(
        self, state: FlagmwAgentState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async variant of :meth:`before_model`."""
        return self._before_model(state)

    # -- wrap_model_call: hide tools, route ---------------------------------------------

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Any],
    ) -> Any:
        """Hide disabled tools and route the model call (see the module docs)."""
        external = self._external()
        run = external or self._pinned.of(request.state, thread_id(current_config()))
        if run is None:
            return handler(request)
        with self._current(run, external is not None):
            return self._router.call(request, handler, run)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[Any]],
    ) -> Any:
        """Async variant of :meth:`wrap_model_call`."""
        external = self._external()
        run = external or self._pinned.of(request.state, thread_id(current_config()))
        if run is None:
            return await handler(request)
        with self._current(run, external is not None):
            return await self._router.acall(request, handler, run)

    # -- wrap_tool_call: refuse ----------------------------------------------------------

    def _tool_gate(
        self, request: ToolCallRequest
    ) -> tuple[RunState | None, bool, ToolMessage | None]:
        """``(run, external, refusal)`` for one tool call; a decision that fails refuses
        (fail closed: a flag decision never crashes the run)."""
        try:
            return self._decide_tool(request)
        except Exception as exc:
            call = request.tool_call
            log.exception("flagmw: the gate of tool %r failed; refused", call["name"])
            refusal = Refusal(
                call["name"],
                "?",
                f"Tool '{call['name']}' is disabled: its gate could not be evaluated "
                f"({type(exc).__name__}). Do not retry it; tell the user it is unavailable.",
            )
            return None, False, refusal.tool_message(str(call["id"]))

    def _decide_tool(
        self, request: ToolCallRequest
    ) -> tuple[RunState | None, bool, ToolMessage | None]:
        external = self._external()
        config = request.runtime.config if request.runtime is not None else None
        state = request.state if isinstance(request.state, Mapping) else {}
        run = external or self._pinned.of(state, thread_id(config))
        if run is None:
            return None, False, None
        if external is None:
            step = ((config or {}).get("metadata") or {}).get("langgraph_step")
            self._sync_hot(run, step if isinstance(step, int) else None)
        call = request.tool_call
        name = call["name"]
        kill = self._run_kill(run.rc)
        if kill is not None:
            key, reason, override_id = kill
            why = f"kill {override_id}: {reason}" if override_id else (reason or "off")
            run.event("tool_refused", tool=name, key=key, reason=reason, override_id=override_id)
            return (
                run,
                external is not None,
                ToolMessage(
                    f"Tool '{name}' was not run: the agent is stopped by flag {key} ({why}).",
                    tool_call_id=call["id"],
                    name=name,
                    status="error",
                ),
            )
        target: Any = request.tool if request.tool is not None else {"name": name}
        warn_ungated_twin(target, self.tool_gates, f"agent {self.agent_name!r}")
        refusal = check_tool(target, run.rc, gates=self.tool_gates)
        if refusal is None:
            return run, external is not None, None
        run.event(
            "tool_refused",
            tool=name,
            key=refusal.key,
            reason=refusal.reason,
            override_id=refusal.override_id,
        )
        return run, external is not None, refusal.tool_message(str(call["id"]))

    def wrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        """Refuse a call to a disabled tool; run the others with the run current."""
        run, external, refusal = self._tool_gate(request)
        if refusal is not None:
            return refusal
        with self._current(run, external):
            return handler(request)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        """Async variant of :meth:`wrap_tool_call`."""
        run, external, refusal = self._tool_gate(request)
        if refusal is not None:
            return refusal
        with self._current(run, external):
            return await handler(request)
