"""RunTracer driven directly through the RunObserver contract (flagmw/run.py) with real
FlagClients, real RunConfigs and the OpenTelemetry SDK's in-memory exporters.

The LangGraph wrapper calls the same four methods; end-to-end tests through
``flagmw.wrap`` are in test_tracing_graph.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import FixedClock, snapshot_part
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from flagmw import EvaluationContext, Flag, FlagClient, FlagRegistry, MemoryStore, RunConfig
from flagmw.langgraph.run import RunState
from flagmw.tracing import INTERRUPTED_EVENT, RunTracer, parse_span_ref
from flagmw.tracing import attributes as A

SPAN_REF = re.compile(r"^[0-9a-f]{32}-[0-9a-f]{16}$")


class Traces:
    """An SDK tracer provider whose finished spans land in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test-caller")

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        got = list(self.exporter.get_finished_spans())
        return [s for s in got if name is None or s.name == name]

    def one(self, name: str) -> ReadableSpan:
        got = self.spans(name)
        assert len(got) == 1, [s.name for s in self.spans()]
        return got[0]


@pytest.fixture
def traces() -> Iterator[Traces]:
    t = Traces()
    yield t
    t.provider.shutdown()


@pytest.fixture
def client(memory_client: Any) -> FlagClient:
    c: FlagClient = memory_client(document=snapshot_part())
    return c


def ctx(**kw: Any) -> EvaluationContext:
    base: dict[str, Any] = {
        "tenant_id": "acme",
        "user_id": "u-17",
        "route": "support",
        "plan": "pro",
    }
    base.update(kw)
    return EvaluationContext(**base)


