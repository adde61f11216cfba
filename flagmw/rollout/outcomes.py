"""Run outcomes: one record per invocation of a wrapped graph (or a ``create_agent`` run
with the middleware), buffered and flushed to the rollout store in the background.

Recording never blocks or fails a run: the observer hooks only append to an in-memory
buffer (bounded: when full, records are dropped and counted), a daemon thread flushes
every ``flush_interval`` seconds, and every error is swallowed and counted
(:attr:`OutcomeRecorder.errors`, :attr:`OutcomeRecorder.dropped`).

A record (JSON primitives)::

    {"at": 1700000000.0, "run_id": "…", "thread_id": "t-1", "agent": "support-agent",
     "version": "v1.3.3", "rollout": "support-agent-1.3.3", "stage": 25, "tenant": "acme",
     "outcome": "completed",            # completed | failed | drained | interrupted | cancelled
     "resumed": false, "latency_ms": 812.4, "model_calls": 3, "model_errors": 0,
     "input_tokens": 1200, "output_tokens": 180, "cost": 0.0042, "tool_errors": 0,
     "refusals": 1, "violations": [{"kind": "pii", "detail": "…"}], "snapshot_rev": 7}

Cost: tokens × the price table (route → ``{"input": …, "output": …}`` per 1 000 tokens),
taken from the run's value of the registry flag ``prices_key`` (default
``model.prices``, a json flag) or else the ``prices`` argument. A token count whose
model route is unknown is priced at the run's ``route_key`` value (``model.primary``).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from flagmw.core.versions import ROLLOUT_ATTR, STAGE_ATTR, VERSION_ATTR, split_ref
from flagmw.langgraph.run import RunState, current_run
from flagmw.rollout.store import RolloutStore

__all__ = ["OUTCOMES", "OutcomeRecorder", "record_violation"]

log = logging.getLogger("flagmw")

#: the wrapper's outcome → the recorded outcome
OUTCOMES: Mapping[str, str] = {
    "completed": "completed",
    "error": "failed",
    "drained": "drained",
    "interrupted": "interrupted",
    "cancelled": "cancelled",
}


def record_violation(kind: str, detail: str = "") -> bool:
    """Report a policy violation of the current run (a ``policy_violation`` run event:
    in its outcome record and as a span event). Returns False, doing nothing, outside a
    wrapped run; never raises."""
    try:
        run = current_run(optional=True)
        if run is None:
            return False
        run.event("policy_violation", kind=str(kind)[:200], detail=str(detail)[:1000])
        return True
    except Exception:  # reporting must never break the run
        return False


class _Acc:
    __slots__ = ("counter", "refusals", "started", "violations")

    def __init__(self, counter: Any) -> None:
        self.started = time.monotonic()
        self.counter = counter
        self.refusals = 0
        self.violations: list[dict[str, str]] = []


class OutcomeRecorder:
    """A :class:`~flagmw.langgraph.run.RunObserver` that records run outcomes.

    Args:
        store: where records go.
        clock: seconds since the epoch (the record's ``at``).
        prices: route → ``{"input": price, "output": price}`` per 1 000 tokens.
        prices_key: a registry json flag holding the price table (wins over ``prices``).
        route_key: the flag naming the run's model route (prices unknown routes).
        flush_interval: seconds between background flushes.
        max_buffer: records held before new ones are dropped (and counted).
        meter_provider: an OpenTelemetry ``MeterProvider`` for the metrics (default: the
            global one); ``False``: no metrics.

    Example::

        recorder = OutcomeRecorder(open_rollout_store(client.store))
        graph = flagmw.wrap(builder.compile(checkpointer=saver), client,
                            observers=[recorder])
    """

    def __init__(
        self,
        store: RolloutStore,
        *,
        clock: Callable[[], float] = time.time,
        prices: Mapping[str, Mapping[str, float]] | None = None,
        prices_key: str = "model.prices",
        route_key: str = "model.primary",
        flush_interval: float = 1.0,
        max_buffer: int = 10_000,
        meter_provider: Any = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.prices = dict(prices or {})
        self.prices_key = prices_key
        self.route_key = route_key
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.errors = 0  #: flush or metric errors swallowed
        self.dropped = 0  #: records dropped because the buffer was full
        self.recorded = 0  #: records written to the store
        self._runs: dict[int, _Acc] = {}
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._metrics: Any = None
        if meter_provider is not False:
            try:
                from flagmw.rollout.metrics import OutcomeMetrics

                self._metrics = OutcomeMetrics(meter_provider)
            except Exception:  # no OpenTelemetry: records only
                self._metrics = None

    # -- RunObserver ----------------------------------------------------------------------

    def run_started(self, run: RunState) -> None:
        if run.parent is not None:
            return  # a nested wrapped graph: its parent's record covers it
        from flagmw.rollout.usage import UsageCounter

        runs = self._runs
        if len(runs) >= self.max_buffer:  # runs that never ended (a lost host): bounded
            runs.pop(next(iter(runs)))
        runs[id(run)] = _Acc(UsageCounter())

    def started(self, run: RunState) -> bool:
        """True when ``run`` is being recorded."""
        return id(run) in self._runs

    #: the optional ``RunObserver.activates``: activated while ``run`` is being recorded
    #: (its model calls are counted)
    activates = started

    def activate(self, run: RunState) -> contextlib.AbstractContextManager[Any]:
        acc = self._runs.get(id(run))
        if acc is None:
            return contextlib.nullcontext()
        from flagmw.rollout.usage import counting

        return counting(acc.counter)

    def run_event(self, run: RunState, name: str, attributes: Mapping[str, Any]) -> None:
        acc = self._runs.get(id(run))
        if acc is None:
            return
        if name == "tool_refused":
            acc.refusals += 1
        elif name == "policy_violation":
            acc.violations.append(
                {"kind": str(attributes.get("kind")), "detail": str(attributes.get("detail"))}
            )

    def run_ended(self, run: RunState, outcome: str, error: BaseException | None) -> None:
        acc = self._runs.pop(id(run), None)
        if acc is None:
            return
        try:
            self.add(self._record(run, outcome, acc))
        except Exception:
            self.errors += 1
            log.debug("flagmw: building an outcome record failed", exc_info=True)

    # -- records ---------------------------------------------------------------------------

    def _record(self, run: RunState, outcome: str, acc: _Acc) -> dict[str, Any]:
        rc = run.pinned
        ctx = rc.context
        attrs = ctx.attributes or {}
        ref = attrs.get(VERSION_ATTR)
        agent, version = run.name, None
        if isinstance(ref, str):
            with contextlib.suppress(ValueError):
                agent, version = split_ref(ref)
        counter = acc.counter
        inp, out = counter.totals()
        return {
            "at": self.clock(),
            "run_id": ctx.run_id,
            "thread_id": run.thread_id,
            "agent": agent,
            "version": version,
            "rollout": attrs.get(ROLLOUT_ATTR),
            "stage": attrs.get(STAGE_ATTR),
            "arm": attrs.get("flagmw.arm"),
            "tenant": ctx.tenant_id,
            "user": ctx.user_id,
            "outcome": OUTCOMES.get(outcome, outcome),
            "resumed": run.resumed,
            "latency_ms": round((time.monotonic() - acc.started) * 1000.0, 3),
            "model_calls": counter.model_calls,
            "model_errors": counter.model_errors,
            "input_tokens": inp,
            "output_tokens": out,
            "cost": self._cost(run, counter.tokens),
            "tool_errors": counter.tool_errors,
            "refusals": acc.refusals,
            "violations": acc.violations,
            "snapshot_rev": rc.snapshot_rev,
            "environment": rc.environment,
        }

    def _cost(self, run: RunState, tokens: Mapping[str, list[int]]) -> float:
        if not tokens:
            return 0.0
        rc = run.rc
        table: Any = self.prices
        if self.prices_key in rc:
            table = rc.get(self.prices_key) or self.prices
        fallback = rc.get(self.route_key) if self.route_key in rc else None
        total = 0.0
        for route, (inp, out) in tokens.items():
            price = table.get(route) or table.get(fallback) or {}
            total += inp / 1000.0 * float(price.get("input", 0.0))
            total += out / 1000.0 * float(price.get("output", 0.0))
        return round(total, 8)

    def add(self, record: dict[str, Any]) -> None:
        """Buffer one record (dropped and counted when the buffer is full); starts the
        background flusher on first use (and again in a forked child)."""
        with self._lock:
            if len(self._buffer) >= self.max_buffer:
                self.dropped += 1
                return
            self._buffer.append(record)
            if self._thread is None or self._pid != os.getpid():
                self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._loop, name="flagmw-outcomes", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write the buffered records now; returns how many were written (0 on a store
        error: the records are dropped and :attr:`errors` counts it)."""
        with self._lock:
            batch = list(self._buffer)
            self._buffer.clear()
        if not batch:
            return 0
        try:
            self.store.record_outcomes(batch)
        except Exception:
            self.errors += 1
            self.dropped += len(batch)
            log.warning("flagmw: writing %d run outcomes failed", len(batch), exc_info=True)
            return 0
        self.recorded += len(batch)
        if self._metrics is not None:
            for o in batch:
                try:
                    self._metrics.emit(o)
                except Exception:
                    self.errors += 1
        return len(batch)

    def close(self) -> None:
        """Flush what is buffered and stop the background thread."""
        self._closed = True
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()
