"""End to end through ``flagmw.wrap`` on real LangGraph graphs with real SQLite
checkpointers: the trace of new, interrupted, resumed (in a fresh graph object, as after
a restart), drained and failed runs; hot changes and tool refusals as span events;
``stream`` / ``astream`` with several runs interleaved (no context leaks); and the
LangChain metadata channel under OpenInference."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from conftest import snapshot_part
from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import flagmw
from flagmw import FlagClient
from flagmw.langgraph.drain import RunDrained
from flagmw.tracing import INTERRUPTED_EVENT, RunTracer
from flagmw.tracing import attributes as A

AGENT = "invoke_agent support-agent"


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    order: str
    notes: list[str]


@flagmw.gated("tools.refund_api.enabled")
@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


class RefundBackendError(RuntimeError):
    pass


class Probe:
    """What the nodes saw: (node, thread, span id of the current span)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, int]] = []

    def __call__(self, node: str) -> None:
        run = flagmw.current()
        span_id = trace.get_current_span().get_span_context().span_id
        self.seen.append((node, run.context.thread_id, span_id))


def build(
    client: FlagClient,
    tracer: RunTracer,
    checkpointer: Any = None,
    *,
    probe: Probe | None = None,
    approval: bool = False,
    kill_in_plan: str | None = None,
    fail: bool = False,
) -> Any:
    """A support agent: plan → [approve (interrupt)] → propose a refund tool call →
    tools (the gated refund tool) → answer."""
    probe = probe or Probe()

    def plan(state: State) -> dict[str, Any]:
        probe("plan")
        if kill_in_plan:
            client.kill(kill_in_plan, reason="refund fraud spike", actor="oncall", ttl="1h")
        return {"notes": [f"model={flagmw.current()['model.primary']}"]}

    def approve(state: State) -> dict[str, Any]:
        probe("approve")
        decision = interrupt({"order": state.get("order"), "question": "refund?"})
        return {"notes": [*state.get("notes", []), f"approved={decision}"]}

    def propose(state: State) -> dict[str, Any]:
        probe("propose")
        if fail:
            raise RefundBackendError("refund service returned 502")
        call = {"name": "refund", "args": {"order_id": state.get("order", "o-1")}, "id": "c-1"}
        return {"messages": [AIMessage("", tool_calls=[call])]}

    def answer(state: State) -> dict[str, Any]:
        probe("answer")
        return {"messages": [AIMessage("done")]}

    g = StateGraph(State)
    g.add_node("plan", plan)
    g.add_node("propose", propose)
    g.add_node("tools", ToolNode([refund]))
    g.add_node("answer", answer)
    g.add_edge(START, "plan")
    if approval:
        g.add_node("approve", approve)
        g.add_edge("plan", "approve")
        g.add_edge("approve", "propose")
    else:
        g.add_edge("plan", "propose")
    g.add_edge("propose", "tools")
    g.add_edge("tools", "answer")
    g.add_edge("answer", END)
    compiled = g.compile(checkpointer=checkpointer, name="support-graph")
    return flagmw.wrap(compiled, client, name="support-agent", tracer=tracer)


class Traces:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.caller = self.provider.get_tracer("caller")

    def agent_spans(self) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.name == AGENT]


@pytest.fixture
def traces() -> Iterator[Traces]:
    t = Traces()
    yield t
    t.provider.shutdown()


@pytest.fixture
def client(make_client: Any) -> FlagClient:
    c: FlagClient = make_client(document=snapshot_part())  # a real SQLite store file
    return c