def new_run(
    client: FlagClient,
    tracer: RunTracer,
    *,
    context: EvaluationContext | None = None,
    rc: RunConfig | None = None,
    thread_id: str = "thread-1",
    resumed: bool = False,
    previous_span_ref: str | None = None,
    name: str = "support-agent",
) -> RunState:
    return RunState(
        client=client,
        rc=rc if rc is not None else client.resolve(context or ctx(thread_id=thread_id)),
        name=name,
        thread_id=thread_id,
        resumed=resumed,
        observers=(tracer,),
        previous_span_ref=previous_span_ref,
    )


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def events(span: ReadableSpan, name: str) -> list[dict[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


# -- a new run -----------------------------------------------------------------------------


def test_new_run_root_span_attributes(client: FlagClient, traces: Traces) -> None:
    kill = client.kill(
        "tools.refund_api.enabled", reason="refund fraud spike", actor="oncall", ttl="1h"
    )
    tracer = RunTracer(tracer_provider=traces.provider)
    run = new_run(client, tracer)
    with traces.tracer.start_as_current_span("request") as outer:
        tracer.run_started(run)
        with tracer.activate(run):
            inner = trace.get_current_span()
        tracer.run_ended(run, "completed", None)
        # the caller's span is current again outside activate()
        assert trace.get_current_span() is outer

    span = traces.one("invoke_agent support-agent")
    assert span.kind is SpanKind.INTERNAL
    assert inner.get_span_context() == span.get_span_context()
    assert span.parent is not None
    assert span.parent.span_id == outer.get_span_context().span_id
    assert span.status.status_code is StatusCode.UNSET
    a = attrs(span)
    rc = run.rc
    assert a[A.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[A.GEN_AI_AGENT_NAME] == "support-agent"
    assert a[A.GEN_AI_CONVERSATION_ID] == "thread-1"
    assert A.GEN_AI_PROVIDER_NAME not in a
    assert a[A.SNAPSHOT_REV] == rc.snapshot_rev == 1
    assert a[A.CONFIG_HASH] == rc.config_hash
    assert a[A.ENVIRONMENT] == "production"
    assert a[A.TENANT_ID] == "acme"
    assert a[A.USER_ID] == "u-17"
    assert a[A.ROUTE] == "support"
    assert a[A.OVERRIDE_IDS] == (kill.id,)
    assert a[A.RESUMED] is False
    assert a[A.OUTCOME] == "completed"
    assert a[A.FLAG_COUNT] == 7
    assert a[A.FLAGS_TRUNCATED] is False
    assert a[A.FLAGS_OMITTED] == 0
    # per flag: value (primitives as is, lists as JSON) and the winning layer
    assert a["flagmw.flag.tools.refund_api.enabled.value"] is False
    assert a["flagmw.flag.tools.refund_api.enabled.source"] == "override"
    assert a["flagmw.flag.model.primary.value"] == "gpt-4o-mini"
    assert a["flagmw.flag.model.primary.source"] == "tenant"
    assert a["flagmw.flag.model.fallbacks.value"] == '["gpt-4o-mini"]'
    assert a["flagmw.flag.model.fallbacks.source"] == "snapshot"
    assert a["flagmw.flag.loop.max_iterations.value"] == 8
    assert a["flagmw.flag.loop.max_iterations.source"] == "default"
    # the whole RunConfig with provenance, as one JSON string that round-trips
    doc = json.loads(a[A.CONFIG])
    assert doc == rc.to_dict()
    assert RunConfig.from_json(a[A.CONFIG]) == rc
    assert doc["provenance"]["tools.refund_api.enabled"]["override_id"] == kill.id
    assert run.span_ref is not None
    assert SPAN_REF.match(run.span_ref)
    sc = span.get_span_context()
    assert run.span_ref == f"{sc.trace_id:032x}-{sc.span_id:016x}"
    assert not span.events
    assert span.dropped_attributes == 0


def test_trace_root_when_no_caller_span(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    run = new_run(client, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    span = traces.one("invoke_agent support-agent")
    assert span.parent is None


def test_provider_name_set_at_creation(client: FlagClient, traces: Traces) -> None:
    seen: list[dict[str, Any]] = []

    class Recorder(SimpleSpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            seen.append(dict(span.attributes))

    traces.provider.add_span_processor(Recorder(InMemorySpanExporter()))
    tracer = RunTracer(tracer_provider=traces.provider, provider_name="openai")
    run = new_run(client, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    # what samplers and on_start processors see: the gen_ai attributes, nothing else yet
    assert seen == [
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "support-agent",
            "gen_ai.conversation.id": "thread-1",
            "gen_ai.provider.name": "openai",
        }
    ]
    assert attrs(traces.one("invoke_agent support-agent"))[A.GEN_AI_PROVIDER_NAME] == "openai"


def test_budget_puts_overridden_then_hot_keys_first(client: FlagClient, traces: Traces) -> None:
    client.override("model.primary", "gpt-4o", reason="incident 42", actor="oncall", ttl="1h")
    tracer = RunTracer(tracer_provider=traces.provider, flag_budget=3)
    run = new_run(client, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    a = attrs(traces.one("invoke_agent support-agent"))
    written = sorted(k[len("flagmw.flag.") : -len(".value")] for k in a if k.endswith(".value"))
    # model.primary (overridden) then the hot keys in order: agent.enabled, loop.max_iterations
    assert written == ["agent.enabled", "loop.max_iterations", "model.primary"]
    assert a[A.FLAGS_TRUNCATED] is True
    assert a[A.FLAGS_OMITTED] == 4
    assert a[A.FLAG_COUNT] == 7
    # the config attribute is complete regardless of the budget
    assert len(json.loads(a[A.CONFIG])["values"]) == 7


def test_flag_budget_zero_writes_no_flag_attributes(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider, flag_budget=0, max_config_bytes=0)
    run = new_run(client, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    a = attrs(traces.one("invoke_agent support-agent"))
    assert not [k for k in a if k.startswith("flagmw.flag.")]
    assert A.CONFIG not in a
    assert a[A.FLAGS_OMITTED] == 7
    assert a[A.SNAPSHOT_REV] == 1


# -- events ----------------------------------------------------------------------------------


def test_events_are_span_events_with_flagmw_fields(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    run = new_run(client, tracer)
    tracer.run_started(run)
    with tracer.activate(run):
        run.event(
            "flag_changed",
            key="tools.refund_api.enabled",
            old=True,
            new=False,
            layer="override",
            override_id="ov-1",
            step=2,
        )
        run.event(
            "tool_refused",
            tool="refund",
            key="tools.refund_api.enabled",
            reason="refund fraud spike",
            override_id="ov-1",
        )
        run.event(
            "model_route",
            route="gpt-4o-mini",
            primary="gpt-4o",
            fallback_used=True,
            error=TimeoutError("primary timed out"),
        )
        run.event("model_route", route="gpt-4o", primary="gpt-4o", fallback_used=False, error=None)
    tracer.run_ended(run, "completed", None)
    span = traces.one("invoke_agent support-agent")
    assert [e.name for e in span.events] == [
        "flagmw.flag_changed",
        "flagmw.tool_refused",
        "flagmw.model_route",
        "flagmw.model_route",
    ]
    assert events(span, "flagmw.flag_changed") == [
        {
            "flagmw.key": "tools.refund_api.enabled",
            "flagmw.old": True,
            "flagmw.new": False,
            "flagmw.layer": "override",
            "flagmw.override_id": "ov-1",
            "flagmw.step": 2,
        }
    ]
    assert events(span, "flagmw.tool_refused")[0] == {
        "flagmw.tool": "refund",
        "flagmw.key": "tools.refund_api.enabled",
        "flagmw.reason": "refund fraud spike",
        "flagmw.override_id": "ov-1",
    }
    routes = events(span, "flagmw.model_route")
    assert routes[0]["flagmw.error"] == "TimeoutError: primary timed out"
    assert routes[0]["flagmw.fallback_used"] is True
    assert "flagmw.error" not in routes[1]


def test_sensitive_flag_is_redacted_everywhere(traces: Traces) -> None:
    reg = FlagRegistry(
        [
            Flag("prompt.system", "string", "You are a support agent", sensitive=True),
            Flag("secret.level", "int", 3, sensitive=True, binding="hot"),
            Flag("tools.search.enabled", "bool", True),
        ]
    )
    client = FlagClient(reg, MemoryStore(), clock=FixedClock())
    lp, logs = _logger()
    tracer = RunTracer(tracer_provider=traces.provider, logger_provider=lp, evaluation_events=True)
    run = new_run(client, tracer)
    tracer.run_started(run)
    run.event("flag_changed", key="secret.level", old=3, new=4, layer="override", step=1)
    tracer.run_ended(run, "completed", None)
    span = traces.one("invoke_agent support-agent")
    a = attrs(span)
    assert a["flagmw.flag.prompt.system.value"] == "[redacted]"
    assert a["flagmw.flag.secret.level.value"] == "[redacted]"
    assert a["flagmw.flag.tools.search.enabled.value"] is True
    doc = json.loads(a[A.CONFIG])
    assert doc["values"]["prompt.system"] == "[redacted]"
    assert "You are a support agent" not in a[A.CONFIG]
    change = events(span, "flagmw.flag_changed")[0]
    assert change["flagmw.old"] == change["flagmw.new"] == "[redacted]"
    values = {
        r.log_record.attributes["feature_flag.key"]: r.log_record.attributes[
            "feature_flag.result.value"
        ]
        for r in logs.get_finished_logs()
    }
    assert values == {
        "prompt.system": "[redacted]",
        "secret.level": "[redacted]",
        "tools.search.enabled": True,
    }


# -- outcomes --------------------------------------------------------------------------------


def test_interrupted_run_has_event_and_unset_status(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    run = new_run(client, tracer)
    tracer.run_started(run)
    run.step = 3
    tracer.run_ended(run, "interrupted", None)
    span = traces.one("invoke_agent support-agent")
    assert span.status.status_code is StatusCode.UNSET
    assert events(span, INTERRUPTED_EVENT) == [{"flagmw.step": 3}]
    assert attrs(span)[A.OUTCOME] == "interrupted"
    assert A.ERROR_TYPE not in attrs(span)


def test_resumed_run_gets_new_span_linked_to_the_previous_one(
    client: FlagClient, traces: Traces, snapshot_document: dict[str, Any]
) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    first = new_run(client, tracer)
    tracer.run_started(first)
    tracer.run_ended(first, "interrupted", None)
    stored = first.rc.to_json()  # what the checkpoint keeps

    # a new snapshot is published while the run waits for approval
    snapshot_document["values"]["model.fallbacks"] = []
    client.publish(snapshot_document, author="ops", message="no fallbacks")
    assert client.snapshot_rev == 2

    resumed = new_run(
        client,
        tracer,
        rc=RunConfig.from_json(stored),
        resumed=True,
        previous_span_ref=first.span_ref,
    )
    with traces.tracer.start_as_current_span("resume-request"):
        tracer.run_started(resumed)
        tracer.run_ended(resumed, "completed", None)

    spans = traces.spans("invoke_agent support-agent")
    assert len(spans) == 2
    old, new = spans
    assert new.get_span_context().span_id != old.get_span_context().span_id
    assert len(new.links) == 1
    link = new.links[0]
    assert link.context.trace_id == old.get_span_context().trace_id
    assert link.context.span_id == old.get_span_context().span_id
    assert dict(link.attributes or {}) == {"flagmw.link": "resumes"}
    assert attrs(new)[A.SNAPSHOT_REV] == attrs(old)[A.SNAPSHOT_REV] == 1
    assert attrs(new)[A.CONFIG_HASH] == attrs(old)[A.CONFIG_HASH]
    assert attrs(new)[A.RESUMED] is True
    assert attrs(old)[A.RESUMED] is False
    assert not old.links
    assert resumed.span_ref != first.span_ref


def test_drained_run_status_and_single_event(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    # 1. the wrapper reported the drain as an event: it is not duplicated
    run = new_run(client, tracer)
    tracer.run_started(run)
    run.drain = ("agent.enabled", "bad deploy", "ov-9")
    run.event("run_drained", key="agent.enabled", reason="bad deploy", override_id="ov-9", step=2)
    tracer.run_ended(run, "drained", None)
    # 2. it did not: run_ended adds the event from run.drain
    run2 = new_run(client, tracer, thread_id="thread-2")
    tracer.run_started(run2)
    run2.drain = ("agent.enabled", "bad deploy", "ov-9")
    run2.step = 4
    tracer.run_ended(run2, "drained", None)

    for span, step in zip(traces.spans("invoke_agent support-agent"), (2, 4), strict=True):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "drained by kill switch agent.enabled: bad deploy"
        a = attrs(span)
        assert a[A.ERROR_TYPE] == "drained"
        assert a[A.OUTCOME] == "drained"
        assert events(span, "flagmw.run_drained") == [
            {
                "flagmw.key": "agent.enabled",
                "flagmw.reason": "bad deploy",
                "flagmw.override_id": "ov-9",
                "flagmw.step": step,
            }
        ]


class RefundBackendError(RuntimeError):
    pass


def test_failed_run_records_exception(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    run = new_run(client, tracer)
    tracer.run_started(run)
    try:
        with tracer.activate(run):
            raise RefundBackendError("refund service returned 502")
    except RefundBackendError as exc:
        tracer.run_ended(run, "error", exc)
    span = traces.one("invoke_agent support-agent")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RefundBackendError: refund service returned 502"
    a = attrs(span)
    assert a[A.ERROR_TYPE] == "test_tracing.RefundBackendError"
    assert a[A.OUTCOME] == "error"
    (exc_event,) = events(span, "exception")
    assert exc_event["exception.type"].endswith("RefundBackendError")
    assert exc_event["exception.escaped"] == "True"


def test_generator_exit_is_cancelled(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    run = new_run(client, tracer)
    tracer.run_started(run)
    run.step = 2
    tracer.run_ended(run, "error", GeneratorExit())
    span = traces.one("invoke_agent support-agent")
    assert span.status.status_code is StatusCode.UNSET
    assert attrs(span)[A.OUTCOME] == "cancelled"
    assert A.ERROR_TYPE not in attrs(span)
    assert events(span, "flagmw.cancelled") == [
        {"flagmw.step": 2, "flagmw.reason": "GeneratorExit"}
    ]


def test_interrupt_crossing_activate_is_not_an_error(client: FlagClient, traces: Traces) -> None:
    # LangGraph's GraphInterrupt / drain travel as exceptions through activate(): the status
    # is decided by run_ended's outcome, not by use_span's exception handling.
    tracer = RunTracer(tracer_provider=traces.provider)
    run = new_run(client, tracer)
    tracer.run_started(run)
    with pytest.raises(KeyboardInterrupt), tracer.activate(run):
        raise KeyboardInterrupt
    tracer.run_ended(run, "interrupted", None)
    span = traces.one("invoke_agent support-agent")
    assert span.status.status_code is StatusCode.UNSET
    assert not events(span, "exception")


# -- enrich mode -----------------------------------------------------------------------------


def test_enrich_writes_onto_the_callers_span(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider, span="enrich")
    run = new_run(client, tracer)
    with traces.tracer.start_as_current_span("POST /chat") as outer:
        outer.set_attribute("http.request.method", "POST")
        tracer.run_started(run)
        with tracer.activate(run):
            assert trace.get_current_span() is outer
            run.event("tool_refused", tool="refund", key="tools.refund_api.enabled", reason="x")
        tracer.run_ended(run, "completed", None)
        assert outer.is_recording()  # not ended by flagmw
        outer.set_attribute("http.response.status_code", 200)
    assert traces.spans("invoke_agent support-agent") == []
    span = traces.one("POST /chat")
    a = attrs(span)
    assert a["http.request.method"] == "POST"
    assert a[A.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[A.SNAPSHOT_REV] == 1
    assert a[A.OUTCOME] == "completed"
    assert a["flagmw.flag.model.primary.value"] == "gpt-4o-mini"
    assert [e.name for e in span.events] == ["flagmw.tool_refused"]
    sc = span.get_span_context()
    assert run.span_ref == f"{sc.trace_id:032x}-{sc.span_id:016x}"


def test_enrich_resume_adds_link_to_callers_span(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider, span="enrich")
    first = new_run(client, tracer)
    with traces.tracer.start_as_current_span("first"):
        tracer.run_started(first)
        tracer.run_ended(first, "interrupted", None)
    again = new_run(client, tracer, rc=first.rc, resumed=True, previous_span_ref=first.span_ref)
    with traces.tracer.start_as_current_span("second"):
        tracer.run_started(again)
        tracer.run_ended(again, "completed", None)
    a, b = traces.one("first"), traces.one("second")
    assert [lk.context.span_id for lk in b.links] == [a.get_span_context().span_id]


def test_enrich_falls_back_to_root_without_a_caller_span(
    client: FlagClient, traces: Traces
) -> None:
    tracer = RunTracer(tracer_provider=traces.provider, span="enrich")
    run = new_run(client, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    assert attrs(traces.one("invoke_agent support-agent"))[A.SNAPSHOT_REV] == 1


# -- user ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "salt", "expected"),
    [
        ("keep", "", "u-17"),
        ("hash", "", A.hash_user_id("u-17")),
        ("hash", "pepper", A.hash_user_id("u-17", "pepper")),
        ("drop", "", None),
    ],
)
def test_user_id_policy(
    client: FlagClient, traces: Traces, policy: Any, salt: str, expected: str | None
) -> None:
    tracer = RunTracer(tracer_provider=traces.provider, user_ids=policy, user_id_salt=salt)
    run = new_run(client, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    a = attrs(traces.one("invoke_agent support-agent"))
    assert a.get(A.USER_ID) == expected
    assert json.loads(a[A.CONFIG])["context"].get("user_id") == expected
    if policy != "keep":
        assert "u-17" not in json.dumps(a)


def test_hash_user_id_vectors() -> None:
    # fixed vectors: sha256("u-17") and sha256("pepperu-17"), first 16 hex digits
    assert A.hash_user_id("u-17") == "sha256:" + _sha("u-17")[:16]
    assert A.hash_user_id("u-17", "pepper") == "sha256:" + _sha("pepperu-17")[:16]
    assert A.hash_user_id("u-17") != A.hash_user_id("u-18")


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# -- no SDK ----------------------------------------------------------------------------------


def test_no_tracing_configured_is_a_no_op(client: FlagClient) -> None:
    tracer = RunTracer(tracer_provider=trace.NoOpTracerProvider())
    run = new_run(
        client, tracer, previous_span_ref="0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"
    )
    tracer.run_started(run)
    assert tracer._runs == {}  # nothing kept: no span, no evaluation events
    assert tracer.activate(run).__enter__() is None  # the shared nullcontext
    run.event("tool_refused", tool="refund", key="k", reason="r")
    tracer.run_ended(run, "completed", None)
    # the link target is carried forward for a later traced resume
    assert run.span_ref == "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"


def test_observer_never_raises(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    run = new_run(client, tracer)
    tracer.run_started(run)
    run.event("model_route", route=object())  # an unencodable value becomes text
    tracer.run_ended(run, "completed", None)
    tracer.run_ended(run, "completed", None)  # a second end is ignored
    tracer.run_event(run, "tool_refused", {})  # after the end: ignored
    assert len(traces.spans()) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"span": "child"}, {"user_ids": "mask"}, {"flag_budget": -1}, {"max_config_bytes": 10}],
)
def test_bad_options_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RunTracer(**kwargs)


def test_parse_span_ref() -> None:
    ref = "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331"
    sc = parse_span_ref(ref)
    assert sc is not None
    assert f"{sc.trace_id:032x}-{sc.span_id:016x}" == ref
    for bad in (None, "", "xyz", "0" * 32 + "-" + "0" * 16, "g" * 32 + "-" + "1" * 16):
        assert parse_span_ref(bad) is None


# -- context isolation -----------------------------------------------------------------------


def test_interleaved_runs_do_not_leak_context(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    runs = [new_run(client, tracer, thread_id=f"t-{i}") for i in range(3)]

    def stepper(run: RunState) -> Iterator[str]:
        # what the wrapper does around each next() of a stream generator
        tracer.run_started(run)
        try:
            for _ in range(3):
                with tracer.activate(run):
                    seen = trace.get_current_span().get_span_context().span_id
                yield f"{seen:016x}"
        finally:
            tracer.run_ended(run, "completed", None)

    gens = [stepper(r) for r in runs]
    seen: dict[int, set[str]] = {i: set() for i in range(3)}
    for _ in range(3):
        for i, g in enumerate(gens):
            seen[i].add(next(g))
            assert trace.get_current_span() is trace.INVALID_SPAN  # nothing leaked out
    for g in gens:
        assert list(g) == []
    for i, run in enumerate(runs):
        assert run.span_ref is not None
        assert seen[i] == {run.span_ref.split("-")[1]}
    assert len(traces.spans()) == 3


async def test_async_tasks_each_see_their_own_span(client: FlagClient, traces: Traces) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)

    async def one(i: int) -> tuple[RunState, set[int]]:
        run = new_run(client, tracer, thread_id=f"t-{i}")
        tracer.run_started(run)
        seen: set[int] = set()
        for _ in range(4):
            with tracer.activate(run):
                await asyncio.sleep(0)
                seen.add(trace.get_current_span().get_span_context().span_id)
        tracer.run_ended(run, "completed", None)
        return run, seen

    results = await asyncio.gather(*(one(i) for i in range(4)))
    for run, seen in results:
        assert run.span_ref is not None
        assert seen == {int(run.span_ref.split("-")[1], 16)}
    assert len({s.get_span_context().span_id for s in traces.spans()}) == 4


# -- feature_flag.evaluation events -------------------------------------------------------------


def _logger() -> tuple[LoggerProvider, InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


def test_evaluation_events_once_per_run_and_key(client: FlagClient, traces: Traces) -> None:
    client.kill("tools.refund_api.enabled", reason="fraud", actor="oncall", ttl="1h")
    lp, logs = _logger()
    tracer = RunTracer(tracer_provider=traces.provider, logger_provider=lp, evaluation_events=True)
    run = new_run(client, tracer, context=ctx(user_id="u-1", plan="enterprise"))
    tracer.run_started(run)
    with tracer.activate(run):
        for _ in range(5):  # reads do not emit
            assert run.rc["model.primary"] == "gpt-4o-mini"
    tracer.run_ended(run, "completed", None)

    records = [r.log_record for r in logs.get_finished_logs()]
    assert {r.event_name for r in records} == {"feature_flag.evaluation"}
    by_key = {r.attributes["feature_flag.key"]: dict(r.attributes) for r in records}
    assert len(records) == len(by_key) == 7
    span = traces.one("invoke_agent support-agent")
    sc = span.get_span_context()
    assert {(r.trace_id, r.span_id) for r in records} == {(sc.trace_id, sc.span_id)}
    common = {
        "feature_flag.provider.name": "flagmw",
        "feature_flag.version": "1",
        "feature_flag.context.id": "u-1",
    }
    assert by_key["tools.refund_api.enabled"] == {
        **common,
        "feature_flag.key": "tools.refund_api.enabled",
        "feature_flag.result.value": False,
        "feature_flag.result.reason": "disabled",
        "flagmw.source": "override",
    }
    assert by_key["model.primary"]["feature_flag.result.reason"] == "targeting_match"
    assert by_key["prompt.style"]["feature_flag.result.reason"] == "targeting_match"  # rule
    assert by_key["model.fallbacks"]["feature_flag.result.reason"] == "static"
    assert by_key["model.fallbacks"]["feature_flag.result.value"] == '["gpt-4o-mini"]'
    assert by_key["loop.max_iterations"]["feature_flag.result.reason"] == "default"


def test_evaluation_event_for_experiment_has_variant(client: FlagClient, traces: Traces) -> None:
    lp, logs = _logger()
    tracer = RunTracer(tracer_provider=traces.provider, logger_provider=lp, evaluation_events=True)
    # find a free-plan user the rollout puts in either arm; the variant must be reported
    run = new_run(client, tracer, context=ctx(user_id="u-5", plan="free"))
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    style = next(
        r.log_record.attributes
        for r in logs.get_finished_logs()
        if r.log_record.attributes["feature_flag.key"] == "prompt.style"
    )
    prov = run.rc.provenance["prompt.style"]
    assert prov.variant in ("control", "treatment")
    assert style["feature_flag.result.reason"] == "split"
    assert style["feature_flag.result.variant"] == prov.variant
    assert style["feature_flag.result.value"] == run.rc["prompt.style"]


def test_evaluation_events_not_repeated_on_resume_but_on_hot_change(
    client: FlagClient, traces: Traces
) -> None:
    lp, logs = _logger()
    tracer = RunTracer(tracer_provider=traces.provider, logger_provider=lp, evaluation_events=True)
    first = new_run(client, tracer)
    tracer.run_started(first)
    tracer.run_ended(first, "interrupted", None)
    assert len(logs.get_finished_logs()) == 7
    again = new_run(client, tracer, rc=first.rc, resumed=True, previous_span_ref=first.span_ref)
    tracer.run_started(again)
    assert len(logs.get_finished_logs()) == 7  # a rehydrated config is not re-evaluated
    # a kill reaches the run at a step boundary: the wrapper re-resolves the hot keys
    client.kill("tools.refund_api.enabled", reason="fraud", actor="oncall", ttl="1h")
    again.rc = client.resolve_hot(again.rc, step=1)
    (change,) = again.rc.changes
    again.event(
        "flag_changed",
        key=change.key,
        old=change.old,
        new=change.new,
        layer=change.provenance.layer.value,
        override_id=change.provenance.override_id,
        step=1,
    )
    tracer.run_ended(again, "completed", None)
    records = [r.log_record for r in logs.get_finished_logs()]
    assert len(records) == 8
    last = records[-1]
    assert last.attributes["feature_flag.key"] == "tools.refund_api.enabled"
    assert last.attributes["feature_flag.result.value"] is False
    assert last.attributes["feature_flag.result.reason"] == "disabled"
    resumed_span = traces.spans("invoke_agent support-agent")[-1]
    assert last.span_id == resumed_span.get_span_context().span_id


def test_evaluation_events_without_tracing(client: FlagClient) -> None:
    lp, logs = _logger()
    tracer = RunTracer(
        tracer_provider=trace.NoOpTracerProvider(), logger_provider=lp, evaluation_events=True
    )
    run = new_run(client, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    records = [r.log_record for r in logs.get_finished_logs()]
    assert len(records) == 7
    assert all(r.trace_id == 0 for r in records)
    assert tracer._runs == {}


# -- pure helpers ------------------------------------------------------------------------------


def test_result_reason_mapping(client: FlagClient) -> None:
    from flagmw import Layer, Provenance

    assert A.result_reason(Provenance(Layer.DEFAULT), 1) == "default"
    assert A.result_reason(Provenance(Layer.ENVIRONMENT, scope="staging"), 1) == "static"
    assert A.result_reason(Provenance(Layer.SNAPSHOT, rev=1), 1) == "static"
    assert A.result_reason(Provenance(Layer.SNAPSHOT, rev=1, rule="r"), 1) == "targeting_match"
    assert A.result_reason(Provenance(Layer.TENANT, rev=1), 1) == "targeting_match"
    assert A.result_reason(Provenance(Layer.ROUTE, rev=1), 1) == "targeting_match"
    assert A.result_reason(Provenance(Layer.EXPERIMENT, rev=1, variant="a"), 1) == "split"
    assert A.result_reason(Provenance(Layer.OVERRIDE, override_id="o"), False) == "disabled"
    assert (
        A.result_reason(Provenance(Layer.OVERRIDE, override_id="o"), "gpt-4o") == "targeting_match"
    )


def test_encode_value() -> None:
    assert A.encode_value(True) is True
    assert A.encode_value(3) == 3
    assert A.encode_value(0.5) == 0.5
    assert A.encode_value(None) == "null"
    assert A.encode_value({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert A.encode_value("x" * 5000) == "x" * (A.MAX_VALUE_CHARS - 1) + "…"
    assert A.encode_value("secret", sensitive=True) == "[redacted]"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    values=st.dictionaries(
        st.text(alphabet="abcdefgé.", min_size=1, max_size=12), json_values, max_size=25
    ),
    context=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=200), max_size=4),
    max_bytes=st.integers(min_value=256, max_value=3000),
)
def test_capped_json_is_bounded_and_honest(
    values: dict[str, Any], context: dict[str, str], max_bytes: int
) -> None:
    """For every document and cap: the result fits the cap; when it is the whole document
    it is exactly the document; when cut it is either valid JSON that says how much was
    left out (and keeps a prefix of the priority order), or ends with the text marker."""
    doc = {
        "format": "flagmw.runconfig/1",
        "context": {"attributes": context},
        "values": values,
        "provenance": {k: {"layer": "snapshot", "rev": 1} for k in list(values)[::2]},
        "snapshot_rev": 1,
    }
    order = sorted(values)
    out = A.capped_json(doc, order, max_bytes)
    assert len(out.encode("utf-8")) <= max_bytes
    full = A.dumps(doc)
    if len(full.encode("utf-8")) <= max_bytes:
        assert out == full
        return
    if out.endswith(f"[truncated at {max_bytes} bytes]"):
        return
    got = json.loads(out)
    kept = list(got["values"])
    assert got["truncated"]["omitted_keys"] == len(values) - len(kept)
    assert sorted(kept) == order[: len(kept)]
    assert all(got["values"][k] == values[k] for k in kept)


def test_config_attribute_is_capped_with_marker(traces: Traces) -> None:
    reg = FlagRegistry([Flag(f"big.flag_{i:03d}", "string", "v" * 200) for i in range(120)])
    client = FlagClient(reg, MemoryStore(), clock=FixedClock())
    tracer = RunTracer(tracer_provider=traces.provider, max_config_bytes=4096)
    run = new_run(client, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    a = attrs(traces.one("invoke_agent support-agent"))
    text = a[A.CONFIG]
    assert len(text.encode()) <= 4096
    doc = json.loads(text)
    kept = len(doc["values"])
    assert 0 < kept < 120
    assert doc["truncated"] == {"max_bytes": 4096, "omitted_keys": 120 - kept, "omitted_changes": 0}
    assert doc["config_hash"] == run.rc.config_hash
    assert doc["snapshot_rev"] is None
