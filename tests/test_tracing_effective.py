"""The root span records what reached the run (issue 7 §4): a kill or hot change that
arrives in flight shows in ``flagmw.override_ids``, ``flagmw.changed_keys``,
``flagmw.change_count`` and ``flagmw.effective.<key>.*`` — attributes a trace UI can
filter on — while ``flagmw.flag.<key>.*`` and ``flagmw.pinned_override_ids`` keep the
pinned values. Real LangGraph graphs wrapped with ``flagmw.wrap``, real SQLite
checkpointers, the real SDK (InMemorySpanExporter) and a real OTLP/HTTP receiver."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from conftest import snapshot_part
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import OTLPReceiver

import flagmw
from flagmw import EvaluationContext, Flag, FlagClient, FlagRegistry, MemoryStore
from flagmw.core.runconfig import HotChange, Layer, Provenance, RunConfig, make_candidate
from flagmw.langgraph.drain import RunDrained
from flagmw.langgraph.run import RunState
from flagmw.tracing import RunTracer
from flagmw.tracing import attributes as A

REFUND = "tools.refund_api.enabled"


class S(TypedDict, total=False):
    seen: list[Any]


def three_steps(client: FlagClient, tracer: RunTracer, saver: Any, **acts: Any) -> Any:
    """``a → b → c``; ``acts[node](client)`` runs inside that node (e.g. a kill). Each
    node records the value of the refund flag it saw."""

    def node(name: str) -> Any:
        def run(state: S) -> dict[str, Any]:
            seen = [*state.get("seen", []), (name, flagmw.current()[REFUND])]
            act = acts.get(name)
            if act is not None:
                act(client)
            return {"seen": seen}

        return run

    g = StateGraph(S)
    for name in ("a", "b", "c"):
        g.add_node(name, node(name))
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", END)
    return flagmw.wrap(g.compile(checkpointer=saver), client, name="support-agent", tracer=tracer)


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exp = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exp))
    yield provider, exp
    provider.shutdown()


@pytest.fixture
def client(make_client: Any) -> FlagClient:
    c: FlagClient = make_client(document=snapshot_part())  # a real SQLite store file
    return c


@pytest.fixture
def saver(tmp_path: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    yield SqliteSaver(conn)
    conn.close()


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, "tenant_id": "acme", "user_id": "u-17"}}


def the_span(exp: InMemorySpanExporter) -> ReadableSpan:
    (span,) = [s for s in exp.get_finished_spans() if s.name == "invoke_agent support-agent"]
    return span


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_a_run_nothing_reached_says_so(client: FlagClient, exporter: Any, saver: Any) -> None:
    provider, exp = exporter
    graph = three_steps(client, RunTracer(tracer_provider=provider), saver)
    graph.invoke({}, cfg("t-quiet"))
    a = attrs(the_span(exp))
    assert a[A.CHANGE_COUNT] == 0
    assert a[A.CHANGED_KEYS] == ()
    assert a[A.OVERRIDE_IDS] == a[A.PINNED_OVERRIDE_IDS] == ()
    assert not [k for k in a if k.startswith(A.EFFECTIVE_PREFIX)]


def test_kill_in_flight_then_lifted_is_still_on_the_root_span(
    client: FlagClient, exporter: Any, saver: Any
) -> None:
    provider, exp = exporter
    ids: list[str] = []

    def kill(c: FlagClient) -> None:
        ids.append(c.kill(REFUND, reason="fraud spike", actor="oncall", ttl="1h").id)

    def lift(c: FlagClient) -> None:
        c.end_override(ids[0], actor="oncall", reason="fixed")

    graph = three_steps(client, RunTracer(tracer_provider=provider), saver, a=kill, b=lift)
    out = graph.invoke({}, cfg("t-kill"))
    # the kill reached node b, and was lifted before node c
    assert out["seen"] == [("a", True), ("b", False), ("c", True)]
    span = the_span(exp)
    a = attrs(span)
    # a filter on flagmw.override_ids finds the run although the kill ended before it did
    assert a[A.OVERRIDE_IDS] == (ids[0],)
    assert a[A.PINNED_OVERRIDE_IDS] == ()
    assert a[A.CHANGE_COUNT] == 2
    assert a[A.CHANGED_KEYS] == (REFUND,)
    # the effective value at the end is the default again; the pinned one stays as pinned
    assert a[f"flagmw.effective.{REFUND}.value"] is True
    assert a[f"flagmw.effective.{REFUND}.source"] == "default"
    assert a[f"flagmw.flag.{REFUND}.value"] is True
    assert a[f"flagmw.flag.{REFUND}.source"] == "default"
    assert [e.name for e in span.events] == ["flagmw.flag_changed", "flagmw.flag_changed"]
    assert span.dropped_attributes == 0


def test_kill_in_flight_effective_value_is_the_kill(
    client: FlagClient, exporter: Any, saver: Any
) -> None:
    provider, exp = exporter
    graph = three_steps(
        client,
        RunTracer(tracer_provider=provider),
        saver,
        a=lambda c: c.kill(REFUND, reason="fraud spike", actor="oncall", ttl="1h"),
    )
    graph.invoke({}, cfg("t-kill-2"))
    a = attrs(the_span(exp))
    (kill,) = client.overrides()
    assert a[A.OVERRIDE_IDS] == (kill.id,)
    assert a[f"flagmw.effective.{REFUND}.value"] is False
    assert a[f"flagmw.effective.{REFUND}.source"] == "override"


def test_a_run_kill_that_drains_the_run_is_listed(
    client: FlagClient, exporter: Any, saver: Any
) -> None:
    provider, exp = exporter
    graph = three_steps(
        client,
        RunTracer(tracer_provider=provider),
        saver,
        a=lambda c: c.kill("agent.enabled", reason="runaway loop", actor="oncall", ttl="1h"),
    )
    with pytest.raises(RunDrained):
        graph.invoke({}, cfg("t-drain"))
    a = attrs(the_span(exp))
    (kill,) = client.overrides()
    assert a[A.OUTCOME] == "drained"
    assert kill.id in a[A.OVERRIDE_IDS]
    assert a[A.PINNED_OVERRIDE_IDS] == ()


def test_a_kill_pinned_at_start_and_another_in_flight(
    client: FlagClient, exporter: Any, saver: Any
) -> None:
    provider, exp = exporter
    pinned = client.override("prompt.style", "v3", reason="rollout", actor="ux", ttl="1h")
    graph = three_steps(
        client,
        RunTracer(tracer_provider=provider),
        saver,
        b=lambda c: c.kill(REFUND, reason="fraud spike", actor="oncall", ttl="1h"),
    )
    graph.invoke({}, cfg("t-both"))
    a = attrs(the_span(exp))
    in_flight = next(o for o in client.overrides() if o.key == REFUND)
    assert a["flagmw.flag.prompt.style.value"] == "v3"
    assert a[A.PINNED_OVERRIDE_IDS] == (pinned.id,)
    assert a[A.OVERRIDE_IDS] == (pinned.id, in_flight.id)  # pinned first, then arrivals


def test_a_sensitive_hot_value_is_redacted_in_the_effective_attributes(exporter: Any) -> None:
    provider, exp = exporter
    registry = FlagRegistry(
        [Flag("support.escalation_email", "string", "a@x.test", binding="hot", sensitive=True)]
    )
    client = FlagClient(registry, MemoryStore())
    tracer = RunTracer(tracer_provider=provider)
    run = RunState(
        client=client,
        rc=client.resolve(EvaluationContext(tenant_id="acme")),
        name="support-agent",
        observers=(tracer,),
    )
    tracer.run_started(run)
    client.override("support.escalation_email", "b@x.test", reason="rota", actor="oncall")
    assert run.refresh_hot(client.generation, step=1)
    tracer.run_ended(run, "completed", None)
    a = attrs(the_span(exp))
    assert a[A.CHANGED_KEYS] == ("support.escalation_email",)
    assert a["flagmw.effective.support.escalation_email.value"] == A.REDACTED
    assert a["flagmw.effective.support.escalation_email.source"] == "override"
    assert "b@x.test" not in repr(a)


def test_what_reached_the_run_arrives_over_otlp(
    client: FlagClient, saver: Any, tmp_path: Path
) -> None:
    with OTLPReceiver() as rx:
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=rx.traces_url)))
        graph = three_steps(
            client,
            RunTracer(tracer_provider=provider),
            saver,
            a=lambda c: c.kill(REFUND, reason="fraud spike", actor="oncall", ttl="1h"),
        )
        graph.invoke({}, cfg("t-otlp"))
        assert provider.force_flush(10_000)
        provider.shutdown()
        span = rx.wait_for_span(lambda s: s.name == "invoke_agent support-agent")
    (kill,) = client.overrides()
    a = span.attributes
    # string arrays and ints survive the wire
    assert a[A.OVERRIDE_IDS] == [kill.id]
    assert a[A.PINNED_OVERRIDE_IDS] == []
    assert a[A.CHANGED_KEYS] == [REFUND]
    assert a[A.CHANGE_COUNT] == 1
    assert a[f"flagmw.effective.{REFUND}.value"] is False
    assert a[f"flagmw.effective.{REFUND}.source"] == "override"
    assert a[f"flagmw.flag.{REFUND}.value"] is True
    assert span.dropped_attributes_count == 0


# -- the rule, for all inputs ------------------------------------------------------------------

_ids = st.sampled_from(["ov-1", "ov-2", "ov-3", "ov-4", "ov-5"])


def _rc(value: bool, ids: list[str], changes: tuple[HotChange, ...] = ()) -> RunConfig:
    prov = Provenance(Layer.OVERRIDE, override_id=ids[0]) if ids else Provenance(Layer.DEFAULT)
    return RunConfig(
        {"k": make_candidate("k", value, prov)},
        snapshot_rev=None,
        snapshot_hash=None,
        environment="production",
        context=EvaluationContext(),
        resolved_at=0.0,
        override_ids=tuple(dict.fromkeys(ids)),
        changes=changes,
    )


@given(
    pinned_ids=st.lists(_ids, max_size=3),
    change_ids=st.lists(st.one_of(st.none(), _ids), max_size=4),
    event_ids=st.lists(st.one_of(st.none(), _ids), max_size=4),
    final_ids=st.lists(_ids, max_size=2),
)
def test_reached_override_ids_lists_every_id_once_pinned_first(
    pinned_ids: list[str],
    change_ids: list[str | None],
    event_ids: list[str | None],
    final_ids: list[str],
) -> None:
    pinned = _rc(True, pinned_ids)
    changes = tuple(
        HotChange("k", True, False, Provenance(Layer.OVERRIDE, override_id=i), at=0.0)
        for i in change_ids
    )
    effective = _rc(False, final_ids, pinned.changes + changes)
    events = [("tool_refused", {"override_id": i, "tool": "t"}) for i in event_ids]
    got = A.reached_override_ids(pinned, effective, events)
    want = set(pinned_ids) | {i for i in change_ids + event_ids if i} | set(final_ids)
    assert set(got) == want
    assert len(got) == len(set(got))
    assert got[: len(set(pinned_ids))] == list(dict.fromkeys(pinned_ids))
    assert A.run_changes(pinned, effective) == changes
