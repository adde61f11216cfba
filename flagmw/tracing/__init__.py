"""Run provenance in OpenTelemetry: the root-span writer (:class:`RunTracer`), the
attribute encoding, and :func:`configure` for OTLP/HTTP export (``flagmw[otel]``)."""

from flagmw.tracing.export import ExportStatus, configure, export_status
from flagmw.tracing.otel_logs import LogsAPIUnavailable
from flagmw.tracing.writer import (
    CANCELLED_EVENT,
    EVENT_PREFIX,
    INTERRUPTED_EVENT,
    RunTracer,
    parse_span_ref,
)

__all__ = [
    "CANCELLED_EVENT",
    "EVENT_PREFIX",
    "INTERRUPTED_EVENT",
    "ExportStatus",
    "LogsAPIUnavailable",
    "RunTracer",
    "configure",
    "export_status",
    "parse_span_ref",
]
