"""Run outcomes through real wrapped LangGraph runs and the ``create_agent`` middleware:
one record per run with version, stage, tenant, outcome, latency, model calls, tokens
and cost (from ``usage_metadata`` and the registry's price table), tool errors,
refusals and violations; feedback; OpenTelemetry metrics; recording never fails a run."""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

import flagmw
from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore
from flagmw.core.versions import ROLLOUT_ATTR, STAGE_ATTR, VERSION_ATTR
from flagmw.rollout.aggregate import by_version_stage
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.store import RolloutStore, open_rollout_store
from flagmw.rollout.stores.memory import MemoryRolloutStore
from flagmw.testing.scripted import ScriptedChatModel

PRICES = {
    "gpt-4o": {"input": 0.0025, "output": 0.01},
    "gpt-4o-mini": {"input": 0.00015, "output": 0.0006},
}
REGISTRY = {
    "flags": {
        "model.primary": {
            "type": "enum",
            "choices": ["gpt-4o", "gpt-4o-mini"],
            "default": "gpt-4o",
        },
        "model.prices": {"type": "json", "default": PRICES},
        "tools.refund_api.enabled": {"type": "bool", "default": True, "binding": "hot"},
    }
}


def _usage(text: str, inp: int, out: int) -> AIMessage:
    return AIMessage(
        text, usage_metadata={"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    )


@tool
def flaky(q: str) -> str:
    """A tool that fails."""
    raise ValueError("backend down")


class S(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(model: ScriptedChatModel, *, fail: bool = False, ask: bool = False) -> Any:
    def work(state: S) -> dict[str, Any]:
        model.invoke([HumanMessage("hi")])
        model.invoke([HumanMessage("again")])
        with contextlib.suppress(ValueError):
            flaky.invoke({"q": "x"})
        flagmw.record_violation("pii", "an e-mail address in the answer")
        if ask:
            interrupt("approve?")
        if fail:
            raise RuntimeError("node failed")
        return {"log": ["work"]}

    b = StateGraph(S)
    b.add_node("work", work)
    b.add_edge(START, "work")
    return b.compile(checkpointer=InMemorySaver(), name="support-agent")


@pytest.fixture
def client() -> Iterator[FlagClient]:
    c = FlagClient(FlagRegistry.from_dict(REGISTRY), MemoryStore())
    c.publish({"values": {"model.primary": "gpt-4o-mini"}}, author="t", message="m")
    yield c
    c.close()


@pytest.fixture
def recorder(client: FlagClient) -> Iterator[OutcomeRecorder]:
    rec = OutcomeRecorder(open_rollout_store(client.store), flush_interval=3600)
    yield rec
    rec.close()


def _versioned(config: Any, input: Any) -> EvaluationContext:
    conf = config.get("configurable", {})
    return EvaluationContext(
        tenant_id=conf.get("tenant_id"),
        thread_id=conf.get("thread_id"),
        run_id=str(config.get("run_id")),
        route="support-agent",
        attributes={
            VERSION_ATTR: "support-agent@v1.3.3",
            ROLLOUT_ATTR: "support-agent-1.3.3",
            STAGE_ATTR: 25,
        },
    )


def test_a_wrapped_run_records_one_outcome(client: FlagClient, recorder: OutcomeRecorder) -> None:
    model = ScriptedChatModel(script=[_usage("a", 1000, 200)], label="gpt-4o-mini")
    graph = flagmw.wrap(_graph(model), client, observers=[recorder], context=_versioned)
    cfg = {"configurable": {"thread_id": "t-1", "tenant_id": "acme"}}
    graph.invoke({"log": []}, cfg)
    assert recorder.flush() == 1
    [o] = recorder.store.outcomes()
    assert o["agent"] == "support-agent"
    assert o["version"] == "v1.3.3"
    assert (o["rollout"], o["stage"], o["tenant"]) == ("support-agent-1.3.3", 25, "acme")
    assert o["outcome"] == "completed"
    assert o["resumed"] is False
    assert o["model_calls"] == 2
    assert o["model_errors"] == 0
    assert (o["input_tokens"], o["output_tokens"]) == (2000, 400)
    # the price table is the run's value of the registry flag model.prices
    assert o["cost"] == pytest.approx(2 * 0.00015 + 0.4 * 0.0006)
    assert o["tool_errors"] == 1
    assert o["violations"] == [{"kind": "pii", "detail": "an e-mail address in the answer"}]
    assert o["snapshot_rev"] == 1
    assert o["latency_ms"] > 0
    assert o["thread_id"] == "t-1"
    stats = by_version_stage([o])[("support-agent", "v1.3.3", 25)]
    assert stats.runs == 1
    assert stats.violation_rate == 1.0


def test_failed_and_interrupted_runs(client: FlagClient, recorder: OutcomeRecorder) -> None:
    model = ScriptedChatModel(script=[_usage("a", 10, 1)], label="gpt-4o")
    failing = flagmw.wrap(_graph(model, fail=True), client, observers=[recorder])
    with pytest.raises(RuntimeError, match="node failed"):
        failing.invoke({"log": []}, {"configurable": {"thread_id": "t-f"}})
    asking = flagmw.wrap(_graph(model, ask=True), client, observers=[recorder])
    cfg = {"configurable": {"thread_id": "t-i"}}
    asking.invoke({"log": []}, cfg)
    asking.invoke(Command(resume="yes"), cfg)
    recorder.flush()
    got = [(o["outcome"], o["resumed"], o["version"]) for o in recorder.store.outcomes()]
    assert got == [("failed", False, None), ("interrupted", False, None), ("completed", True, None)]
    assert recorder.store.outcomes()[0]["cost"] == pytest.approx(2 * (0.01 * 0.0025 + 0.001 * 0.01))


class _BrokenStore(MemoryRolloutStore):
    def _append(self, kind: str, at: float, docs: list[dict[str, Any]]) -> None:
        raise OSError("disk full")


def test_recording_never_fails_a_run(client: FlagClient) -> None:
    rec = OutcomeRecorder(_BrokenStore(), flush_interval=0.01)
    model = ScriptedChatModel(script=[_usage("a", 1, 1)], label="gpt-4o")
    graph = flagmw.wrap(_graph(model), client, observers=[rec])
    for i in range(3):
        assert graph.invoke({"log": []}, {"configurable": {"thread_id": f"t-{i}"}}) == {
            "log": ["work"]
        }
    rec.close()
    assert rec.errors >= 1
    assert rec.dropped == 3
    assert rec.recorded == 0


def test_the_buffer_is_bounded(client: FlagClient) -> None:
    rec = OutcomeRecorder(MemoryRolloutStore(), flush_interval=3600, max_buffer=2)
    for i in range(5):
        rec.add({"at": float(i)})
    assert rec.dropped == 3
    rec.close()
    assert rec.recorded == 2


def test_feedback_is_stored(client: FlagClient) -> None:
    client.record_feedback("run-1", 0.25, "wrong refund amount")
    [fb] = open_rollout_store(client.store).feedback()
    assert (fb["run_id"], fb["score"], fb["comment"]) == ("run-1", 0.25, "wrong refund amount")
    with pytest.raises(flagmw.FlagmwError, match="number"):
        client.record_feedback("run-1", "great")  # type: ignore[arg-type]


def test_outcomes_are_opentelemetry_metrics(client: FlagClient) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    rs: RolloutStore = open_rollout_store(client.store)
    rec = OutcomeRecorder(rs, flush_interval=3600, meter_provider=MeterProvider([reader]))
    model = ScriptedChatModel(script=[_usage("a", 100, 10)], label="gpt-4o-mini")
    graph = flagmw.wrap(_graph(model), client, observers=[rec], context=_versioned)
    graph.invoke({"log": []}, {"configurable": {"thread_id": "t-m", "tenant_id": "acme"}})
    rec.close()
    data = reader.get_metrics_data()
    points = {
        m.name: list(m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    [runs] = points["flagmw.agent.runs"]
    assert runs.value == 1
    assert dict(runs.attributes) == {
        "gen_ai.agent.name": "support-agent",
        "flagmw.snapshot_rev": 1,
        "flagmw.agent.version": "v1.3.3",
        "flagmw.rollout.stage": 25,
        "flagmw.tenant_id": "acme",
        "flagmw.run.outcome": "completed",
    }
    tokens = {
        dict(p.attributes)["gen_ai.token.type"]: p.value for p in points["flagmw.agent.tokens"]
    }
    assert tokens == {"input": 200, "output": 20}
    assert "flagmw.agent.run.duration" in points
    assert "flagmw.agent.cost" in points


# -- create_agent middleware ------------------------------------------------------------


@tool
def search(q: str) -> str:
    """Search the knowledge base."""
    flagmw.record_violation("tone", "too curt")
    return "found"


def test_the_middleware_records_agent_turns(client: FlagClient, recorder: OutcomeRecorder) -> None:
    from langchain.agents import create_agent

    from flagmw.integrations.langchain import FlagmwMiddleware, OutcomeMiddleware
    from flagmw.testing.scripted import tool_call

    call = tool_call("search", {"q": "refund"})
    call.usage_metadata = {"input_tokens": 50, "output_tokens": 5, "total_tokens": 55}
    model = ScriptedChatModel(script=[call, _usage("done", 70, 7)], label="gpt-4o")
    mw = FlagmwMiddleware(client, name="support-agent", observers=[recorder])
    agent = create_agent(
        model,
        tools=[search],
        middleware=[mw, OutcomeMiddleware(recorder, mw)],
        checkpointer=InMemorySaver(),
    )
    cfg = {"configurable": {"thread_id": "t-a", "tenant_id": "acme"}}
    agent.invoke({"messages": [HumanMessage("refund?")]}, cfg)
    broken = create_agent(
        ScriptedChatModel(script=[RuntimeError("provider 500")], label="gpt-4o"),
        tools=[search],
        middleware=[mw, OutcomeMiddleware(recorder, mw)],
        checkpointer=InMemorySaver(),
    )
    with pytest.raises(RuntimeError, match="provider 500"):
        broken.invoke({"messages": [HumanMessage("x")]}, {"configurable": {"thread_id": "t-b"}})
    recorder.flush()
    ok, bad = recorder.store.outcomes()
    assert (ok["agent"], ok["outcome"], ok["tenant"]) == ("support-agent", "completed", "acme")
    assert ok["model_calls"] == 2
    assert (ok["input_tokens"], ok["output_tokens"]) == (120, 12)
    assert ok["cost"] == pytest.approx(0.12 * 0.0025 + 0.012 * 0.01)
    assert ok["violations"] == [{"kind": "tone", "detail": "too curt"}]
    assert (bad["outcome"], bad["model_errors"]) == ("failed", 1)


def test_a_wrapped_agent_is_recorded_once(client: FlagClient, recorder: OutcomeRecorder) -> None:
    from langchain.agents import create_agent

    from flagmw.integrations.langchain import FlagmwMiddleware, OutcomeMiddleware

    mw = FlagmwMiddleware(client, name="support-agent", observers=[recorder])
    agent = create_agent(
        ScriptedChatModel(script=[_usage("done", 1, 1)], label="gpt-4o"),
        tools=[search],
        middleware=[mw, OutcomeMiddleware(recorder, mw)],
        checkpointer=InMemorySaver(),
    )
    wrapped = flagmw.wrap(agent, client, observers=[recorder])
    wrapped.invoke({"messages": [HumanMessage("x")]}, {"configurable": {"thread_id": "t-w"}})
    recorder.flush()
    assert [o["outcome"] for o in recorder.store.outcomes()] == ["completed"]


def test_the_root_span_says_which_version_and_stage_served(client: FlagClient) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from flagmw.tracing import RunTracer

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    model = ScriptedChatModel(script=[_usage("a", 1, 1)], label="gpt-4o")
    graph = flagmw.wrap(
        _graph(model), client, context=_versioned, tracer=RunTracer(tracer_provider=provider)
    )
    graph.invoke({"log": []}, {"configurable": {"thread_id": "t-s"}})
    [span] = [s for s in exporter.get_finished_spans() if s.name.startswith("invoke_agent")]
    attrs = dict(span.attributes or {})
    assert attrs["flagmw.version"] == "support-agent@v1.3.3"
    assert (attrs["flagmw.rollout"], attrs["flagmw.stage"]) == ("support-agent-1.3.3", 25)
    assert attrs["flagmw.snapshot_rev"] == 1
    provider.shutdown()
