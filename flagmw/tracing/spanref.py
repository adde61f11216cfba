"""Span references: how a resumed invocation finds the span of the one it resumes.

:class:`~flagmw.tracing.RunTracer` writes ``"<32 hex trace id>-<16 hex span id>"`` into
:attr:`RunState.span_ref <flagmw.langgraph.run.RunState>`; the wrapper stores it with
the run's checkpoint, and the span of a later resume gets a *span link* to it (W3C
trace-context ids in lower-case hex).
"""

from __future__ import annotations

from opentelemetry.trace import SpanContext, TraceFlags

__all__ = ["parse_span_ref", "span_ref"]


def parse_span_ref(ref: str | None) -> SpanContext | None:
    """The span context named by a ``span_ref`` (``"<32 hex trace id>-<16 hex span
    id>"``, as :class:`RunTracer` writes into :attr:`RunState.span_ref`), or None when
    ``ref`` is empty or malformed."""
    if not ref:
        return None
    trace_hex, _, span_hex = ref.partition("-")
    if len(trace_hex) != 32 or len(span_hex) != 16:
        return None
    try:
        trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    except ValueError:
        return None
    ctx = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return ctx if ctx.is_valid else None


def span_ref(ctx: SpanContext) -> str:
    """The reference of ``ctx`` (the inverse of :func:`parse_span_ref`)."""
    return f"{ctx.trace_id:032x}-{ctx.span_id:016x}"
