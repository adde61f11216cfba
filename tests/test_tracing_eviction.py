"""The run-level attributes can never be evicted by the SDK's attribute limit.

``BoundedAttributes`` (opentelemetry-sdk) drops the *oldest* key when a span already holds
``max_span_attributes`` (default 128) keys and a new one is set. flagmw writes per-flag
attributes first and the run-level ones last, fits its per-flag budget to the span's
limit, and re-sets the run-level attributes when the run ends (re-setting a key moves it
to the newest position). These tests put 200 flags under the default limit, in root and
enrich mode, with other code writing to the same span, and with OpenInference's
LangChain instrumentation active on a real LangGraph graph.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from conftest import FixedClock
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from flagmw import EvaluationContext, Flag, FlagClient, FlagRegistry, MemoryStore
from flagmw.langgraph.run import RunState
from flagmw.tracing import RunTracer
from flagmw.tracing import attributes as A

DEFAULT_LIMIT = 128
RUN_LEVEL = (
    A.GEN_AI_OPERATION_NAME,
    A.GEN_AI_AGENT_NAME,
    A.GEN_AI_CONVERSATION_ID,
    A.SNAPSHOT_REV,
    A.CONFIG_HASH,
    A.ENVIRONMENT,
    A.TENANT_ID,
    A.USER_ID,
    A.ROUTE,
    A.OVERRIDE_IDS,
    A.PINNED_OVERRIDE_IDS,
    A.CHANGE_COUNT,
    A.CHANGED_KEYS,
    A.RESUMED,
    A.CONFIG,
    A.FLAG_COUNT,
    A.FLAGS_TRUNCATED,
    A.FLAGS_OMITTED,
    A.OUTCOME,
)


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    p = TracerProvider()  # default SpanLimits: 128 attributes per span
    p.add_span_processor(SimpleSpanProcessor(exporter))
    yield p, exporter
    p.shutdown()


@pytest.fixture(scope="module")
def client200() -> FlagClient:
    """200 flags (some hot) and a snapshot that sets half of them; one kill active."""
    flags = [
        Flag(
            f"feature.f{i:03d}.enabled",
            "bool",
            True,
            binding="hot" if i % 10 == 0 else "pinned",
        )
        for i in range(200)
    ]
    client = FlagClient(FlagRegistry(flags), MemoryStore(), clock=FixedClock())
    client.publish(
        {"values": {f"feature.f{i:03d}.enabled": False for i in range(0, 200, 2)}},
        author="test",
        message="half off",
    )
    client.kill("feature.f199.enabled", reason="incident", actor="oncall", ttl="1h")
    return client


def run_for(client: FlagClient, tracer: RunTracer, thread: str = "t-1") -> RunState:
    rc = client.resolve(
        EvaluationContext(tenant_id="acme", user_id="u-1", route="support", thread_id=thread)
    )
    return RunState(client=client, rc=rc, name="agent", thread_id=thread, observers=(tracer,))


def assert_run_level_intact(span: ReadableSpan, run: RunState) -> None:
    a = dict(span.attributes or {})
    missing = [k for k in RUN_LEVEL if k not in a]
    assert not missing, f"evicted: {missing} (dropped {span.dropped_attributes})"
    assert a[A.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert a[A.SNAPSHOT_REV] == run.rc.snapshot_rev == 1
    assert a[A.CONFIG_HASH] == run.rc.config_hash
    assert a[A.OVERRIDE_IDS] == run.rc.override_ids
    assert len(json.loads(a[A.CONFIG])["values"]) == 200
    assert a[A.FLAG_COUNT] == 200
    assert a[A.FLAGS_TRUNCATED] is True


def test_sdk_evicts_the_oldest_key(provider: Any) -> None:
    """The pitfall itself (so a regression in the SDK's behaviour shows up here): a key
    written first is gone after 128 more; re-setting a key makes it the newest."""
    p, exporter = provider
    with p.get_tracer("t").start_as_current_span("s") as span:
        span.set_attribute("first", 1)
        span.set_attribute("kept", 1)
        for i in range(DEFAULT_LIMIT - 2):
            span.set_attribute(f"other.{i}", i)
        span.set_attribute("kept", 2)  # moves to the newest position
        span.set_attribute("one.more", 1)  # the dict is full: the oldest goes
    (s,) = exporter.get_finished_spans()
    assert "first" not in s.attributes
    assert s.attributes["kept"] == 2
    assert s.dropped_attributes == 1


@pytest.mark.parametrize("budget", [40, 200])
def test_root_span_with_200_flags_drops_nothing(
    provider: Any, client200: FlagClient, budget: int
) -> None:
    p, exporter = provider
    tracer = RunTracer(tracer_provider=p, flag_budget=budget)
    run = run_for(client200, tracer)
    tracer.run_started(run)
    tracer.run_ended(run, "completed", None)
    (span,) = exporter.get_finished_spans()
    assert_run_level_intact(span, run)
    assert span.dropped_attributes == 0  # flagmw never evicts anything itself
    a = span.attributes or {}
    written = [k for k in a if k.endswith(".value")]
    assert len(a) <= DEFAULT_LIMIT
    # budget 200 is fitted to the limit: 128 minus the 18 run-level keys written at start,
    # a reserve of 5 (outcome, error.type, pinned_override_ids, ...) and 2 x 8 for the
    # effective values of changed hot keys (20 hot keys, at most 8) leaves room for 44
    assert len(written) == (40 if budget == 40 else (DEFAULT_LIMIT - 18 - 5 - 2 * 8) // 2)
    # the kill (overridden) and the hot keys got the budget first
    assert written[0] == "flagmw.flag.feature.f199.enabled.value"
    assert "flagmw.flag.feature.f000.enabled.value" in written
    assert a[A.FLAGS_OMITTED] == 200 - len(written)


def test_root_span_survives_someone_else_filling_it(provider: Any, client200: FlagClient) -> None:
    p, exporter = provider
    tracer = RunTracer(tracer_provider=p, flag_budget=200)
    run = run_for(client200, tracer)
    tracer.run_started(run)
    with tracer.activate(run):
        # e.g. a node or another instrumentation writing to the current span
        current = trace.get_current_span()
        for i in range(300):
            current.set_attribute(f"someone.else.{i}", i)
    tracer.run_ended(run, "completed", None)
    (span,) = exporter.get_finished_spans()
    assert span.dropped_attributes > 0  # the span really overflowed
    assert_run_level_intact(span, run)
    # what is left of the others' writes are their newest keys
    assert "someone.else.299" in (span.attributes or {})


def test_enrich_keeps_callers_attributes_and_its_own(provider: Any, client200: FlagClient) -> None:
    p, exporter = provider
    tracer = RunTracer(tracer_provider=p, span="enrich", flag_budget=200)
    run = run_for(client200, tracer)
    with p.get_tracer("caller").start_as_current_span("POST /chat") as outer:
        for i in range(30):
            outer.set_attribute(f"http.caller.{i}", i)
        tracer.run_started(run)
        with tracer.activate(run):
            pass
        tracer.run_ended(run, "completed", None)
        before = outer.dropped_attributes  # type: ignore[attr-defined]
        assert before == 0  # flagmw fitted its budget: none of the caller's keys evicted
        assert all(f"http.caller.{i}" in outer.attributes for i in range(30))  # type: ignore[attr-defined]
        # the caller keeps writing after the run: up to limit - run-level keys are safe
        room = DEFAULT_LIMIT - len(RUN_LEVEL) - 4
        for i in range(room):
            outer.set_attribute(f"http.after.{i}", i)
    (span,) = exporter.get_finished_spans()
    assert span.dropped_attributes > 0
    assert_run_level_intact(span, run)


# -- with OpenInference's LangChain instrumentation on a real LangGraph graph --------------------


class S(TypedDict):
    n: int


@pytest.fixture
def openinference(provider: Any) -> Iterator[Any]:
    oi = pytest.importorskip("openinference.instrumentation.langchain")
    instrumentor = oi.LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider[0])
    yield oi
    instrumentor.uninstrument()


def _graph() -> Any:
    from langgraph.graph import END, START, StateGraph

    def step(state: S) -> dict[str, int]:
        return {"n": state["n"] + 1}

    g = StateGraph(S)
    for name in ("plan", "act", "answer"):
        g.add_node(name, step)
    g.add_edge(START, "plan")
    g.add_edge("plan", "act")
    g.add_edge("act", "answer")
    g.add_edge("answer", END)
    return g.compile(name="support-agent")


@pytest.mark.parametrize("mode", ["root", "enrich"])
def test_with_openinference_instrumentation(
    provider: Any, client200: FlagClient, openinference: Any, mode: str
) -> None:
    p, exporter = provider
    tracer = RunTracer(tracer_provider=p, span=mode, flag_budget=200)  # type: ignore[arg-type]
    graph = _graph()
    run = run_for(client200, tracer)
    meta = {"flagmw.snapshot_rev": run.rc.snapshot_rev, "thread_id": "t-1"}
    with p.get_tracer("caller").start_as_current_span("request") as outer:
        outer.set_attribute("app.request", "r-1")
        # the wrapper's contract: run_started, activate around execution, run_ended
        tracer.run_started(run)
        with tracer.activate(run):
            out = graph.invoke({"n": 0}, {"metadata": meta})
        tracer.run_ended(run, "completed", None)
    assert out == {"n": 3}
    spans = {s.name: s for s in exporter.get_finished_spans()}
    ours = spans["invoke_agent agent"] if mode == "root" else spans["request"]
    graph_span = spans["support-agent"]  # OpenInference's span of the graph run
    assert graph_span.parent is not None
    assert graph_span.parent.span_id == ours.get_span_context().span_id
    assert {"plan", "act", "answer"} <= set(spans)
    # the metadata channel reached OpenInference's graph span
    assert json.loads(graph_span.attributes["metadata"])["flagmw.snapshot_rev"] == 1
    assert_run_level_intact(ours, run)
    assert ours.dropped_attributes == 0


def _client200_with_store() -> FlagClient:
    flags = [
        Flag(f"feature.f{i:03d}.enabled", "bool", True, binding="hot" if i % 10 == 0 else "pinned")
        for i in range(200)
    ]
    return FlagClient(FlagRegistry(flags), MemoryStore(), clock=FixedClock())


@pytest.mark.parametrize("filled", [False, True])
def test_what_reached_the_run_survives_a_full_span(provider: Any, filled: bool) -> None:
    """Ten hot keys killed in flight on a span with 200 flags: the run-level record of
    what reached the run is re-set last, like the rest; flagmw evicts nothing itself."""
    p, exporter = provider
    client = _client200_with_store()
    tracer = RunTracer(tracer_provider=p, flag_budget=200)
    run = run_for(client, tracer)
    tracer.run_started(run)
    with tracer.activate(run):
        if filled:
            current = trace.get_current_span()
            for i in range(300):
                current.set_attribute(f"someone.else.{i}", i)
    kills = [
        client.kill(f"feature.f{i:03d}.enabled", reason="incident", actor="oncall", ttl="1h")
        for i in range(0, 100, 10)
    ]
    assert run.refresh_hot(client.generation, step=1)
    tracer.run_ended(run, "completed", None)
    (span,) = exporter.get_finished_spans()
    a = dict(span.attributes or {})
    assert (span.dropped_attributes > 0) is filled
    # one step boundary brought all ten: their order among themselves is the changes' order
    assert sorted(a[A.OVERRIDE_IDS]) == sorted(k.id for k in kills)
    assert a[A.PINNED_OVERRIDE_IDS] == ()
    assert a[A.CHANGE_COUNT] == 10
    assert a[A.CHANGED_KEYS] == tuple(sorted(k.key for k in kills))
    effective = sorted(k for k in a if k.startswith(A.EFFECTIVE_PREFIX))
    # the first 8 changed keys (sorted) get their effective value and source
    assert len(effective) == 2 * 8
    for key in sorted(k.key for k in kills)[:8]:
        assert a[f"flagmw.effective.{key}.value"] is False
        assert a[f"flagmw.effective.{key}.source"] == "override"
    assert a[A.OUTCOME] == "completed"
    assert len(a) <= DEFAULT_LIMIT
