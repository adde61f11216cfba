"""Run provenance in OpenTelemetry: the root-span writer (:class:`RunTracer`), the
attribute encoding, and :func:`configure` for OTLP/HTTP export (``flagmw[otel]``)."""

from flagmw.tracing.writer import (
    CANCELLED_EVENT,
    EVENT_PREFIX,
    INTERRUPTED_EVENT,
    RunTracer,
    configure,
    parse_span_ref,
)

__all__ = [
    "CANCELLED_EVENT",
    "EVENT_PREFIX",
    "INTERRUPTED_EVENT",
    "RunTracer",
    "configure",
    "parse_span_ref",
]
