"""Over a real socket: spans and evaluation events exported with the OTLP/HTTP exporter to
a receiver on 127.0.0.1 (tests/otlp_receiver.py) that decodes the protobuf; and
``flagmw.tracing.configure`` in a fresh OS process (it installs global providers, which
can be done once per process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import snapshot_part
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otlp_receiver import OTLPReceiver

from flagmw import EvaluationContext, FlagClient, RunConfig
from flagmw.langgraph.run import RunState
from flagmw.tracing import RunTracer, configure
from flagmw.tracing import attributes as A
from flagmw.tracing.export import signal_url as _signal_url

SPAN_KIND_INTERNAL = 1  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


@pytest.fixture
def rx() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as receiver:
        yield receiver


@pytest.fixture
def client(memory_client: Any) -> FlagClient:
    c: FlagClient = memory_client(document=snapshot_part())
    return c


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_attributes_events_links_arrive_over_otlp_http(
    rx: OTLPReceiver, client: FlagClient, compression: Compression
) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "support-svc"}))
    exporter = OTLPSpanExporter(endpoint=rx.traces_url, compression=compression)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = RunTracer(tracer_provider=provider)
    kill = client.kill("tools.refund_api.enabled", reason="fraud spike", actor="oncall", ttl="1h")
    ctx = EvaluationContext(tenant_id="acme", user_id="u-17", route="support", thread_id="th-9")
    first = RunState(
        client=client, rc=client.resolve(ctx), name="support-agent", thread_id="th-9",
        observers=(tracer,),
    )  # fmt: skip
    tracer.run_started(first)
    first.event("tool_refused", tool="refund", key=kill.key, reason="fraud spike",
                override_id=kill.id)  # fmt: skip
    tracer.run_ended(first, "interrupted", None)
    again = RunState(
        client=client, rc=RunConfig.from_json(first.rc.to_json()), name="support-agent",
        thread_id="th-9", resumed=True, observers=(tracer,), previous_span_ref=first.span_ref,
    )  # fmt: skip
    tracer.run_started(again)
    tracer.run_ended(again, "error", ValueError("refund amount missing"))
    assert provider.force_flush(10_000)
    provider.shutdown()

    assert first.span_ref is not None
    s1 = rx.wait_for_span(lambda s: s.span_id == first.span_ref.split("-")[1])  # type: ignore[union-attr]
    assert again.span_ref is not None
    s2 = rx.wait_for_span(lambda s: s.span_id == again.span_ref.split("-")[1])  # type: ignore[union-attr]
    assert s1.name == s2.name == "invoke_agent support-agent"
    assert s1.kind == SPAN_KIND_INTERNAL
    assert s1.resource["service.name"] == "support-svc"
    assert s1.scope == "flagmw"
    a = s1.attributes
    # types survive the wire: int, bool, string array, JSON string
    assert a[A.SNAPSHOT_REV] == 1
    assert a[A.RESUMED] is False
    assert a[A.OVERRIDE_IDS] == [kill.id]
    assert a[A.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[A.GEN_AI_CONVERSATION_ID] == "th-9"
    assert a[A.TENANT_ID] == "acme"
    assert a[A.CONFIG_HASH] == first.rc.config_hash
    assert a["flagmw.flag.tools.refund_api.enabled.value"] is False
    assert a["flagmw.flag.tools.refund_api.enabled.source"] == "override"
    assert json.loads(a[A.CONFIG])["override_ids"] == [kill.id]
    assert a[A.OUTCOME] == "interrupted"
    assert s1.dropped_attributes_count == 0
    assert [e.name for e in s1.events] == ["flagmw.tool_refused", "flagmw.interrupted"]
    assert s1.events[0].attributes["flagmw.override_id"] == kill.id
    # the resumed invocation: new span, link to the first, same rev, error status
    assert [(lk.trace_id, lk.span_id) for lk in s2.links] == [(s1.trace_id, s1.span_id)]
    assert s2.links[0].attributes == {"flagmw.link": "resumes"}
    assert s2.attributes[A.SNAPSHOT_REV] == 1
    assert s2.attributes[A.RESUMED] is True
    assert s2.attributes[A.ERROR_TYPE] == "ValueError"
    assert s2.status_code == STATUS_ERROR
    assert s2.status_message == "ValueError: refund amount missing"
    assert [e.name for e in s2.events] == ["exception"]
    want = "gzip" if compression is Compression.Gzip else None
    assert {r.get("content-encoding") for r in rx.requests} == {want}


def test_signal_url() -> None:
    assert _signal_url("http://127.0.0.1:6006", "traces") == "http://127.0.0.1:6006/v1/traces"
    assert _signal_url("http://h:4318/", "logs") == "http://h:4318/v1/logs"
    assert _signal_url("http://h:4318/v1/traces", "traces") == "http://h:4318/v1/traces"
    assert _signal_url("http://h:4318/v1/traces", "logs") == "http://h:4318/v1/logs"
    assert (
        _signal_url("https://cloud.langfuse.com/api/public/otel", "traces")
        == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    )


def test_configure_rejects_a_non_url() -> None:
    with pytest.raises(ValueError, match="not an http"):
        configure(otlp_endpoint="127.0.0.1:4318")


# A fresh interpreter: the global tracer/logger providers are process-wide and set once.
CONFIGURE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import _logs, trace
    from flagmw import EvaluationContext, FlagClient, FlagRegistry, Flag, MemoryStore
    from flagmw.langgraph.run import RunState
    from flagmw.tracing import RunTracer, configure, export_status

    url = sys.argv[1]
    reg = FlagRegistry([Flag("tools.refund_api.enabled", "bool", True, binding="hot"),
                        Flag("model.primary", "string", "gpt-4o")])
    client = FlagClient(reg, MemoryStore())
    tracer = RunTracer(evaluation_events=True)   # what flagmw.wrap creates: global providers

    def run(name):
        state = RunState(client=client, rc=client.resolve(EvaluationContext(user_id="u-1")),
                         name=name, thread_id="t-1", observers=(tracer,))
        tracer.run_started(state)
        with tracer.activate(state):
            pass
        tracer.run_ended(state, "completed", None)
        return state

    before = run("before-configure")        # no SDK yet: a no-op
    provider = configure(otlp_endpoint=url, service_name="support-demo", logs=True)
    again = configure(otlp_endpoint=url, service_name="support-demo", logs=True)
    after = run("after-configure")
    assert provider is again is trace.get_tracer_provider()
    provider.force_flush()
    _logs.get_logger_provider().force_flush()
    status = export_status(provider)
    print(json.dumps({"before": before.span_ref, "after": after.span_ref,
                      "kept": len(tracer._runs), "exported": status.exported,
                      "failed": status.failed, "endpoints": status.endpoints}))
    """
)


