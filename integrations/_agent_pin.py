"""The pin of a ``create_agent`` run in agent state, for :mod:`flagmw.integrations.langchain`.

The RunConfig is pinned in the private state channel :data:`PIN_KEY` as JSON primitives
(``{"rc": RunConfig.to_dict(), "turn": <id of the message that started the turn>}``):
a plain ``LastValue`` channel, so it is checkpointed, and primitives round-trip under
every checkpoint serializer mode (reference ``langgraph-integration.md`` §1.4, §6).
:class:`PinnedRuns` turns a pin back into the live :class:`~flagmw.langgraph.run.RunState`
that events and hot updates accumulate on between the middleware's hooks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NotRequired

from langchain.agents.middleware.types import AgentState, PrivateStateAttr
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig

from flagmw.client.client import FlagClient
from flagmw.core.runconfig import RunConfig
from flagmw.langgraph.run import RunObserver, RunState

#: The private state channel that holds the pin.
PIN_KEY = "flagmw_pin"

#: RunStates kept per middleware (rebuilt from a pin when evicted).
MAX_RUNS = 256


class FlagmwAgentState(AgentState[Any]):
    """The agent state with the pin: ``{"rc": RunConfig.to_dict(), "turn": <id of the
    message that started the turn>}`` (JSON primitives only, never a custom class: they
    round-trip under every checkpoint serializer mode, reference §6)."""

    flagmw_pin: NotRequired[Annotated[dict[str, Any] | None, PrivateStateAttr]]


def current_config() -> RunnableConfig | None:
    """The ambient ``RunnableConfig`` (``langgraph.config.get_config``), or None
    outside a runnable context (e.g. a unit test calling a hook directly)."""
    from langgraph.config import get_config

    try:
        return get_config()
    except RuntimeError:
        return None


def turn_marker(messages: Sequence[BaseMessage]) -> str | None:
    """The id of the message that started the turn (the last one at ``before_agent``)."""
    return messages[-1].id if messages else None


def pending_tool_calls(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """Tool calls of the last AIMessage that no ToolMessage answers yet."""
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if isinstance(msg, AIMessage):
            answered = {m.tool_call_id for m in messages[i + 1 :] if isinstance(m, ToolMessage)}
            return [dict(tc) for tc in msg.tool_calls if tc["id"] not in answered]
    return []


def thread_id(config: Mapping[str, Any] | None) -> str | None:
    """``config["configurable"]["thread_id"]`` as a str, or None."""
    value = ((config or {}).get("configurable") or {}).get("thread_id")
    return None if value is None else str(value)


def pin_key(thread: str | None, pin: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies one pinned state of a thread (turn, hash, hot changes)."""
    data = pin["rc"]
    return (
        thread,
        pin.get("turn"),
        data.get("config_hash"),
        data.get("resolved_at"),
        len(data.get("changes") or ()),
    )


def is_pin(value: Any) -> bool:
    """Whether ``value`` has the shape of a pin."""
    return isinstance(value, Mapping) and isinstance(value.get("rc"), Mapping)


class PinnedRuns:
    """The RunStates rebuilt from pins, so that events and hot updates accumulate per
    run between hooks; a bounded cache (LRU, :data:`MAX_RUNS`), thread-safe."""

    def __init__(self, client: FlagClient, name: str, observers: Sequence[RunObserver]) -> None:
        self.client = client
        self.name = name
        self.observers = tuple(observers)
        self._runs: OrderedDict[tuple[Any, ...], RunState] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, state: Mapping[str, Any], thread: str | None) -> RunState | None:
        """The RunState of the pin in ``state`` (None when nothing is pinned).

        Raises:
            IntegrityError: the pin was altered in the checkpoint (``config_hash``).
        """
        pin = state.get(PIN_KEY)
        if not is_pin(pin):
            return None
        key = pin_key(thread, pin)
        with self._lock:
            run = self._runs.get(key)
            if run is not None:
                self._runs.move_to_end(key)
                return run
        rc = RunConfig.from_json(pin["rc"])
        run = RunState(
            client=self.client,
            rc=rc,
            name=self.name,
            thread_id=thread,
            resumed=True,
            observers=self.observers,
        )
        run.generation = -1  # re-resolve hot keys at the first boundary in this process
        self.remember(key, run)
        return run

    def remember(self, key: tuple[Any, ...], run: RunState) -> None:
        """Keep ``run`` under ``key`` (e.g. after its pin changed)."""
        with self._lock:
            self._runs[key] = run
            while len(self._runs) > MAX_RUNS:
                self._runs.popitem(last=False)