@pytest.fixture
def saver(tmp_path: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    yield SqliteSaver(conn)
    conn.close()


def cfg(thread: str, **extra: Any) -> dict[str, Any]:
    conf = {"thread_id": thread, "tenant_id": "acme", "user_id": "u-17", "plan": "pro"}
    conf.update(extra)
    return {"configurable": conf}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def event_names(span: ReadableSpan) -> list[str]:
    return [e.name for e in span.events]


def span_ref(span: ReadableSpan) -> str:
    sc = span.get_span_context()
    return f"{sc.trace_id:032x}-{sc.span_id:016x}"


# -- sync --------------------------------------------------------------------------------------


def test_invoke_new_run(client: FlagClient, traces: Traces, saver: SqliteSaver) -> None:
    kill = client.kill("tools.refund_api.enabled", reason="fraud", actor="oncall", ttl="1h")
    probe = Probe()
    graph = build(client, RunTracer(tracer_provider=traces.provider), saver, probe=probe)
    with traces.caller.start_as_current_span("POST /chat") as outer:
        out = graph.invoke({"order": "o-7"}, cfg("t-new"))
    refusal = out["messages"][1]
    assert isinstance(refusal, ToolMessage)
    assert refusal.status == "error"
    (span,) = traces.agent_spans()
    assert span.parent is not None
    assert span.parent.span_id == outer.get_span_context().span_id
    # every node ran with the run's span current
    assert {s for _, _, s in probe.seen} == {span.get_span_context().span_id}
    a = attrs(span)
    assert a[A.GEN_AI_AGENT_NAME] == "support-agent"
    assert a[A.GEN_AI_CONVERSATION_ID] == "t-new"
    assert a[A.SNAPSHOT_REV] == 1
    assert a[A.TENANT_ID] == "acme"
    assert a[A.ROUTE] == "support-agent"
    assert a[A.OVERRIDE_IDS] == (kill.id,)
    assert a["flagmw.flag.model.primary.value"] == "gpt-4o-mini"
    assert a["flagmw.flag.model.primary.source"] == "tenant"
    assert a[A.OUTCOME] == "completed"
    assert a[A.RESUMED] is False
    pinned = graph.get_pinned_config(cfg("t-new"))
    assert a[A.CONFIG_HASH] == pinned.config_hash
    assert json.loads(a[A.CONFIG]) == pinned.to_dict()
    assert span.status.status_code is StatusCode.UNSET
    assert event_names(span) == ["flagmw.tool_refused"]
    refused = dict(span.events[0].attributes or {})
    assert refused["flagmw.tool"] == "refund"
    assert refused["flagmw.key"] == "tools.refund_api.enabled"
    assert refused["flagmw.override_id"] == kill.id
    # the span reference is stored with the run's checkpoint (for a later resume's link)
    refs = {c.metadata.get("flagmw.span") for c in saver.list(cfg("t-new"))} - {None}
    assert refs == {span_ref(span)}


def test_kill_in_flight_is_a_flag_changed_event(
    client: FlagClient, traces: Traces, saver: SqliteSaver
) -> None:
    graph = build(
        client,
        RunTracer(tracer_provider=traces.provider),
        saver,
        kill_in_plan="tools.refund_api.enabled",
    )
    graph.invoke({"order": "o-8"}, cfg("t-hot"))
    (span,) = traces.agent_spans()
    assert event_names(span) == ["flagmw.flag_changed", "flagmw.tool_refused"]
    changed = dict(span.events[0].attributes or {})
    kill_id = changed["flagmw.override_id"]
    assert changed == {
        "flagmw.key": "tools.refund_api.enabled",
        "flagmw.old": True,
        "flagmw.new": False,
        "flagmw.layer": "override",
        "flagmw.override_id": kill_id,
        "flagmw.step": changed["flagmw.step"],
    }
    assert changed["flagmw.step"] >= 1
    assert dict(span.events[1].attributes or {})["flagmw.override_id"] == kill_id
    # flagmw.flag.* keep the pinned config (the value at run start) ...
    a = attrs(span)
    assert a["flagmw.flag.tools.refund_api.enabled.value"] is True
    assert a["flagmw.flag.tools.refund_api.enabled.source"] == "default"
    assert a[A.PINNED_OVERRIDE_IDS] == ()
    # ... and the run-level attributes say what reached the run (issue 7 §4)
    assert a[A.OVERRIDE_IDS] == (kill_id,)
    assert a[A.CHANGE_COUNT] == 1
    assert a[A.CHANGED_KEYS] == ("tools.refund_api.enabled",)
    assert a["flagmw.effective.tools.refund_api.enabled.value"] is False
    assert a["flagmw.effective.tools.refund_api.enabled.source"] == "override"


def test_interrupt_then_resume_after_restart(
    client: FlagClient, traces: Traces, tmp_path: Path, snapshot_document: dict[str, Any]
) -> None:
    db = tmp_path / "checkpoints.db"
    tracer = RunTracer(tracer_provider=traces.provider)
    conn = sqlite3.connect(db, check_same_thread=False)
    graph = build(client, tracer, SqliteSaver(conn), approval=True)
    out = graph.invoke({"order": "o-9"}, cfg("t-hitl"))
    assert "__interrupt__" in out
    conn.close()
    (first,) = traces.agent_spans()
    assert attrs(first)[A.OUTCOME] == "interrupted"
    assert first.status.status_code is StatusCode.UNSET
    assert INTERRUPTED_EVENT in event_names(first)

    # a new snapshot is published while the run waits for approval
    snapshot_document["tenants"]["acme"]["values"]["model.primary"] = "gpt-4o"
    client.publish(snapshot_document, author="ops", message="acme back on gpt-4o")
    assert client.snapshot_rev == 2

    # "restart": a new checkpointer connection and a new wrapped graph on the same file
    conn2 = sqlite3.connect(db, check_same_thread=False)
    graph2 = build(client, tracer, SqliteSaver(conn2), approval=True)
    with traces.caller.start_as_current_span("POST /approve"):
        out2 = graph2.invoke(Command(resume="yes"), cfg("t-hitl"))
    conn2.close()
    assert out2["messages"][-1].content == "done"
    first_again, second = traces.agent_spans()
    assert first_again.get_span_context() == first.get_span_context()
    a = attrs(second)
    assert a[A.RESUMED] is True
    assert a[A.OUTCOME] == "completed"
    # the resumed run keeps its pinned config, and its span links to the first one
    assert a[A.SNAPSHOT_REV] == attrs(first)[A.SNAPSHOT_REV] == 1
    assert a[A.CONFIG_HASH] == attrs(first)[A.CONFIG_HASH]
    assert a["flagmw.flag.model.primary.value"] == "gpt-4o-mini"
    assert [span_ref_of(lk.context) for lk in second.links] == [span_ref(first)]
    assert second.get_span_context().trace_id != first.get_span_context().trace_id


def span_ref_of(ctx: Any) -> str:
    return f"{ctx.trace_id:032x}-{ctx.span_id:016x}"


def test_drain_then_resume(client: FlagClient, traces: Traces, saver: SqliteSaver) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    graph = build(client, tracer, saver, kill_in_plan="agent.enabled")
    with pytest.raises(RunDrained) as info:
        graph.invoke({"order": "o-10"}, cfg("t-drain"))
    (drained,) = traces.agent_spans()
    assert drained.status.status_code is StatusCode.ERROR
    assert drained.status.description is not None
    assert drained.status.description.startswith("drained by kill switch agent.enabled")
    a = attrs(drained)
    assert a[A.OUTCOME] == "drained"
    assert a[A.ERROR_TYPE] == "drained"
    names = event_names(drained)
    assert names.count("flagmw.run_drained") == 1
    assert names.index("flagmw.flag_changed") < names.index("flagmw.run_drained")
    ev = dict(drained.events[names.index("flagmw.run_drained")].attributes or {})
    assert ev["flagmw.key"] == "agent.enabled"
    assert ev["flagmw.reason"] == "refund fraud spike"
    assert ev["flagmw.override_id"] == info.value.override_id

    # the kill ends; the drained run resumes from its checkpoint with a linked span
    client.end_override(info.value.override_id, actor="oncall", reason="fixed")
    resumed_graph = build(client, tracer, saver)  # no kill this time
    resumed_graph.invoke(None, cfg("t-drain"))
    _, again = traces.agent_spans()
    assert attrs(again)[A.RESUMED] is True
    assert attrs(again)[A.OUTCOME] == "completed"
    assert [span_ref_of(lk.context) for lk in again.links] == [span_ref(drained)]


def test_failing_node(client: FlagClient, traces: Traces, saver: SqliteSaver) -> None:
    graph = build(client, RunTracer(tracer_provider=traces.provider), saver, fail=True)
    with pytest.raises(RefundBackendError):
        graph.invoke({"order": "o-11"}, cfg("t-fail"))
    (span,) = traces.agent_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RefundBackendError: refund service returned 502"
    assert attrs(span)[A.ERROR_TYPE] == "test_tracing_graph.RefundBackendError"
    assert attrs(span)[A.OUTCOME] == "error"
    (exc,) = [e for e in span.events if e.name == "exception"]
    assert (exc.attributes or {})["exception.message"] == "refund service returned 502"


def test_stream_runs_interleaved_do_not_leak(client: FlagClient, traces: Traces) -> None:
    probe = Probe()
    tracer = RunTracer(tracer_provider=traces.provider)
    from langgraph.checkpoint.memory import InMemorySaver

    graph = build(client, tracer, InMemorySaver(), probe=probe)
    with traces.caller.start_as_current_span("batch") as outer:
        streams = {f"t-{i}": graph.stream({"order": f"o-{i}"}, cfg(f"t-{i}")) for i in range(3)}
        live = dict(streams)
        chunks = 0
        while live:
            for thread, gen in list(live.items()):
                try:
                    next(gen)
                    chunks += 1
                except StopIteration:
                    del live[thread]
                # between chunks the caller's span is current again
                assert trace.get_current_span() is outer
    assert chunks >= 12
    spans = {attrs(s)[A.GEN_AI_CONVERSATION_ID]: s for s in traces.agent_spans()}
    assert sorted(spans) == ["t-0", "t-1", "t-2"]
    for node, thread, span_id in probe.seen:
        assert span_id == spans[thread].get_span_context().span_id, (node, thread)
    assert len(probe.seen) == 3 * 3  # plan, propose, answer per run
    for span in spans.values():
        assert span.parent is not None
        assert span.parent.span_id == outer.get_span_context().span_id


# -- async -------------------------------------------------------------------------------------


async def test_astream_runs_interleaved_and_async_resume(
    client: FlagClient, traces: Traces, tmp_path: Path
) -> None:
    probe = Probe()
    tracer = RunTracer(tracer_provider=traces.provider)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "async.db")) as saver:
        graph = build(client, tracer, saver, probe=probe, approval=True)

        async def drive(thread: str, payload: Any) -> list[Any]:
            got = []
            async for chunk in graph.astream(payload, cfg(thread)):
                got.append(chunk)
                await asyncio.sleep(0)  # let the other runs interleave
                assert trace.get_current_span() is trace.INVALID_SPAN
            return got

        firsts = await asyncio.gather(*(drive(f"a-{i}", {"order": f"o-{i}"}) for i in range(3)))
        assert all("__interrupt__" in chunks[-1] for chunks in firsts)
        await asyncio.gather(*(drive(f"a-{i}", Command(resume="ok")) for i in range(3)))

    spans = traces.agent_spans()
    assert len(spans) == 6
    by_thread: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        by_thread.setdefault(attrs(s)[A.GEN_AI_CONVERSATION_ID], []).append(s)
    for thread, (first, second) in by_thread.items():
        assert attrs(first)[A.OUTCOME] == "interrupted"
        assert attrs(second)[A.OUTCOME] == "completed"
        assert attrs(second)[A.RESUMED] is True
        assert [span_ref_of(lk.context) for lk in second.links] == [span_ref(first)]
        mine = {first.get_span_context().span_id, second.get_span_context().span_id}
        assert {sid for _, t, sid in probe.seen if t == thread} == mine


