"""Bug 3.1 in the trace: a wrapped agent called from a node or tool of another wrapped
agent gets its own root span, a child of the caller's span, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flagmw
from flagmw import FlagClient, MemoryStore
from flagmw.tracing import RunTracer


class Log(TypedDict, total=False):
    log: list[str]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_nested_agents_span_is_a_child_of_its_callers_span(mode: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        inner_registry = flagmw.FlagRegistry([flagmw.Flag("inner.level", "int", 1, owner="t")])
        inner_client = FlagClient(inner_registry, MemoryStore(), environment="test")
        inner_client.publish({"values": {"inner.level": 2}}, author="t", message="m")
        outer_registry = flagmw.FlagRegistry([flagmw.Flag("outer.level", "int", 1, owner="t")])
        outer_client = FlagClient(outer_registry, MemoryStore(), environment="test")
        outer_client.publish({"values": {"outer.level": 3}}, author="t", message="m")

        ib = StateGraph(Log)
        ib.add_node("work", lambda s: {"log": [f"inner={flagmw.current()['inner.level']}"]})
        ib.add_edge(START, "work")
        inner = flagmw.wrap(
            ib.compile(), inner_client, name="inner", tracer=RunTracer(tracer_provider=provider)
        )

        def call(state: Log) -> dict[str, Any]:
            return {"log": inner.invoke({"log": []})["log"]}

        async def acall(state: Log) -> dict[str, Any]:
            return {"log": (await inner.ainvoke({"log": []}))["log"]}

        ob = StateGraph(Log)
        ob.add_node("delegate", call if mode == "sync" else acall)
        ob.add_edge(START, "delegate")
        outer = flagmw.wrap(
            ob.compile(checkpointer=InMemorySaver()),
            outer_client,
            name="outer",
            tracer=RunTracer(tracer_provider=provider),
        )
        config = {"configurable": {"thread_id": f"t-{mode}"}}
        if mode == "sync":
            out = outer.invoke({"log": []}, config)
        else:
            out = asyncio.run(outer.ainvoke({"log": []}, config))
        assert out["log"] == ["inner=2"]

        spans = {s.name: s for s in exporter.get_finished_spans()}
        parent, child = spans["invoke_agent outer"], spans["invoke_agent inner"]
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
        assert child.context.trace_id == parent.context.trace_id
        # each span carries its own run's configuration
        assert (child.attributes or {})["flagmw.flag.inner.level.value"] == 2
        assert (parent.attributes or {})["flagmw.flag.outer.level.value"] == 3
    finally:
        provider.shutdown()
