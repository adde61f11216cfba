"""Routed models: the route flag picks the model per call, the fallback ladder, hidden
tools per route, streaming, structured output, and the errors around them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest
from conftest import MakeClient, snapshot_part
from hypothesis import given
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from langgraph.errors import GraphInterrupt
from langgraph.graph import END, START, MessagesState, StateGraph
from pydantic import BaseModel

import flagmw
from flagmw import EvaluationContext, FlagClient, FlagRegistry, NoRunConfigError, ValidationError
from flagmw.langgraph.models import (
    RoutedChatModel,
    UnknownRouteError,
    filter_tools,
    routed_model,
    select_routes,
)
from flagmw.langgraph.run import RunState, use_run
from flagmw.langgraph.tools import gated
from flagmw.testing import ScriptedChatModel, pinned_config, tool_call

KEY = "tools.refund_api.enabled"


@tool
def search(query: str) -> str:
    """Search the knowledge base."""
    return f"found {query}"


@gated(KEY)
@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


class Recorder:
    """A RunObserver that keeps the events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def run_started(self, run: RunState) -> None: ...

    def activate(self, run: RunState) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def run_event(self, run: RunState, name: str, attributes: Any) -> None:
        self.events.append((name, dict(attributes)))

    def run_ended(self, run: RunState, outcome: Any, error: Any) -> None: ...


def _routes(big: Any = "big answer", small: Any = "small answer") -> dict[str, ScriptedChatModel]:
    return {
        "gpt-4o": ScriptedChatModel(script=[big], label="big"),
        "gpt-4o-mini": ScriptedChatModel(script=[small], label="small"),
    }


def _model(routes: dict[str, ScriptedChatModel], **kw: Any) -> RoutedChatModel:
    kw.setdefault("fallbacks", "model.fallbacks")
    return routed_model(routes, flag="model.primary", **kw)


def _graph(model: Any, client: FlagClient, recorder: Recorder | None = None) -> Any:
    bound = model.bind_tools([refund, search])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return flagmw.wrap(
        builder.compile(), client, tracer=False, observers=[recorder] if recorder else ()
    )


def _in_run(client: FlagClient, **ctx: Any) -> contextlib.AbstractContextManager[RunState]:
    return use_run(RunState(client=client, rc=client.resolve(EvaluationContext(**ctx)), name="t"))


# -- routing ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_flag_picks_the_route_per_tenant(mode: str, memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())  # acme: model.primary = gpt-4o-mini
    routes = _routes()
    rec = Recorder()
    graph = _graph(_model(routes), client, rec)
    answers = {}
    for tenant in ("acme", "globex"):
        inp = {"messages": [HumanMessage("hi")]}
        cfg = {"configurable": {"tenant_id": tenant}}
        out = graph.invoke(inp, cfg) if mode == "sync" else asyncio.run(graph.ainvoke(inp, cfg))
        answers[tenant] = out["messages"][-1]
    assert answers["acme"].content == "small answer"
    assert answers["acme"].response_metadata["flagmw_route"] == "gpt-4o-mini"
    assert answers["acme"].response_metadata["flagmw_fallback_used"] is False
    assert answers["globex"].content == "big answer"
    assert answers["globex"].response_metadata["flagmw_route"] == "gpt-4o"
    assert (routes["gpt-4o"].calls, routes["gpt-4o-mini"].calls) == (1, 1)
    routed = [a for n, a in rec.events if n == "model_route"]
    assert routed == [
        {"route": "gpt-4o-mini", "primary": "gpt-4o-mini", "fallback_used": False, "error": None},
        {"route": "gpt-4o", "primary": "gpt-4o", "fallback_used": False, "error": None},
    ]


def test_hidden_tools_are_not_bound_to_the_serving_route(memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())
    routes = _routes()
    graph = _graph(_model(routes), client)
    graph.invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"tenant_id": "globex"}})
    assert routes["gpt-4o"].seen_tools == [["refund", "search"]]
    client.kill(KEY, reason="CRM down", actor="oncall")
    graph.invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"tenant_id": "globex"}})
    assert routes["gpt-4o"].seen_tools[-1] == ["search"]
    # the only tool left is killed too: the route is called without tools at all
    only = _model(_routes()).bind_tools([refund])
    with _in_run(client):
        only.invoke("hi")
    assert only.bound.routes["gpt-4o"].seen_tools == [[]]  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_primary_failure_falls_back_down_the_ladder(mode: str, memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())  # model.fallbacks: [gpt-4o-mini]
    routes = _routes(big=RuntimeError("503 from provider"))
    rec = Recorder()
    graph = _graph(_model(routes), client, rec)
    inp = {"messages": [HumanMessage("hi")]}
    out = graph.invoke(inp) if mode == "sync" else asyncio.run(graph.ainvoke(inp))
    answer = out["messages"][-1]
    assert answer.content == "small answer"
    assert answer.response_metadata["flagmw_route"] == "gpt-4o-mini"
    assert answer.response_metadata["flagmw_fallback_used"] is True
    assert routes["gpt-4o-mini"].seen_tools == [["refund", "search"]]
    assert (
        "model_route",
        {
            "route": "gpt-4o-mini",
            "primary": "gpt-4o",
            "fallback_used": True,
            "error": "RuntimeError: 503 from provider",
        },
    ) in rec.events


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_when_every_route_fails_the_last_error_propagates(
    mode: str, memory_client: MakeClient
) -> None:
    client = memory_client(document=snapshot_part())
    routes = _routes(big=RuntimeError("big down"), small=TimeoutError("small down"))
    model = _model(routes)
    call = (
        (lambda: model.invoke("hi"))
        if mode == "sync"
        else (lambda: asyncio.run(model.ainvoke("hi")))
    )
    with _in_run(client), pytest.raises(TimeoutError, match="small down"):
        call()
    assert (routes["gpt-4o"].calls, routes["gpt-4o-mini"].calls) == (1, 1)