async def test_ainvoke_failure(client: FlagClient, traces: Traces) -> None:
    graph = build(client, RunTracer(tracer_provider=traces.provider), fail=True)
    with pytest.raises(RefundBackendError):
        await graph.ainvoke({"order": "o-12"})
    (span,) = traces.agent_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert A.GEN_AI_CONVERSATION_ID not in attrs(span)  # no thread: no conversation id


# -- the metadata channel with OpenInference ------------------------------------------------------


def test_openinference_spans_carry_rev_and_nest_under_ours(
    client: FlagClient, traces: Traces, saver: SqliteSaver
) -> None:
    oi = pytest.importorskip("openinference.instrumentation.langchain")
    instrumentor = oi.LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=traces.provider)
    try:
        graph = build(client, RunTracer(tracer_provider=traces.provider), saver)
        graph.invoke({"order": "o-13"}, cfg("t-oi"))
    finally:
        instrumentor.uninstrument()
    spans = list(traces.exporter.get_finished_spans())
    (ours,) = [s for s in spans if s.name == AGENT]
    graph_span = next(s for s in spans if s.name == "support-graph")
    assert graph_span.parent is not None
    assert graph_span.parent.span_id == ours.get_span_context().span_id
    meta = json.loads((graph_span.attributes or {})["metadata"])
    assert meta["flagmw.snapshot_rev"] == 1
    assert meta["flagmw.config_hash"] == attrs(ours)[A.CONFIG_HASH]
    # node spans too (metadata is inherited by every child run)
    plan = next(s for s in spans if s.name == "plan")
    assert json.loads((plan.attributes or {})["metadata"])["flagmw.snapshot_rev"] == 1
    assert ours.dropped_attributes == 0