def test_configure_in_a_fresh_process(rx: OTLPReceiver, tmp_path: Any) -> None:
    script = tmp_path / "configure_twice.py"
    script.write_text(CONFIGURE_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), rx.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] is None  # no tracer provider: no span, nothing kept
    assert (out["exported"], out["failed"]) == (1, 0)  # export_status counted it
    assert out["endpoints"] == [rx.traces_url]
    assert out["kept"] == 0
    trace_hex, span_hex = out["after"].split("-")
    span = rx.wait_for_span(lambda s: s.name == "invoke_agent after-configure")
    assert (span.trace_id, span.span_id) == (trace_hex, span_hex)
    assert span.resource["service.name"] == "support-demo"
    assert span.resource["openinference.project.name"] == "support-demo"
    assert span.attributes[A.FLAG_COUNT] == 2
    # configure() twice attached one exporter: the span arrived once
    assert [s.name for s in rx.spans] == ["invoke_agent after-configure"]
    # feature_flag.evaluation log events over /v1/logs, correlated with the span
    logs = rx.wait_for_logs(2)
    assert len(logs) == 2
    assert {r.event_name for r in logs} == {"feature_flag.evaluation"}
    assert {(r.trace_id, r.span_id) for r in logs} == {(trace_hex, span_hex)}
    assert {r.attributes["feature_flag.key"] for r in logs} == {
        "tools.refund_api.enabled",
        "model.primary",
    }
    assert all(r.attributes["feature_flag.provider.name"] == "flagmw" for r in logs)
    assert logs[0].resource["service.name"] == "support-demo"


EXPORT_FAILS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace
    from flagmw.tracing import configure, export_status

    provider = configure(otlp_endpoint=sys.argv[1])
    with trace.get_tracer("t").start_as_current_span("lost"):
        pass
    flushed = provider.force_flush()
    status = export_status(provider)
    print(json.dumps({"flushed": flushed, "exported": status.exported,
                      "failed": status.failed, "error": status.last_error, "ok": status.ok}))
    """
)


def test_export_status_reports_a_collector_that_is_not_up(tmp_path: Any) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = tmp_path / "export_fails.py"
    script.write_text(EXPORT_FAILS_SCRIPT)
    env = {**os.environ, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # force_flush() says True although the span is lost: only the status tells
    assert out["flushed"] is True
    assert (out["exported"], out["failed"], out["ok"]) == (0, 1, False)
    assert "Connection refused" in out["error"]


def test_configure_console_prints_spans(tmp_path: Any) -> None:
    script = tmp_path / "console.py"
    script.write_text(
        textwrap.dedent(
            """
            from flagmw import EvaluationContext, FlagClient, FlagRegistry, Flag, MemoryStore
            from flagmw.langgraph.run import RunState
            from flagmw.tracing import RunTracer, configure

            provider = configure(console=True, service_name="console-demo")
            client = FlagClient(FlagRegistry([Flag("agent.enabled", "bool", True)]), MemoryStore())
            tracer = RunTracer()
            state = RunState(client=client, rc=client.resolve(EvaluationContext()), name="demo",
                             observers=(tracer,))
            tracer.run_started(state)
            tracer.run_ended(state, "completed", None)
            provider.shutdown()
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    span = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert span["name"] == "invoke_agent demo"
    assert span["attributes"]["flagmw.flag.agent.enabled.value"] is True
    assert span["resource"]["attributes"]["service.name"] == "console-demo"
