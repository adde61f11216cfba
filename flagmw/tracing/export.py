"""One-call OpenTelemetry set-up (:func:`configure`) and what became of the export
(:func:`export_status`), for applications and scripts that do not configure
OpenTelemetry themselves (``flagmw demo --otlp-endpoint`` is one).

Needs the OpenTelemetry SDK and the OTLP/HTTP exporter (``pip install 'flagmw[otel]'``).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace

from flagmw.tracing import otel_logs

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["ExportStatus", "configure", "export_status"]

log = logging.getLogger("flagmw.tracing")

_configure_lock = threading.Lock()
# provider → the exporters configure() already attached to it (so a second call with the
# same arguments adds nothing).
_attached: weakref.WeakKeyDictionary[Any, set[tuple[Any, ...]]] = weakref.WeakKeyDictionary()
# provider → the export status of the OTLP exporters configure() attached to it.
_status: weakref.WeakKeyDictionary[Any, ExportStatus] = weakref.WeakKeyDictionary()


@dataclass
class ExportStatus:
    """What the OTLP span exporters that :func:`configure` attached have done so far.

    Attributes:
        endpoints: the OTLP/HTTP traces URLs exported to.
        exported: spans the collector accepted.
        failed: spans the exporter gave up on (collector down, refused, timed out);
            they are lost.
        last_error: the exporter's last warning or error message about a failed
            export (OpenTelemetry logs it on ``opentelemetry.exporter.*``), or the
            exception an export raised; None when nothing failed.
    """

    endpoints: list[str]
    exported: int = 0
    failed: int = 0
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        """True when no span failed to export."""
        return self.failed == 0


# "[Errno 111] Connection refused" inside the exporter's retry warnings.
_OS_ERROR = re.compile(r"\[Errno -?\d+\][^\"')]*")


class _LastExporterError(logging.Handler):
    """Keeps why OpenTelemetry's OTLP exporters last failed (they say so only in their
    log): the OS error of a connection (``[Errno 111] Connection refused``) when one was
    logged, else the last WARNING+ message."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.message: str | None = None
        self.os_error: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken record must not break the export thread
            text = str(record.msg)
        self.message = text
        found = _OS_ERROR.search(text)
        if found:
            self.os_error = found.group(0).strip()

    def reason(self) -> str | None:
        """The reason of the last failure, and forget it."""
        reason = self.os_error or self.message
        self.os_error = self.message = None
        return reason


_exporter_errors = _LastExporterError()
logging.getLogger("opentelemetry.exporter").addHandler(_exporter_errors)


def _connect_error(url: str) -> str | None:
    """The OS error of a TCP connection to ``url``'s host and port (e.g. ``[Errno 111]
    Connection refused``), or None when the connection succeeds."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "localhost", port), timeout=2.0):
            return None
    except (OSError, ValueError) as exc:
        return str(exc)


def _watched(exporter: SpanExporter, status: ExportStatus, url: str | None) -> SpanExporter:
    """``exporter`` counting its successes and failures into ``status``; a failure's
    reason is the exporter's log message, or the OS error of connecting to ``url``."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class _Watched(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            try:
                result = exporter.export(spans)
            except Exception as exc:
                status.failed += len(spans)
                status.last_error = f"{type(exc).__name__}: {exc}"
                raise
            if result is SpanExportResult.SUCCESS:
                status.exported += len(spans)
            else:
                status.failed += len(spans)
                reason = _exporter_errors.reason()
                if url and not (reason and _OS_ERROR.search(reason)):
                    reason = _connect_error(url) or reason
                status.last_error = reason or "the exporter reported FAILURE"
            return result

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return exporter.force_flush(timeout_millis)

    return _Watched()


def export_status(provider: Any) -> ExportStatus | None:
    """The export status of the OTLP exporters :func:`configure` attached to
    ``provider`` (None when it attached none). Call ``provider.force_flush()`` first to
    count the spans still queued."""
    return _status.get(provider)


