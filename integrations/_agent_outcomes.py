"""OutcomeMiddleware: run outcomes for ``create_agent`` runs (issue 12 §2).

Put it right after :class:`~flagmw.integrations.langchain.FlagmwMiddleware`, with the
same :class:`~flagmw.rollout.outcomes.OutcomeRecorder` among that middleware's observers
(so refusals and ``flagmw.record_violation`` reach the record)::

    recorder = OutcomeRecorder(open_rollout_store(client.store))
    mw = FlagmwMiddleware(client, name="support-agent", observers=[recorder])
    agent = create_agent(model, tools, middleware=[mw, OutcomeMiddleware(recorder, mw)],
                         checkpointer=saver)

One record per agent turn: started at the turn's first hook, ``completed`` at
``after_agent``, ``failed`` when a model or tool call raises, ``interrupted`` when a tool
calls ``interrupt()`` (the resumed turn is recorded again, ``resumed``). Runs of a graph
wrapped by ``flagmw.wrap`` are left to the wrapper, which records them itself. Nothing
here can fail the run: the recorder swallows and counts its errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain.agents.middleware.types import AgentMiddleware, ModelRequest
from langgraph.errors import GraphInterrupt
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime

from flagmw.integrations._agent_pin import current_config, thread_id
from flagmw.langgraph.run import RunState, current_run
from flagmw.rollout.outcomes import OutcomeRecorder

__all__ = ["OutcomeMiddleware"]


class OutcomeMiddleware(AgentMiddleware[Any, Any, Any]):
    """Records one run outcome per ``create_agent`` turn.

    Args:
        recorder: where outcomes go.
        flagmw: the agent's :class:`~flagmw.integrations.langchain.FlagmwMiddleware`
            (whose pinned run is the one recorded).
    """

    def __init__(self, recorder: OutcomeRecorder, flagmw: Any) -> None:
        super().__init__()
        self.recorder = recorder
        self.flagmw = flagmw

    @property
    def name(self) -> str:
        return "FlagmwOutcomes"

    def _run(self, state: Mapping[str, Any]) -> RunState | None:
        outer = current_run(optional=True)
        if outer is not None and outer.owner is not None:
            return None  # a run of a graph wrapped by flagmw.wrap: the wrapper records it
        try:
            run: RunState | None = self.flagmw._pinned.of(state, thread_id(current_config()))
        except Exception:
            return None
        if run is not None and not self.recorder.started(run):
            self.recorder.run_started(run)
        return run

    def _end(self, run: RunState | None, outcome: str, exc: BaseException | None) -> None:
        if run is not None:
            self.recorder.run_ended(run, outcome, exc)

    def _active(self, run: RunState | None) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext() if run is None else self.recorder.activate(run)

    def before_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._run(state)
        return None

    async def abefore_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._run(state)
        return None

    def after_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._end(self._run(state), "completed", None)
        return None

    async def aafter_agent(self, state: Any, runtime: Runtime[Any]) -> dict[str, Any] | None:
        self._end(self._run(state), "completed", None)
        return None

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], Any]
    ) -> Any:
        run = self._run(request.state)
        try:
            with self._active(run):
                return handler(request)
        except Exception as exc:
            self._end(run, "error", exc)
            raise

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[Any]],
    ) -> Any:
        run = self._run(request.state)
        try:
            with self._active(run):
                return await handler(request)
        except Exception as exc:
            self._end(run, "error", exc)
            raise

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[..., Any]) -> Any:
        run = self._run(request.state)
        try:
            with self._active(run):
                return handler(request)
        except GraphInterrupt as exc:
            self._end(run, "interrupted", exc)
            raise
        except Exception as exc:
            self._end(run, "error", exc)
            raise

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[..., Awaitable[Any]]
    ) -> Any:
        run = self._run(request.state)
        try:
            with self._active(run):
                return await handler(request)
        except GraphInterrupt as exc:
            self._end(run, "interrupted", exc)
            raise
        except Exception as exc:
            self._end(run, "error", exc)
            raise
