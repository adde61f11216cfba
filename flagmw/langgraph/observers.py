"""Telling a run's observers (the trace writer, the outcome recorder, your own): around
each stretch of execution (:class:`_Activation`), at the start and at the end of the run.
An observer that raises is logged and skipped, never allowed to break the run (or to
swallow its exception)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flagmw.langgraph.run import Outcome, RunState

log = logging.getLogger("flagmw")


class _Activation:
    """Enters ``obs.activate(run)`` of every observer around one stretch of execution;
    an observer that raises is logged and skipped, never allowed to break the run (or
    to swallow its exception).

    ``trivial`` tells, after ``__enter__``, that every observer returned a plain
    ``contextlib.nullcontext`` (e.g. the trace writer with no OpenTelemetry SDK
    configured): the wrapper then stops activating for the rest of the invocation.
    """

    __slots__ = ("_entered", "_run", "trivial")

    def __init__(self, run: RunState) -> None:
        self._run = run
        self._entered: list[contextlib.AbstractContextManager[Any]] = []
        self.trivial = True

    def __enter__(self) -> None:
        for obs in self._run.observers:
            try:
                cm = obs.activate(self._run)
                if type(cm) is not contextlib.nullcontext:
                    self.trivial = False
                cm.__enter__()
            except Exception:
                self.trivial = False
                log.warning("flagmw: observer %r failed to activate", obs, exc_info=True)
                continue
            self._entered.append(cm)

    def __exit__(self, *exc: Any) -> None:
        while self._entered:
            cm = self._entered.pop()
            try:
                cm.__exit__(*exc)
            except Exception:
                log.warning("flagmw: observer %r failed to deactivate", cm, exc_info=True)


def _needs_activation(run: RunState) -> bool:
    """Whether any observer of ``run`` may do something in :meth:`RunObserver.activate`:
    True unless every one of them says otherwise through its optional ``activates(run)``
    (see :class:`~flagmw.langgraph.run.RunObserver`); an observer that raises there is
    activated."""
    for obs in run.observers:
        activates = getattr(obs, "activates", None)
        if activates is None:
            return True
        try:
            if activates(run):
                return True
        except Exception:
            log.warning("flagmw: observer %r failed in activates", obs, exc_info=True)
            return True
    return False


def _notify_started(run: RunState) -> None:
    for obs in run.observers:
        try:
            obs.run_started(run)
        except Exception:
            log.warning("flagmw: observer %r failed in run_started", obs, exc_info=True)


def _notify_ended(run: RunState, outcome: Outcome, error: BaseException | None) -> None:
    for obs in run.observers:
        try:
            obs.run_ended(run, outcome, error)
        except Exception:
            log.warning("flagmw: observer %r failed in run_ended", obs, exc_info=True)
