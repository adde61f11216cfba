"""Config in the trace: the OpenTelemetry writer of wrapped runs.

:class:`RunTracer` is a :class:`~flagmw.run.RunObserver`. For each invocation of a
graph wrapped with :func:`flagmw.wrap` it opens a span ``invoke_agent {name}`` (kind
INTERNAL, child of the caller's current span) — or, with ``span="enrich"``, writes onto
the caller's current span — carrying the run's snapshot rev, config hash, context ids,
active override ids, per-flag value and source within an attribute budget, and the
whole RunConfig with provenance as one JSON attribute. Hot flag changes, tool
refusals, drains and model routes become span events; interrupts, drains and errors
set the span's status. A resumed run gets a new span with a *span link* to the span of
the invocation it resumes.

At run end it records what reached the run after its start: every override id, the hot
keys that changed with their effective values, and the number of changes. With
``evaluation_events=True`` it also emits the ``feature_flag.evaluation`` log-based events.

Attribute names, event names and the choices behind them are documented in
``docs/tracing.md``. This module needs ``opentelemetry-api`` (``pip install
'flagmw[otel]'``); the set-up helper :func:`flagmw.tracing.configure` lives in
:mod:`flagmw.tracing.export`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from flagmw._version import __version__
from flagmw.langgraph.run import Outcome, RunState
from flagmw.tracing import attributes as A
from flagmw.tracing import otel_logs
from flagmw.tracing.limits import attribute_limit, warn_if_evicted
from flagmw.tracing.spanref import parse_span_ref, span_ref

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry._logs import Logger, LoggerProvider
    from opentelemetry.sdk.trace import SpanLimits

__all__ = [
    "CANCELLED_EVENT",
    "EVENT_PREFIX",
    "INTERRUPTED_EVENT",
    "RunTracer",
    "parse_span_ref",
]

log = logging.getLogger("flagmw.tracing")

#: Span events of :data:`flagmw.run.EVENT_NAMES` are named ``flagmw.<name>``; their
#: attributes are ``flagmw.<field>``.
EVENT_PREFIX = "flagmw."
#: The span event added when a run stops at an ``interrupt()``.
INTERRUPTED_EVENT = "flagmw.interrupted"
#: The span event added when the consumer abandoned the run: a stream closed before its
#: end (``break`` out of ``graph.stream(...)``) or an ``astream`` / ``ainvoke`` task
#: cancelled. The outcome attribute is then ``cancelled``.
CANCELLED_EVENT = "flagmw.cancelled"

SpanMode = Literal["root", "enrich"]

# Attributes kept free for what run_ended adds (flagmw.outcome, error.type,
# flagmw.pinned_override_ids) and a little headroom, when the per-flag budget is fitted to
# the span's attribute limit.
_RESERVE = 5
#: At most this many changed hot keys get ``flagmw.effective.<key>.value`` / ``.source``
#: (``flagmw.changed_keys`` always lists every one). Their room is reserved at run start.
EFFECTIVE_KEYS_MAX = 8
_EVALUATION_FEATURE = "RunTracer(evaluation_events=True)"
_NULL_CONTEXT: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()


class _RunSpan:
    """What the tracer keeps about one invocation between run_started and run_ended."""

    __slots__ = (
        "drain_seen",
        "effective_slots",
        "evaluated",
        "owned",
        "protected",
        "run",
        "sensitive",
        "span",
    )

    def __init__(self, run: RunState, span: trace.Span | None, owned: bool) -> None:
        self.run = run
        self.span = span
        self.owned = owned
        # Run-level attributes, in write order; re-set at the end of the run so they are
        # the newest keys of the span and the SDK's eviction cannot reach them.
        self.protected: dict[str, Any] = {}
        self.sensitive: frozenset[str] = frozenset()
        self.drain_seen = False
        self.evaluated: set[str] = set()
        # Changed hot keys that get flagmw.effective.<key>.* at run end (room reserved).
        self.effective_slots = 0


class RunTracer:
    """Writes the configuration of each wrapped run into the trace (a
    :class:`~flagmw.run.RunObserver`).

    ``flagmw.wrap(graph, client)`` creates ``RunTracer()`` when OpenTelemetry is
    installed: it uses the global tracer provider and costs nearly nothing when none is
    configured (no span is valid, so nothing is built). Pass your own to change options::

        graph = flagmw.wrap(builder.compile(), client, tracer=RunTracer(user_ids="hash"))

    Args:
        span: ``"root"`` (default): a new span ``invoke_agent {name}``, kind INTERNAL,
            child of the caller's current span (or a trace root), made current only
            while the graph executes. ``"enrich"``: write the same attributes and events
            onto the caller's current span, and leave ending it to the caller (falls
            back to ``"root"`` when there is no recording current span).
        flag_budget: at most this many flags get ``flagmw.flag.<key>.value`` /
            ``.source`` attributes (2 attributes each): overridden keys first, then hot
            keys, then the rest sorted. The budget is further fitted to the span's
            attribute limit (the SDK default is 128, ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``)
            so flagmw never evicts an attribute itself; ``flagmw.flags_truncated`` /
            ``flagmw.flags_omitted`` tell when the budget cut. ``flagmw.config`` always
            has every key (within ``max_config_bytes``).
        user_ids: ``"keep"`` the user id, ``"hash"`` it (``"sha256:"`` + 16 hex digits of
            sha256(``user_id_salt`` + user id)), or ``"drop"`` it — in
            ``flagmw.user_id``, in the context inside ``flagmw.config`` and in
            ``feature_flag.context.id``.
        user_id_salt: the salt of ``user_ids="hash"`` (default empty: recomputable by
            anyone who knows the id; pseudonymous, not anonymous).
        evaluation_events: also emit one ``feature_flag.evaluation`` log-based event per
            key when a run's config is resolved (and per hot change), through
            ``opentelemetry._logs``, correlated with the run's span. Off by default.
        tracer_provider: the tracer provider (default: the global one, looked up lazily
            so a provider installed later is used).
        logger_provider: the logger provider of the evaluation events (default: the
            global one).
        max_config_bytes: cap of the ``flagmw.config`` JSON attribute in UTF-8 bytes
            (default 16384); ``0`` leaves the attribute out.
        provider_name: ``gen_ai.provider.name`` to set at span creation (e.g.
            ``"openai"``) when every model of the agent comes from one provider;
            default None (left out: a flag-routed agent can call several providers in
            one run, and the value is decided per model call, after the span starts).
        span_limits: the :class:`opentelemetry.sdk.trace.SpanLimits` of your tracer
            provider, when you built it with explicit limits: the attribute budget is
            fitted under its ``max_span_attributes``. Default: ``SpanLimits()``, i.e.
            ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`` / ``OTEL_ATTRIBUTE_COUNT_LIMIT`` / 128 — what
            a provider built without limits uses (OpenTelemetry has no public API to read
            a provider's limits; see :mod:`flagmw.tracing.limits`).

    Raises:
        ValueError: an option out of range (the message names it).
        flagmw.tracing.otel_logs.LogsAPIUnavailable: ``evaluation_events=True`` and
            OpenTelemetry's experimental logs API (``opentelemetry._logs``) is missing or
            not the one flagmw was tested with (an ``ImportError``).
    """

    def __init__(
        self,
        *,
        span: SpanMode = "root",
        flag_budget: int = 40,
        user_ids: A.UserIdPolicy = "keep",
        user_id_salt: str = "",
        evaluation_events: bool = False,
        tracer_provider: trace.TracerProvider | None = None,
        logger_provider: LoggerProvider | None = None,
        max_config_bytes: int = 16384,
        provider_name: str | None = None,
        span_limits: SpanLimits | None = None,
    ) -> None:
        if span not in ("root", "enrich"):
            raise ValueError(f"RunTracer(span={span!r}): expected 'root' or 'enrich'")
        if user_ids not in A.USER_ID_POLICIES:
            raise ValueError(f"RunTracer(user_ids={user_ids!r}): expected 'keep', 'hash' or 'drop'")
        if flag_budget < 0:
            raise ValueError(f"RunTracer(flag_budget={flag_budget}): must be 0 or more (flags)")
        if max_config_bytes != 0 and max_config_bytes < 256:
            raise ValueError(
                f"RunTracer(max_config_bytes={max_config_bytes}): must be 0 (no flagmw.config "
                "attribute) or at least 256 bytes"
            )
        if evaluation_events:
            otel_logs.api(_EVALUATION_FEATURE)  # fail at set-up, not inside a run
        self.span_mode: SpanMode = span
        self.flag_budget = flag_budget
        self.user_ids: A.UserIdPolicy = user_ids
        self.user_id_salt = user_id_salt
        self.evaluation_events = evaluation_events
        self.max_config_bytes = max_config_bytes
        self.provider_name = provider_name
        self.attribute_limit = attribute_limit(span_limits)
        self._warned_dropped = False
        self._provider = tracer_provider
        self._tracer = trace.get_tracer("flagmw", __version__, tracer_provider=tracer_provider)
        self._logger_provider = logger_provider
        self._logger: Logger | None = None
        # id(run) → state. RunState has __slots__ without __weakref__; the entry holds
        # the run itself, so its id cannot be reused while the entry exists, and
        # run_ended removes it.
        self._runs: dict[int, _RunSpan] = {}

    def __repr__(self) -> str:
        return (
            f"RunTracer(span={self.span_mode!r}, flag_budget={self.flag_budget}, "
            f"user_ids={self.user_ids!r}, evaluation_events={self.evaluation_events})"
        )

    # -- RunObserver ----------------------------------------------------------------------

    def run_started(self, run: RunState) -> None:
        """Open the run's span (or pick the caller's, in enrich mode), write its
        attributes, and set ``run.span_ref``. Never raises."""
        try:
            self._run_started(run)
        except Exception:  # tracing must never break a run
            log.warning("flagmw: tracing run_started failed for %r", run, exc_info=True)

    def activate(self, run: RunState) -> contextlib.AbstractContextManager[Any]:
        """A context manager that makes the run's span current (for one stretch of
        execution; never held across a ``yield``). A no-op context when the run has no
        span."""
        entry = self._runs.get(id(run))
        if entry is None or entry.run is not run or entry.span is None:
            return _NULL_CONTEXT
        # The span's status is decided in run_ended from the outcome: an exception
        # crossing this block (an interrupt or a drain travels as one) is not an error.
        return trace.use_span(
            entry.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def activates(self, run: RunState) -> bool:
        """False when :meth:`activate` would return a no-op context for ``run`` (it has
        no span: no OpenTelemetry SDK configured), asked once after :meth:`run_started`
        (:class:`~flagmw.langgraph.run.RunObserver`)."""
        entry = self._runs.get(id(run))
        return entry is not None and entry.run is run and entry.span is not None

    def run_event(self, run: RunState, name: str, attributes: Mapping[str, Any]) -> None:
        """Add span event ``flagmw.<name>`` with attributes ``flagmw.<field>``; values of
        sensitive flags are redacted. Never raises."""
        entry = self._runs.get(id(run))
        if entry is None or entry.run is not run:
            return
        try:
            self._run_event(entry, name, attributes)
        except Exception:
            log.warning("flagmw: tracing event %s failed for %r", name, run, exc_info=True)

    def run_ended(self, run: RunState, outcome: Outcome, error: BaseException | None) -> None:
        """Set the outcome, status and final events, re-assert the run-level attributes
        and end the span (root mode). An ``error`` whose exception is ``GeneratorExit`` or
        ``asyncio.CancelledError`` (the consumer closed the stream or cancelled the task)
        is recorded as outcome ``cancelled`` with status UNSET. Never raises."""
        entry = self._runs.pop(id(run), None)
        if entry is None or entry.run is not run:
            return
        try:
            self._run_ended(entry, outcome, error)
        except Exception:
            log.warning("flagmw: tracing run_ended failed for %r", run, exc_info=True)
            if entry.owned and entry.span is not None:
                with contextlib.suppress(Exception):
                    entry.span.end()

    # -- implementation -------------------------------------------------------------------

    def _tracing_off(self) -> bool:
        """True when no tracer provider is installed (the API's proxy or no-op one): then
        no span can record, and the whole start is skipped (~1 µs instead of the ~5 µs
        of a no-op ``start_span``)."""
        provider = self._provider if self._provider is not None else trace.get_tracer_provider()
        return isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))

    def _run_started(self, run: RunState) -> None:
        if not self.evaluation_events and self._tracing_off():
            run.span_ref = run.previous_span_ref
            return
        # The pinned RunConfig (rehydrated on resume): its config_hash names the run in the
        # checkpoint and in the LangChain metadata; hot values that moved since are
        # reported as flagmw.flag_changed events.
        rc = run.pinned
        creation: dict[str, Any] = {
            A.GEN_AI_OPERATION_NAME: A.INVOKE_AGENT,
            A.GEN_AI_AGENT_NAME: run.name,
        }
        if run.thread_id is not None:
            creation[A.GEN_AI_CONVERSATION_ID] = run.thread_id
        if self.provider_name:
            creation[A.GEN_AI_PROVIDER_NAME] = self.provider_name
        previous = parse_span_ref(run.previous_span_ref) if run.resumed else None
        link_attrs = {A.LINK_KIND: "resumes"}

        span: trace.Span | None = None
        owned = True
        if self.span_mode == "enrich":
            current = trace.get_current_span()
            if current.is_recording():
                span, owned = current, False
                span.set_attributes(creation)
                if previous is not None:
                    span.add_link(previous, link_attrs)
        if span is None:
            span = self._tracer.start_span(
                f"{A.INVOKE_AGENT} {run.name}",
                kind=SpanKind.INTERNAL,
                attributes=creation,
                links=[Link(previous, link_attrs)] if previous is not None else None,
            )
        ctx = span.get_span_context()
        recording = ctx.is_valid and span.is_recording()
        # Without a recorded span this invocation cannot be linked to; carry the older
        # reference so a later traced resume still links to the last traced invocation.
        run.span_ref = span_ref(ctx) if recording else run.previous_span_ref
        if not ctx.is_valid and not self.evaluation_events:
            return  # no tracing configured: nothing more to build (the common no-op path)
        entry = _RunSpan(run, span if ctx.is_valid else None, owned)
        entry.sensitive = _sensitive_keys(run)
        self._runs[id(run)] = entry
        if recording:
            self._write_attributes(entry, creation)
        if self.evaluation_events and not run.resumed:
            # A resume rehydrates the pinned RunConfig: nothing is evaluated again.
            for key in sorted(rc):
                self._emit_evaluation(entry, key, rc.get(key), rc.provenance[key])

    def _write_attributes(self, entry: _RunSpan, creation: Mapping[str, Any]) -> None:
        run, span = entry.run, entry.span
        assert span is not None
        rc = run.pinned
        summary = A.run_summary(
            rc,
            creation,
            user_ids=self.user_ids,
            salt=self.user_id_salt,
            resumed=bool(run.resumed),
            stale=run.client is not None and run.client.serving_stale,
        )

        hot = run.client.registry.hot_keys if run.client is not None else frozenset()
        order = A.flag_order(rc, hot)
        config = ""
        if self.max_config_bytes:
            doc = A.config_document(rc, entry.sensitive, self.user_ids, self.user_id_salt)
            config = A.capped_json(doc, order, self.max_config_bytes)

        # The per-flag budget, fitted to what the span can hold without evicting anything:
        # the run-level keys, the config, the keys run_ended adds, and (enrich mode) the
        # caller's own attributes already on the span.
        budget = self.flag_budget
        limit = self.attribute_limit
        entry.effective_slots = min(EFFECTIVE_KEYS_MAX, sum(1 for k in hot if k in rc))
        if limit is not None:
            entry.effective_slots = min(entry.effective_slots, max(0, (limit // 4)))
            taken = len(summary) + 3 + (1 if config else 0) + _RESERVE
            taken += 2 * entry.effective_slots
            if not entry.owned:
                taken += len(getattr(span, "attributes", None) or {})
            budget = max(0, min(budget, (limit - taken) // 2))
        written = order[:budget]
        summary[A.FLAG_COUNT] = len(order)
        summary[A.FLAGS_TRUNCATED] = len(written) < len(order)
        summary[A.FLAGS_OMITTED] = len(order) - len(written)

        # Oldest first: per-flag attributes, then the config, then the run-level summary,
        # so a full span drops per-flag attributes before anything that matters more.
        span.set_attributes(A.flag_attributes(rc, written, entry.sensitive))
        protected = entry.protected
        if config:
            protected[A.CONFIG] = config
        protected.update(summary)
        span.set_attributes(protected)
        if entry.owned and not self._warned_dropped:
            # Nobody else wrote to the span yet: an eviction means a lower provider limit.
            self._warned_dropped = warn_if_evicted(span, self.attribute_limit)

    def _run_event(self, entry: _RunSpan, name: str, attributes: Mapping[str, Any]) -> None:
        key = attributes.get("key")
        redact = isinstance(key, str) and key in entry.sensitive
        if name == "run_drained":
            entry.drain_seen = True
        if entry.span is not None:
            attrs: dict[str, Any] = {}
            for field, value in attributes.items():
                if value is None:
                    continue
                if redact and field in ("old", "new"):
                    attrs[EVENT_PREFIX + field] = A.REDACTED
                else:
                    attrs[EVENT_PREFIX + field] = A.event_value(value)
            entry.span.add_event(EVENT_PREFIX + name, attrs)
        if name == "flag_changed" and self.evaluation_events and isinstance(key, str):
            prov = entry.run.rc.provenance.get(key)
            if prov is not None:
                entry.evaluated.discard(key)  # a hot change is a new evaluation
                self._emit_evaluation(entry, key, attributes.get("new"), prov)

    def _run_ended(self, entry: _RunSpan, outcome: Outcome, error: BaseException | None) -> None:
        span, run = entry.span, entry.run
        if span is None:
            return
        if not span.is_recording():
            if entry.owned:
                span.end()
            return
        protected = entry.protected
        if outcome == "cancelled" or (
            outcome == "error" and isinstance(error, GeneratorExit | asyncio.CancelledError)
        ):
            # The consumer stopped listening (closed the stream, cancelled the task): the
            # graph did not fail, so this is not an error of the run.
            protected[A.OUTCOME] = "cancelled"
            span.add_event(
                CANCELLED_EVENT,
                {EVENT_PREFIX + "step": run.step, EVENT_PREFIX + "reason": type(error).__name__},
            )
        else:
            protected[A.OUTCOME] = outcome
        if outcome == "interrupted":
            span.add_event(INTERRUPTED_EVENT, {EVENT_PREFIX + "step": run.step})
        elif outcome == "drained":
            key, reason, override_id = run.drain or (None, None, None)
            if not entry.drain_seen:
                self._run_event(
                    entry,
                    "run_drained",
                    {"key": key, "reason": reason, "override_id": override_id, "step": run.step},
                )
            protected[A.ERROR_TYPE] = "drained"
            span.set_status(
                Status(
                    StatusCode.ERROR,
                    f"drained by kill switch {key}: {reason}" if key else "drained",
                )
            )
        elif outcome == "error" and protected[A.OUTCOME] == "error":
            protected[A.ERROR_TYPE] = A.error_type(error)
            if error is not None:
                span.record_exception(error, escaped=True)
            span.set_status(
                Status(StatusCode.ERROR, A.clip(f"{type(error).__name__}: {error}", 512))
                if error is not None
                else Status(StatusCode.ERROR)
            )
        self._write_effective(entry)
        # Re-setting a key moves it to the newest position of the SDK's
        # BoundedAttributes (_setitem_locked deletes, then inserts), and brings back any
        # evicted by others since run_started: the run-level keys end the span as its
        # newest attributes.
        span.set_attributes(protected)
        if entry.owned:
            span.end()

    def _write_effective(self, entry: _RunSpan) -> None:
        """What reached the run after its start, as run-level attributes (re-set last,
        so eviction cannot reach them, and filterable in trace UIs): every override id
        that reached it, the pinned ones, the number of hot changes, the hot keys that
        changed and — for up to :data:`EFFECTIVE_KEYS_MAX` of them, in the room reserved
        at run start — their value and source in effect at the end."""
        run, protected = entry.run, entry.protected
        pinned, effective = run.pinned, run.rc
        changes = A.run_changes(pinned, effective)
        changed = sorted({c.key for c in changes})
        protected[A.OVERRIDE_IDS] = A.reached_override_ids(pinned, effective, run.events)
        protected[A.PINNED_OVERRIDE_IDS] = list(pinned.override_ids)
        protected[A.CHANGE_COUNT] = len(changes)
        protected[A.CHANGED_KEYS] = changed
        shown = [k for k in changed[: entry.effective_slots] if k in effective]
        protected.update(A.flag_attributes(effective, shown, entry.sensitive, A.EFFECTIVE_PREFIX))

    def _emit_evaluation(self, entry: _RunSpan, key: str, value: Any, prov: Any) -> None:
        if key in entry.evaluated:
            return
        entry.evaluated.add(key)
        if self._logger is None:
            self._logger = otel_logs.get_logger(
                _EVALUATION_FEATURE, __version__, self._logger_provider
            )
        attrs = A.evaluation_attributes(
            entry.run.pinned,
            key,
            value,
            prov,
            sensitive=key in entry.sensitive,
            user_ids=self.user_ids,
            salt=self.user_id_salt,
        )
        span_ctx = trace.set_span_in_context(entry.span) if entry.span is not None else None
        self._logger.emit(event_name=A.FEATURE_FLAG_EVALUATION, attributes=attrs, context=span_ctx)


def _sensitive_keys(run: RunState) -> frozenset[str]:
    if run.client is None:
        return frozenset()
    return frozenset(f.key for f in run.client.registry if f.sensitive)