def test_interrupts_propagate_without_fallback(memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())
    routes = _routes(big=GraphInterrupt(()))
    with _in_run(client), pytest.raises(GraphInterrupt):
        _model(routes).invoke("hi")
    assert routes["gpt-4o-mini"].calls == 0


def test_literal_ladder_and_bad_ladder_entries(
    memory_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = memory_client(document=snapshot_part())
    routes = {
        "gpt-4o": ScriptedChatModel(script=[RuntimeError("down")], label="big"),
        "gpt-4o-mini": ScriptedChatModel(script=[RuntimeError("down too")], label="small"),
        "local": ScriptedChatModel(script=["local answer"], label="local"),
    }
    model = routed_model(routes, flag="model.primary", fallbacks=["gpt-4o-mini", "local"])
    with _in_run(client):
        assert model.invoke("hi").response_metadata["flagmw_route"] == "local"
    # a ladder flag naming a route the model does not have: skipped, logged
    doc = snapshot_part()
    doc["values"]["model.fallbacks"] = ["gpt-5", "local"]
    client.publish(doc, author="t", message="ladder with an unknown route")
    flagged = routed_model(routes, flag="model.primary", fallbacks="model.fallbacks")
    with _in_run(client), caplog.at_level(logging.ERROR, logger="flagmw"):
        assert flagged.invoke("hi").content == "local answer"
    assert any("'gpt-5'" in r.getMessage() for r in caplog.records)


@given(
    primary=st.sampled_from(["a", "b", "c"]),
    ladder=st.lists(st.sampled_from(["a", "b", "c", "x", 7]), max_size=8),
)
def test_select_routes_ladder_is_ordered_unique_known_and_excludes_the_primary(
    primary: str, ladder: list[Any]
) -> None:
    rc = pinned_config({"route": primary, "ladder": ladder})
    got_primary, got = select_routes(rc, ["a", "b", "c"], flag="route", fallbacks="ladder")
    assert got_primary == primary
    expected: list[str] = []
    for name in ladder:
        if name in ("a", "b", "c") and name != primary and name not in expected:
            expected.append(name)
    assert got == expected


def test_unknown_route_names_the_flag_and_the_routes() -> None:
    model = _model(_routes())
    rc = pinned_config({"model.primary": "gpt-5", "model.fallbacks": []})
    with use_run(RunState(client=None, rc=rc, name="t")), pytest.raises(UnknownRouteError) as info:
        model.invoke("hi")
    assert str(info.value).startswith(
        "flag model.primary names model route 'gpt-5', which this routed model does not have; "
        "known routes: 'gpt-4o', 'gpt-4o-mini'"
    )
    assert info.value.route == "gpt-5"


def test_outside_a_run_needs_a_default_route() -> None:
    with pytest.raises(NoRunConfigError, match="default_route"):
        _model(_routes()).invoke("hi")
    routes = _routes()
    answer = _model(routes, default_route="gpt-4o-mini").invoke("hi")
    assert answer.content == "small answer"
    assert answer.response_metadata["flagmw_route"] == "gpt-4o-mini"


def test_construction_errors(registry: FlagRegistry) -> None:
    with pytest.raises(ValueError, match="at least one route"):
        routed_model({}, flag="model.primary")
    with pytest.raises(ValueError, match="not a BaseChatModel"):
        routed_model({"x": object()}, flag="model.primary")  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="default_route='nope'"):
        routed_model(_routes(), flag="model.primary", default_route="nope")
    with pytest.raises(ValueError, match=r"\['gpt-5'\], which are not routes"):
        routed_model(_routes(), flag="model.primary", fallbacks=["gpt-5"])
    # checked against the registry: every enum choice must be a route
    routed_model(_routes(), flag="model.primary", fallbacks="model.fallbacks", registry=registry)
    with pytest.raises(ValidationError) as info:
        routed_model(
            {"gpt-4o": ScriptedChatModel(script=["x"])},
            flag="model.primary",
            fallbacks="loop.max_iterations",
            registry=registry,
        )
    text = str(info.value)
    assert "choices ['gpt-4o-mini'] of route flag model.primary are not routes" in text
    assert "fallback flag loop.max_iterations is a int flag" in text
    with pytest.raises(ValidationError, match=r"route flag model\.nope is not defined"):
        routed_model(_routes(), flag="model.nope", registry=registry)


