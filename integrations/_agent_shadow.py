"""ShadowMiddleware: shadow runs of a ``create_agent`` agent from its middleware alone,
without ``flagmw.wrap`` or a wrapper around ``invoke`` (issue 12 §4).

Where the agent is invoked by code you do not own (a server, a queue worker), the
middleware takes the shadow: put it after
:class:`~flagmw.integrations.langchain.FlagmwMiddleware` (and an ``OutcomeMiddleware``
when the shadows' outcomes should be recorded), then bind it to the compiled agent::

    sm = ShadowMiddleware(client=client, agent="support-agent", recorder=recorder,
                          rollouts=attach(client))       # or version="v1.3.3", share=10
    agent = sm.bind(create_agent(model, tools, checkpointer=saver,
                                 middleware=[mw, OutcomeMiddleware(recorder, mw), sm]))

At ``before_agent`` (a new turn) it notes the turn's messages — the thread's history
and the new input — and the time; at ``after_agent`` it offers the turn to its
:class:`~flagmw.rollout.shadow.ShadowRunner`, which, when the run is sampled, runs the
same agent in the background on a fresh thread (``shadow:<thread>:<id>``) from those
messages with the candidate version pinned, side-effecting tools answering a dry run,
and records the comparison of this turn (the history left out). A shadow's own turn is
never shadowed again. A turn that fails is not shadowed; at most ``max_turns`` turns
waiting for their end are remembered (the oldest is forgotten). Nothing here can fail
or slow the user's run beyond copying the message list.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from langchain.agents.middleware.types import AgentMiddleware
from langgraph.runtime import Runtime

from flagmw.integrations._agent_pin import current_config
from flagmw.langgraph.tool_gate import SHADOW_ATTR
from flagmw.rollout.shadow import ShadowRunner

__all__ = ["ShadowMiddleware"]


def _user_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The invocation's own ``configurable`` entries (LangGraph's ``__*`` and
    ``checkpoint_*`` keys left out: they belong to the primary's checkpoint)."""
    conf = config.get("configurable") or {}
    keep = {
        k: v
        for k, v in conf.items()
        if isinstance(k, str) and not k.startswith("__") and not k.startswith("checkpoint_")
    }
    out: dict[str, Any] = {"configurable": keep}
    if config.get("run_id") is not None:
        out["run_id"] = config["run_id"]
    return out


class ShadowMiddleware(AgentMiddleware[Any, Any, Any]):
    """Shadows sampled turns of a ``create_agent`` agent (see the module docs).

    Args:
        runner: a :class:`~flagmw.rollout.shadow.ShadowRunner` (its graph is set by
            :meth:`bind`); or, instead, the keyword arguments of
            :func:`flagmw.rollout.shadow.shadow` without the graph (``client``,
            ``agent``, ``recorder``, and ``version`` + ``share`` or ``rollouts``).
        max_turns: turns remembered between their start and end.

    Raises:
        ValueError: both or neither of ``runner`` and the shadow arguments; the
            errors of :func:`~flagmw.rollout.shadow.shadow`.
    """

    def __init__(
        self, runner: ShadowRunner | None = None, *, max_turns: int = 1024, **shadow: Any
    ) -> None:
        super().__init__()
        if (runner is None) == (not shadow):
            raise ValueError("ShadowMiddleware needs a ShadowRunner or shadow(...) arguments")
        self.runner = runner if runner is not None else ShadowRunner(None, **shadow)
        self.max_turns = max_turns
        self._turns: OrderedDict[str, tuple[list[Any], float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "FlagmwShadow"

    def bind(self, graph: Any) -> Any:
        """Shadow runs go through ``graph`` (the compiled agent); returns it."""
        self.runner.graph = graph
        return graph

    def close(self, wait: bool = True) -> None:
        """Close the runner (see :meth:`ShadowRunner.close`)."""
        self.runner.close(wait)

    # -- hooks -------------------------------------------------------------------------

    def _start(self, state: Mapping[str, Any]) -> None:
        try:
            config = current_config() or {}
            conf = config.get("configurable") or {}
            if conf.get(SHADOW_ATTR) is True or self.runner.graph is None:
                return  # a shadow's own turn, or not bound yet
            messages = state.get("messages")
            thread = conf.get("thread_id")
            if not isinstance(messages, list) or thread is None:
                return
            with self._lock:
                self._turns[str(thread)] = (list(messages), time.monotonic())
                self._turns.move_to_end(str(thread))
                while len(self._turns) > self.max_turns:
                    self._turns.popitem(last=False)
        except Exception:  # a shadow never affects the primary
            self.runner.failed += 1

    def _end(self, state: Mapping[str, Any]) -> None:
        try:
            config = current_config() or {}
            conf = config.get("configurable") or {}
            if conf.get(SHADOW_ATTR) is True:
                return
            with self._lock:
                turn = self._turns.pop(str(conf.get("thread_id")), None)
            if turn is None:
                return
            messages, t0 = turn
            primary = {"messages": list(state.get("messages") or [])}
            latency = (time.monotonic() - t0) * 1000.0
            self.runner.offer(
                {"messages": messages}, _user_config(config), primary, latency, len(messages)
            )
        except Exception:
            self.runner.failed += 1

    def before_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._start(state)
        return None

    async def abefore_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._start(state)
        return None

    def after_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._end(state)
        return None

    async def aafter_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._end(state)
        return None