# -- the consumer abandons the run -----------------------------------------------------------------


def test_stream_closed_early_is_cancelled_not_an_error(client: FlagClient, traces: Traces) -> None:
    graph = build(client, RunTracer(tracer_provider=traces.provider))
    stream = graph.stream({"order": "o-14"})
    next(stream)
    stream.close()  # what `break` out of a for loop does
    (span,) = traces.agent_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert attrs(span)[A.OUTCOME] == "cancelled"
    assert A.ERROR_TYPE not in attrs(span)
    assert event_names(span) == ["flagmw.cancelled"]
    assert dict(span.events[0].attributes or {})["flagmw.reason"] == "GeneratorExit"


async def test_cancelled_astream_task(client: FlagClient, traces: Traces) -> None:
    started = asyncio.Event()

    async def slow(state: State) -> dict[str, Any]:
        started.set()
        await asyncio.sleep(30)
        return {}

    g = StateGraph(State)
    g.add_node("slow", slow)
    g.add_edge(START, "slow")
    g.add_edge("slow", END)
    graph = flagmw.wrap(
        g.compile(name="slow"), client, name="support-agent",
        tracer=RunTracer(tracer_provider=traces.provider),
    )  # fmt: skip

    async def consume() -> None:
        async for _ in graph.astream({"order": "o-15"}):
            pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (span,) = traces.agent_spans()
    assert attrs(span)[A.OUTCOME] == "cancelled"
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.events[-1].attributes or {})["flagmw.reason"] == "CancelledError"


@pytest.mark.parametrize("how", ["ainvoke", "astream"])
async def test_async_drain_then_resume(
    client: FlagClient, traces: Traces, tmp_path: Path, how: str
) -> None:
    tracer = RunTracer(tracer_provider=traces.provider)
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "drain.db")) as saver:
        graph = build(client, tracer, saver, kill_in_plan="agent.enabled")

        async def run(g: Any, payload: Any) -> None:
            if how == "ainvoke":
                await g.ainvoke(payload, cfg("t-adrain"))
            else:
                async for _ in g.astream(payload, cfg("t-adrain")):
                    pass

        with pytest.raises(RunDrained) as info:
            await run(graph, {"order": "o-16"})
        client.end_override(info.value.override_id, actor="oncall", reason="fixed")
        await run(build(client, tracer, saver), None)
    drained, resumed = traces.agent_spans()
    assert drained.status.status_code is StatusCode.ERROR
    assert attrs(drained)[A.OUTCOME] == "drained"
    assert event_names(drained).count("flagmw.run_drained") == 1
    assert attrs(resumed)[A.OUTCOME] == "completed"
    assert attrs(resumed)[A.RESUMED] is True
    assert [span_ref_of(lk.context) for lk in resumed.links] == [span_ref(drained)]