# -- tool_choice ----------------------------------------------------------------------


def test_filter_tools_resets_a_tool_choice_forcing_a_hidden_tool() -> None:
    rc_off = pinned_config({KEY: False})
    rc_on = pinned_config({KEY: True})
    tools = [refund, search]
    for forced in (
        "refund",
        {"type": "function", "function": {"name": "refund"}},
        {"type": "tool", "name": "refund"},
    ):
        assert filter_tools(tools, forced, rc_off) == ([search], None)
        assert filter_tools(tools, forced, rc_on) == (tools, forced)
    assert filter_tools(tools, "search", rc_off) == ([search], "search")
    assert filter_tools(tools, "any", rc_off) == ([search], "any")
    assert filter_tools([refund], "any", rc_off) == ([], None)
    assert filter_tools([refund], "required", rc_off) == ([], None)
    assert filter_tools([refund], "auto", rc_off) == ([], "auto")


# -- streaming ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_tokens_stream_once_through_the_routed_model(mode: str, memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())
    routes = _routes(big=RuntimeError("503"), small="hello there friend")
    graph = _graph(_model(routes), client)
    inp = {"messages": [HumanMessage("hi")]}

    async def collect() -> list[Any]:
        return [c async for c, _ in graph.astream(inp, stream_mode="messages")]

    chunks = (
        [c for c, _ in graph.stream(inp, stream_mode="messages")]
        if mode == "sync"
        else asyncio.run(collect())
    )
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    texts = [c.content for c in chunks if c.content]
    assert texts == ["hello", " there", " friend"]  # each token once: the route's run is nostream
    assert chunks[0].response_metadata["flagmw_route"] == "gpt-4o-mini"
    assert chunks[0].response_metadata["flagmw_fallback_used"] is True
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.content == "hello there friend"


def test_direct_stream_with_tool_calls(memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())
    routes = _routes(big=tool_call("search", {"query": "refund policy"}, call_id="s1"))
    model = _model(routes).bind_tools([refund, search])
    with _in_run(client):
        chunks = list(model.stream("hi"))
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.tool_calls == [
        {"name": "search", "args": {"query": "refund policy"}, "id": "s1", "type": "tool_call"}
    ]
    assert merged.response_metadata["flagmw_route"] == "gpt-4o"


def test_a_route_that_cannot_stream_is_served_as_one_chunk(memory_client: MakeClient) -> None:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel

    client = memory_client(document=snapshot_part())
    whole = FakeMessagesListChatModel(
        responses=[
            AIMessage("", tool_calls=[{"name": "search", "args": {"query": "q"}, "id": "w"}])
        ]
    )
    model = routed_model({"gpt-4o": whole, "gpt-4o-mini": whole}, flag="model.primary")
    with _in_run(client):
        chunks = list(model.stream("hi"))
    assert len(chunks) >= 1
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.tool_calls[0]["name"] == "search"
    assert merged.tool_calls[0]["args"] == {"query": "q"}


# -- structured output and create_agent -------------------------------------------------


class Verdict(BaseModel):
    refundable: bool
    reason: str


def test_with_structured_output_goes_through_the_route(memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())
    routes = _routes(
        small=tool_call("Verdict", {"refundable": True, "reason": "within 30 days"}),
    )
    structured = _model(routes).with_structured_output(Verdict)
    with _in_run(client, tenant_id="acme"):
        verdict = structured.invoke("is order 17 refundable?")
    assert verdict == Verdict(refundable=True, reason="within 30 days")
    assert routes["gpt-4o-mini"].seen_tools == [["Verdict"]]
    assert routes["gpt-4o"].calls == 0


def test_routed_model_as_the_create_agent_model(memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())
    client.kill(KEY, reason="CRM down", actor="oncall")
    routes = _routes(
        big=RuntimeError("big down"),
        small=tool_call("search", {"query": "refunds"}),
    )
    routes["gpt-4o-mini"].script = [tool_call("search", {"query": "refunds"}), "Here you go."]
    rec = Recorder()
    agent = flagmw.wrap(
        create_agent(_model(routes), tools=[refund, search]),
        client,
        tracer=False,
        observers=[rec],
    )
    out = agent.invoke({"messages": [HumanMessage("how do refunds work?")]})
    assert out["messages"][-1].content == "Here you go."
    assert out["messages"][-1].response_metadata["flagmw_route"] == "gpt-4o-mini"
    assert routes["gpt-4o-mini"].seen_tools == [["search"], ["search"]]
    assert [a["route"] for n, a in rec.events if n == "model_route"] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
    ]
