"""``RunDrained``: a run kill stopped the run at a step boundary, its checkpoint kept."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

# the merge LangGraph itself applies to an invocation's config (ambient config, the
# reset of an inherited checkpoint coordinate); private in langgraph 1.2
from langgraph.errors import GraphDrained

from flagmw.errors import FlagmwError

if TYPE_CHECKING:  # pragma: no cover
    pass


log = logging.getLogger("flagmw")


class RunDrained(GraphDrained, FlagmwError):
    """A run kill stopped the run before a superstep; its checkpoint is saved.

    Raised from ``invoke`` / ``stream`` (and their async twins) of a wrapped graph when a
    hot flag declared ``run_kill`` (e.g. ``agent.enabled``) turned off. A subclass of
    LangGraph's ``GraphDrained``, so code that already handles cooperative drains keeps
    working. Resume the run with ``graph.invoke(None, config)`` once the kill has ended
    (``client.unkill(override_id, ...)`` or ``flagmw unkill``).

    Attributes:
        key: the run-kill flag that turned off.
        reason: the kill's reason (None when a snapshot, not an override, turned it off).
        override_id: the kill's override id (None when not an override).
        step: the step boundary of the invocation at which the run drained (0 = before
            its first superstep); the superstep at that boundary did not run.
    """

    def __init__(self, key: str, reason: str | None, override_id: str | None, step: int) -> None:
        why = f"{key} is off"
        if override_id:
            why += f" (kill {override_id}: {reason!r})" if reason else f" ({override_id})"
        elif reason:
            why += f" ({reason})"
        hint = f"`flagmw unkill {override_id}`" if override_id else f"turning {key} back on"
        GraphDrained.__init__(
            self,
            f"run drained at step boundary {step}: {why}; its checkpoint is kept — resume it "
            f"with graph.invoke(None, config) after {hint}",
        )
        self.key = key
        self.kill_reason = reason
        self.override_id = override_id
        self.step = step
        self.message = str(self.reason)
        # GraphDrained.reason is the drain reason text; flagmw's is the kill's reason
        self.reason = reason  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.kill_reason, self.override_id, self.step))
