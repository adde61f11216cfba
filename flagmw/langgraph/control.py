"""Step-boundary control: hot flags re-resolved and run kills drained through
LangGraph's ``RunControl``."""

from __future__ import annotations

import itertools
import logging
import threading
from typing import TYPE_CHECKING

# the merge LangGraph itself applies to an invocation's config (ambient config, the
# reset of an inherited checkpoint coordinate); private in langgraph 1.2
from langgraph.runtime import RunControl

from flagmw.client.client import FlagClient
from flagmw.langgraph.run import RunState, active_run_kill

if TYPE_CHECKING:  # pragma: no cover
    pass


log = logging.getLogger("flagmw")


class _FlagControl(RunControl):
    """LangGraph's run control with flagmw's step-boundary check.

    LangGraph reads ``drain_requested`` once per superstep, before the superstep's tasks
    run and after the previous checkpoint was handed to the saver
    (``langgraph/pregel/_loop.py`` ``tick``); subgraphs without a control of their own
    use their parent's (``Pregel.stream``: ``control or parent_runtime.control``), so
    their supersteps are step boundaries of the run too. When nothing changed, the
    check is one ``client.poll()`` and an integer compare.
    """

    __slots__ = ("_checked", "_count", "_inner", "_kill_keys", "_lock", "_run", "drain_step")

    def __init__(self, run: RunState, inner: RunControl | None, kill_keys: tuple[str, ...]) -> None:
        super().__init__()
        self._run = run
        self._inner = inner
        self._kill_keys = kill_keys
        self._lock = threading.Lock()
        self._count = itertools.count()
        self._checked = False  # run kills are checked at the first boundary in any case
        self.drain_step: int | None = None

    @property
    def drain_requested(self) -> bool:
        run = self._run
        # next() on itertools.count is atomic: parallel subgraphs get distinct indexes
        index = next(self._count)
        run.step = index + 1
        if self._drain_reason is not None:
            return True
        client = run.client
        try:
            # a frozen run (a replay) never takes the live store's changes
            changed = client is not None and not run.frozen and client.poll() != run.generation
        except Exception:  # a store problem must never crash the run
            log.exception("flagmw: client.poll() failed at a step boundary")
            changed = False
        if client is not None and (changed or not self._checked):
            self._boundary(client, index)
            if self._drain_reason is not None:
                return True
        inner = self._inner
        return inner is not None and inner.drain_requested

    @property
    def drain_reason(self) -> str | None:
        if self._drain_reason is not None:
            return self._drain_reason
        return self._inner.drain_reason if self._inner is not None else None

    def checked_at_start(self) -> None:
        """The run's RunConfig was just checked for a run kill (it is what the first
        boundary would check when nothing changes before it): when none is in force,
        the first boundary only polls, as every later one does. Called by the wrapper
        once the run has started (hot values of a resume brought up to date)."""
        try:
            if active_run_kill(self._run.rc, self._kill_keys) is None:
                self._checked = True
        except Exception:  # a flag problem must never crash the run: checked at the boundary
            log.exception("flagmw: the run-kill check at run start failed")

    def _boundary(self, client: FlagClient, index: int) -> None:
        run = self._run
        with self._lock:
            try:
                generation = client.generation
                if generation != run.generation and not run.frozen:
                    run.refresh_hot(generation, step=index)
                self._checked = True
                if self._drain_reason is None:
                    key = active_run_kill(run.rc, self._kill_keys)
                    if key is not None:
                        prov = run.rc.provenance[key]
                        self._drain((key, prov.reason, prov.override_id), index)
            except Exception:  # a flag problem must never crash the run
                log.exception("flagmw: step boundary check failed; the run keeps its config")

    def _drain(self, kill: tuple[str, str | None, str | None], index: int) -> None:
        run = self._run
        key, reason, override_id = kill
        run.drain = kill
        self.drain_step = index
        run.event("run_drained", key=key, reason=reason, override_id=override_id, step=index)
        self._drain_reason = f"flagmw: {key} is off" + (f" ({reason})" if reason else "")