def signal_url(endpoint: str, signal: str) -> str:
    """The OTLP/HTTP URL of ``signal`` (``traces`` / ``logs``) for ``endpoint``: a base
    URL gets ``/v1/<signal>`` appended (as ``OTEL_EXPORTER_OTLP_ENDPOINT`` does); a URL
    already ending in ``/v1/traces`` or ``/v1/logs`` is used as given (traces) or has its
    signal swapped (logs).

    Raises:
        ValueError: ``endpoint`` is not an http(s) URL.
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"otlp_endpoint {endpoint!r} is not an http(s) URL; give the collector's OTLP/HTTP "
            "address, e.g. http://127.0.0.1:6006 (Phoenix) or http://127.0.0.1:4318"
        )
    base = endpoint.rstrip("/")
    for suffix in ("/v1/traces", "/v1/logs"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/v1/{signal}"


def configure(
    *,
    otlp_endpoint: str | None = None,
    service_name: str = "flagmw",
    console: bool = False,
    headers: Mapping[str, str] | None = None,
    logs: bool = False,
) -> SDKTracerProvider:
    """Set up OpenTelemetry tracing in one call, for applications that have none.

    Installs (once) a global SDK ``TracerProvider`` with the resource ``service.name`` =
    ``openinference.project.name`` = ``service_name`` (the latter selects the Arize Phoenix
    project), and attaches:

    * with ``otlp_endpoint``: an OTLP/HTTP span exporter behind a ``BatchSpanProcessor``.
      ``otlp_endpoint`` is the collector's base URL (``http://127.0.0.1:6006`` for
      Phoenix, ``http://127.0.0.1:4318`` for an OpenTelemetry Collector or Jaeger) —
      ``/v1/traces`` is appended — or the full traces URL. Without it, the standard
      ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` variables
      are used when set. Its successes and failures are counted: see
      :func:`export_status`;
    * with ``console``: a console exporter (one JSON document per span on stdout, as
      each span ends);
    * with ``logs``: also a global SDK ``LoggerProvider`` exporting to ``/v1/logs`` (and
      the console), for ``RunTracer(evaluation_events=True)``. Arize Phoenix does not
      accept OTLP logs (it answers 405).

    Safe to call more than once: the provider is installed once, and an exporter already
    attached with the same arguments is not attached again. When the application has
    already installed an SDK tracer provider, that provider is kept (with its resource)
    and the exporters are attached to it.

    Args:
        otlp_endpoint: OTLP/HTTP endpoint (see above).
        service_name: ``service.name`` and Phoenix project of the spans.
        console: also print spans to stdout.
        headers: HTTP headers of every export (e.g. ``{"Authorization": "Basic …"}`` for
            Langfuse).
        logs: also set up the logger provider of ``feature_flag.evaluation`` events.

    Returns:
        The SDK tracer provider: call ``force_flush()`` before a short-lived process
        exits (then :func:`export_status` tells whether the spans arrived), or
        ``shutdown()``.

    Raises:
        ValueError: ``otlp_endpoint`` is not an http(s) URL.
        ImportError: the OpenTelemetry SDK or OTLP/HTTP exporter is missing
            (``pip install 'flagmw[otel]'``).
        flagmw.tracing.otel_logs.LogsAPIUnavailable: ``logs=True`` and OpenTelemetry's
            experimental logs API is missing or changed (an ``ImportError``).
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError as exc:  # pragma: no cover - the otel extra is a declared dependency
        raise ImportError(
            f"flagmw.tracing.configure needs the OpenTelemetry SDK and OTLP exporter ({exc.name} "
            "is missing): pip install 'flagmw[otel]'"
        ) from exc

    traces_url = signal_url(otlp_endpoint, "traces") if otlp_endpoint else None
    logs_sdk = otel_logs.sdk("flagmw.tracing.configure(logs=True)") if logs else None
    header_key = tuple(sorted((headers or {}).items()))
    with _configure_lock:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
            existing = provider.resource.attributes.get("service.name")
            if existing != service_name and provider not in _attached:
                log.info(
                    "flagmw: keeping the application's tracer provider (service.name=%r); "
                    "service_name=%r is not applied",
                    existing,
                    service_name,
                )
        else:
            resource = Resource.create(
                {"service.name": service_name, "openinference.project.name": service_name}
            )
            provider = TracerProvider(resource=resource)
            trace.set_tracer_provider(provider)
        attached = _attached.setdefault(provider, set())
        env_endpoint = _env_endpoint()
        if traces_url or env_endpoint:
            key: tuple[Any, ...] = ("otlp", traces_url, header_key)
            if key not in attached:
                exporter = OTLPSpanExporter(endpoint=traces_url, headers=dict(headers or {}))
                status = _status.setdefault(provider, ExportStatus([]))
                status.endpoints.append(traces_url or str(env_endpoint))
                provider.add_span_processor(
                    BatchSpanProcessor(_watched(exporter, status, traces_url))
                )
                attached.add(key)
        if console and ("console",) not in attached:
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
            attached.add(("console",))
        if not (traces_url or env_endpoint or console):
            log.warning(
                "flagmw: tracing.configure() without otlp_endpoint, console or "
                "OTEL_EXPORTER_OTLP_ENDPOINT: spans are recorded but exported nowhere"
            )
        if logs_sdk is not None:
            _configure_logs(logs_sdk, provider.resource, otlp_endpoint, console, headers)
    return provider


def _env_endpoint() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )


def _configure_logs(
    sdk: otel_logs.SDKLogs,
    resource: Any,
    otlp_endpoint: str | None,
    console: bool,
    headers: Mapping[str, str] | None,
) -> None:
    api = otel_logs.api("flagmw.tracing.configure(logs=True)")
    current = api.get_logger_provider()
    if isinstance(current, sdk.LoggerProvider):
        provider = current
    else:
        provider = sdk.LoggerProvider(resource=resource)
        api.set_logger_provider(provider)
    attached = _attached.setdefault(provider, set())
    if otlp_endpoint:
        url = signal_url(otlp_endpoint, "logs")
        key = ("otlp", url, tuple(sorted((headers or {}).items())))
        if key not in attached:
            exporter = sdk.OTLPLogExporter(endpoint=url, headers=dict(headers or {}))
            provider.add_log_record_processor(sdk.BatchLogRecordProcessor(exporter))
            attached.add(key)
    if console and ("console",) not in attached:
        provider.add_log_record_processor(
            sdk.SimpleLogRecordProcessor(sdk.ConsoleLogRecordExporter())
        )
        attached.add(("console",))
