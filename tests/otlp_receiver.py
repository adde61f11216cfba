"""A real OTLP/HTTP receiver for tests: a ``ThreadingHTTPServer`` on ``127.0.0.1:0`` that
accepts ``POST /v1/traces`` and ``POST /v1/logs`` (protobuf, optionally gzip), decodes
them with ``opentelemetry-proto`` and keeps what arrived.

Usage::

    with OTLPReceiver() as rx:
        exporter = OTLPSpanExporter(endpoint=rx.traces_url)
        ...
        span = rx.wait_for_span(lambda s: s.name.startswith("invoke_agent"))
        span.attributes["flagmw.snapshot_rev"]

Attribute values come back as Python values: ``kvlist`` → dict, ``array`` → list.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def any_value(v: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as a Python value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    return getattr(v, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    """Repeated ``KeyValue`` as a dict."""
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in kvs:
        out[kv.key] = any_value(kv.value)
    return out


@dataclass
class ReceivedEvent:
    name: str
    attributes: dict[str, Any]


@dataclass
class ReceivedLink:
    trace_id: str
    span_id: str
    attributes: dict[str, Any]


@dataclass
class ReceivedSpan:
    """One span as it arrived (ids as lower-case hex)."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    dropped_attributes_count: int
    events: list[ReceivedEvent]
    links: list[ReceivedLink]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    scope: str


@dataclass
class ReceivedLog:
    event_name: str
    attributes: dict[str, Any]
    trace_id: str
    span_id: str
    resource: dict[str, Any]


@dataclass
class OTLPReceiver:
    """Start with ``with OTLPReceiver() as rx`` (or :meth:`start` / :meth:`stop`)."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    logs: list[ReceivedLog] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _cond: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123``."""
        assert self._server is not None, "receiver not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def traces_url(self) -> str:
        return self.url + "/v1/traces"

    @property
    def logs_url(self) -> str:
        return self.url + "/v1/logs"

    def start(self) -> OTLPReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                with receiver._cond:
                    receiver.requests.append({k.lower(): v for k, v in self.headers.items()})
                if self.path == "/v1/traces":
                    receiver._traces(body)
                    reply = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/logs":
                    receiver._logs(body)
                    reply = ExportLogsServiceResponse().SerializeToString()
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _traces(self, body: bytes) -> None:
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        got: list[ReceivedSpan] = []
        for rs in req.resource_spans:
            resource = attributes(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    got.append(
                        ReceivedSpan(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            kind=s.kind,
                            attributes=attributes(s.attributes),
                            dropped_attributes_count=s.dropped_attributes_count,
                            events=[
                                ReceivedEvent(e.name, attributes(e.attributes)) for e in s.events
                            ],
                            links=[
                                ReceivedLink(
                                    lk.trace_id.hex(), lk.span_id.hex(), attributes(lk.attributes)
                                )
                                for lk in s.links
                            ],
                            status_code=s.status.code,
                            status_message=s.status.message,
                            resource=resource,
                            scope=ss.scope.name,
                        )
                    )
        with self._cond:
            self.spans.extend(got)
            self._cond.notify_all()

    def _logs(self, body: bytes) -> None:
        req = ExportLogsServiceRequest()
        req.ParseFromString(body)
        got: list[ReceivedLog] = []
        for rl in req.resource_logs:
            resource = attributes(rl.resource.attributes)
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    got.append(
                        ReceivedLog(
                            event_name=r.event_name,
                            attributes=attributes(r.attributes),
                            trace_id=r.trace_id.hex(),
                            span_id=r.span_id.hex(),
                            resource=resource,
                        )
                    )
        with self._cond:
            self.logs.extend(got)
            self._cond.notify_all()

    def wait_for_span(
        self, match: Callable[[ReceivedSpan], bool], timeout: float = 10.0
    ) -> ReceivedSpan:
        """The first received span that ``match``es, waiting up to ``timeout`` seconds.

        Raises:
            AssertionError: none arrived in time (lists the names that did).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for s in self.spans:
                    if match(s):
                        return s
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching span within {timeout}s; got {[s.name for s in self.spans]}"
                    )
                self._cond.wait(left)

    def wait_for_logs(self, count: int, timeout: float = 10.0) -> list[ReceivedLog]:
        """At least ``count`` log records, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.logs) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.logs)} log records within {timeout}s")
                self._cond.wait(left)
            return list(self.logs)


def iter_spans(rx: OTLPReceiver) -> Iterator[ReceivedSpan]:
    """The spans received so far (a copy, safe while exports continue)."""
    with rx._cond:
        yield from list(rx.spans)
