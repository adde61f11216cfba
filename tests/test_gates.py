"""``flagmw.wrap(graph, client, gates={...})``: gating the tools of an agent you do not
own by name, at execution (issue 7, bug 3.8). The agents are real prebuilt agents
(``create_agent``, ``create_react_agent``) built before wrapping, with their tools
ungated."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import warnings
from collections.abc import Callable
from typing import Any, cast

import pytest
from conftest import MakeClient, snapshot_part
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import ToolNode

import flagmw
from flagmw import FlagClient
from flagmw.langgraph.gates import TOOLNODE_SETTINGS, gate_nodes
from flagmw.langgraph.run import RunState
from flagmw.langgraph.tools import Gate, gated
from flagmw.testing import ScriptedChatModel, tool_call

KEY = "tools.refund_api.enabled"


@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


@tool
def search(query: str) -> str:
    """Search the knowledge base."""
    return f"found {query}"


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def run_started(self, run: RunState) -> None: ...

    def activate(self, run: RunState) -> Any:
        return contextlib.nullcontext()

    def run_event(self, run: RunState, name: str, attributes: Any) -> None:
        self.events.append((name, dict(attributes)))

    def run_ended(self, run: RunState, outcome: Any, error: Any) -> None: ...


@pytest.fixture
def client(memory_client: MakeClient) -> FlagClient:
    return memory_client(document=snapshot_part())


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(
        script=[
            tool_call("refund", {"order_id": "o-7"}, call_id="r1"),
            tool_call("search", {"query": "policy"}, call_id="s1"),
            "done",
        ]
    )


def _prebuilt(kind: str, model: ScriptedChatModel, **kw: Any) -> Any:
    if kind == "create_agent":
        return create_agent(model, tools=[refund, search], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # create_react_agent is deprecated in favour of create_agent
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(model, tools=[refund, search], **kw)


def _tool_messages(out: dict[str, Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["create_agent", "create_react_agent"])
def test_a_prebuilt_agent_built_before_wrapping_is_gated_by_name(
    kind: str, mode: str, client: FlagClient
) -> None:
    ov = client.kill(KEY, reason="CRM down", actor="oncall", ttl="1h")
    agent = _prebuilt(kind, _model(), checkpointer=InMemorySaver())
    obs = Events()
    wrapped = flagmw.wrap(agent, client, tracer=False, observers=[obs], gates={"refund": KEY})
    cfg = {"configurable": {"thread_id": f"t-{kind}-{mode}"}}
    inp = {"messages": [HumanMessage("refund o-7")]}
    out = wrapped.invoke(inp, cfg) if mode == "sync" else asyncio.run(wrapped.ainvoke(inp, cfg))
    msgs = _tool_messages(out)
    assert msgs["r1"].status == "error"
    assert msgs["r1"].content == (
        f"Tool 'refund' is disabled by flag {KEY} (kill {ov.id}: CRM down). "
        "Do not retry it; tell the user it is unavailable."
    )
    assert msgs["s1"].status == "success"
    assert msgs["s1"].content == "found policy"
    assert out["messages"][-1].content == "done"
    assert obs.events == [
        (
            "tool_refused",
            {"tool": "refund", "key": KEY, "reason": "CRM down", "override_id": ov.id},
        )
    ]
    # the unwrapped agent is untouched: the same call runs there
    bare = _prebuilt(kind, _model())
    assert _tool_messages(bare.invoke(inp))["r1"].content == "refunded o-7"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_tools_of_an_agent_added_as_a_subgraph_node_are_gated_by_name(
    mode: str, client: FlagClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A template agent used as a node of the graph that is wrapped: its ToolNode is
    two levels down (parent → agent subgraph → tools) and is gated all the same."""
    from langgraph.graph import START, MessagesState, StateGraph

    ov = client.kill(KEY, reason="CRM down", actor="oncall", ttl="1h")
    outer = StateGraph(MessagesState)
    outer.add_node("support", create_agent(_model(), tools=[refund, search]))
    outer.add_edge(START, "support")
    parent = outer.compile(checkpointer=InMemorySaver())
    tool_node = parent.nodes["support"].bound.nodes["tools"].bound
    with caplog.at_level(logging.WARNING, logger="flagmw"):
        wrapped = flagmw.wrap(parent, client, tracer=False, gates={"refund": KEY})
    assert not [r for r in caplog.records if "no ToolNode" in r.getMessage()]
    cfg = {"configurable": {"thread_id": f"t-sub-{mode}"}}
    inp = {"messages": [HumanMessage("refund o-7")]}
    out = wrapped.invoke(inp, cfg) if mode == "sync" else asyncio.run(wrapped.ainvoke(inp, cfg))
    msgs = _tool_messages(out)
    assert msgs["r1"].status == "error"
    assert f"kill {ov.id}" in str(msgs["r1"].content)
    assert msgs["s1"].content == "found policy"
    # the parent's own subgraph and ToolNode are untouched (the wrapped copy has its own)
    assert parent.nodes["support"].bound.nodes["tools"].bound is tool_node
    assert wrapped.nodes["support"].bound.nodes["tools"].bound is not tool_node


def test_without_gates_the_late_gated_copy_changes_nothing_and_is_warned_about(
    client: FlagClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The bug: gated() after the agent was built returns a copy the agent never runs."""
    client.kill(KEY, reason="CRM down", actor="oncall", ttl="1h")
    agent = create_agent(_model(), tools=[refund, search])
    gated(KEY)(refund)  # too late: the agent holds the ungated tool
    with caplog.at_level(logging.WARNING, logger="flagmw"):
        wrapped = flagmw.wrap(agent, client, tracer=False)
    warned = [r.getMessage() for r in caplog.records if "never seen in a run" in r.getMessage()]
    assert len(warned) == 1
    assert "'refund'" in warned[0]
    assert f"gates={{'refund': '{KEY}'}}" in warned[0]
    out = wrapped.invoke({"messages": [HumanMessage("refund o-7")]})
    assert _tool_messages(out)["r1"].content == "refunded o-7"  # ran: hence the warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flagmw"):
        flagmw.wrap(agent, client, tracer=False, gates={"refund": KEY})
    assert not [r for r in caplog.records if "never seen in a run" in r.getMessage()]


def test_a_name_no_tool_node_has_is_warned_about(
    client: FlagClient, caplog: pytest.LogCaptureFixture
) -> None:
    agent = create_agent(_model(), tools=[refund, search])
    with caplog.at_level(logging.WARNING, logger="flagmw"):
        flagmw.wrap(agent, client, tracer=False, gates={"refnud": KEY})
    assert any("'refnud'" in r.getMessage() for r in caplog.records)


def test_a_hot_kill_mid_run_reaches_the_next_call_of_the_named_tool(client: FlagClient) -> None:
    ids: list[str] = []

    @tool
    def escalate(ticket: str) -> str:
        """Escalate to a human."""
        ids.append(client.kill(KEY, reason="CRM down", actor="oncall").id)
        return "escalated"

    model = ScriptedChatModel(
        script=[
            tool_call("refund", {"order_id": "o-1"}, call_id="early"),
            tool_call("escalate", {"ticket": "T-1"}),
            tool_call("refund", {"order_id": "o-2"}, call_id="late"),
            "done",
        ]
    )
    agent = create_agent(model, tools=[refund, escalate])
    wrapped = flagmw.wrap(agent, client, tracer=False, gates={"refund": Gate(KEY)})
    msgs = _tool_messages(wrapped.invoke({"messages": [HumanMessage("refund")]}))
    assert msgs["early"].content == "refunded o-1"
    assert msgs["late"].status == "error"
    assert ids[0] in msgs["late"].content


class SeesEveryCall(AgentMiddleware):
    """A create_agent middleware with wrap_tool_call: it must still see refused calls."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def wrap_tool_call(self, request: Any, handler: Callable[..., Any]) -> Any:
        self.seen.append(request.tool_call["name"])
        return handler(request)

    async def awrap_tool_call(self, request: Any, handler: Callable[..., Any]) -> Any:
        self.seen.append(request.tool_call["name"])
        return await handler(request)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_gate_is_the_innermost_interceptor(mode: str, client: FlagClient) -> None:
    client.kill(KEY, reason="CRM down", actor="oncall", ttl="1h")
    mw = SeesEveryCall()
    agent = create_agent(_model(), tools=[refund, search], middleware=[mw])
    wrapped = flagmw.wrap(agent, client, tracer=False, gates={"refund": KEY})
    inp = {"messages": [HumanMessage("refund o-7")]}
    out = wrapped.invoke(inp) if mode == "sync" else asyncio.run(wrapped.ainvoke(inp))
    assert mw.seen == ["refund", "search"]
    assert _tool_messages(out)["r1"].status == "error"


def test_the_tool_node_settings_are_kept(client: FlagClient) -> None:
    def handler(e: ValueError) -> str:
        return f"handled: {e}"

    node = ToolNode([refund, search], name="my_tools", tags=["t"], handle_tool_errors=handler)
    from langgraph.graph import END, START, MessagesState, StateGraph

    builder = StateGraph(MessagesState)
    builder.add_node("my_tools", node)
    builder.add_edge(START, "my_tools")
    builder.add_edge("my_tools", END)
    graph = builder.compile()
    nodes = gate_nodes(graph.nodes, {"refund": KEY}, client, graph_name="g")
    gated_node = nodes["my_tools"].bound
    assert isinstance(gated_node, ToolNode)
    assert gated_node is not node
    assert graph.nodes["my_tools"].bound is node  # the original graph is not changed
    assert gated_node.name == "my_tools"
    assert gated_node.tags == ["t"]
    assert gated_node.tools_by_name == node.tools_by_name
    for attr in ("_handle_tool_errors", "_messages_key"):
        assert getattr(gated_node, attr) == getattr(node, attr)
    assert nodes["__start__"] is graph.nodes["__start__"]


def test_bad_gates_are_rejected(client: FlagClient) -> None:
    agent = create_agent(_model(), tools=[refund])
    with pytest.raises(TypeError, match="'refund'"):
        flagmw.wrap(agent, client, gates={"refund": 3})  # type: ignore[dict-item]


def test_toolnode_internals_the_gates_rely_on_are_still_there() -> None:
    """Fails loudly when an upgrade of langgraph-prebuilt moves the ToolNode settings
    that gates.py reads (then update gates.py and SUPPORTED_PREBUILT)."""
    params = inspect.signature(ToolNode.__init__).parameters
    for name in ("handle_tool_errors", "messages_key", "wrap_tool_call", "awrap_tool_call"):
        assert name in params

    def w(request: Any, execute: Any) -> Any:
        return execute(request)

    async def aw(request: Any, execute: Any) -> Any:
        return await execute(request)

    node = ToolNode(
        [refund], handle_tool_errors=False, messages_key="m", wrap_tool_call=w, awrap_tool_call=aw
    )
    values = {a: getattr(node, a) for a in TOOLNODE_SETTINGS}
    assert values == {
        "_handle_tool_errors": False,
        "_messages_key": "m",
        "_wrap_tool_call": w,
        "_awrap_tool_call": aw,
    }


# files of the tools / models / middleware piece: public LangChain / LangGraph seams only
SEAM_FILES = [
    "flagmw/langgraph/tools.py",
    "flagmw/langgraph/tool_gate.py",
    "flagmw/langgraph/gates.py",
    "flagmw/langgraph/models.py",
    "flagmw/langgraph/routes.py",
    "integrations/langchain.py",
    "integrations/_agent_pin.py",
    "integrations/_agent_routing.py",
]


@pytest.mark.parametrize("rel", SEAM_FILES)
def test_no_private_langchain_or_langgraph_imports(rel: str) -> None:
    import ast
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / rel
    if not path.exists():
        pytest.skip(f"{rel} does not exist")
    bad: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            top = node.module.split(".")[0]
            if top not in ("langchain", "langchain_core", "langgraph"):
                continue
            parts = node.module.split(".")
            names = [a.name for a in node.names]
            bad += [f"{node.module}.{n}" for n in names if n.startswith("_")]
            bad += [node.module] if any(p.startswith("_") for p in parts) else []
    assert bad == []


def test_the_middleware_warns_when_an_agent_runs_the_ungated_twin(
    client: FlagClient, caplog: pytest.LogCaptureFixture
) -> None:
    from flagmw.integrations.langchain import FlagmwMiddleware

    @tool
    def lookup(order_id: str) -> str:
        """Look an order up."""
        return f"order {order_id}"

    model = ScriptedChatModel(script=[tool_call("lookup", {"order_id": "o"}), "done"])
    agent = create_agent(model, tools=[lookup], middleware=[FlagmwMiddleware(client)])
    gated(KEY)(lookup)  # too late
    with caplog.at_level(logging.WARNING, logger="flagmw"):
        agent.invoke({"messages": [HumanMessage("look o up")]})
    warned = [r.getMessage() for r in caplog.records if "never seen in a run" in r.getMessage()]
    assert len(warned) == 1
    assert "'lookup'" in warned[0]


_NAMES = ["a_tool", "b_tool", "c_tool", "d_tool"]


def _named_tool(name: str) -> Any:
    def run(x: str = "") -> str:
        return f"{name} ran"

    return tool(name, description=f"The {name}.")(run)


@settings(max_examples=40, deadline=None)
@given(
    values=st.fixed_dictionaries({k: st.booleans() for k in ("a.on", "b.on", "c.on")}),
    gates=st.dictionaries(st.sampled_from(_NAMES), st.sampled_from(["a.on", "b.on", "c.on"])),
    called=st.lists(st.sampled_from(_NAMES), min_size=1, max_size=4),
)
def test_a_name_gated_tool_node_refuses_exactly_the_disabled_named_tools(
    values: dict[str, bool], gates: dict[str, str], called: list[str]
) -> None:
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, MessagesState, StateGraph

    from flagmw.langgraph.run import use_run
    from flagmw.testing import pinned_config

    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode([_named_tool(n) for n in _NAMES]))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    graph = builder.compile()
    nodes = gate_nodes(graph.nodes, gates, cast(Any, None), graph_name="g")
    gated_graph = graph.copy(update={"nodes": nodes})
    calls = [
        {"name": n, "args": {}, "id": f"c{i}", "type": "tool_call"} for i, n in enumerate(called)
    ]
    run = RunState(client=None, rc=pinned_config(values), name="g")
    with use_run(run):
        out = gated_graph.invoke({"messages": [AIMessage("", tool_calls=calls)]})
    statuses = [m.status for m in out["messages"][1:]]
    assert statuses == [
        "error" if n in gates and not values[gates[n]] else "success" for n in called
    ]
    assert [e["tool"] for n, e in run.events if n == "tool_refused"] == [
        n for n in called if n in gates and not values[gates[n]]
    ]


def test_a_middleware_gate_that_fails_to_evaluate_refuses_and_never_crashes(
    client: FlagClient, caplog: pytest.LogCaptureFixture
) -> None:
    from langgraph.prebuilt.tool_node import ToolCallRequest

    from flagmw.integrations.langchain import FlagmwMiddleware
    from flagmw.langgraph.run import use_run

    mw = FlagmwMiddleware(client, tool_gates={"search": KEY})
    broken = RunState(client=client, rc=client.resolve(), name="t")
    broken.rc = cast(Any, object())  # evaluating the gate raises
    call = {"name": "search", "args": {"query": "q"}, "id": "s1", "type": "tool_call"}
    request = ToolCallRequest(tool_call=call, tool=search, state={}, runtime=None)
    ran: list[str] = []
    with caplog.at_level(logging.ERROR, logger="flagmw"), use_run(broken):
        out = mw.wrap_tool_call(
            request, lambda r: ran.append("ran") or ToolMessage("x", tool_call_id="s1")
        )
    assert ran == []
    assert isinstance(out, ToolMessage)
    assert out.status == "error"
    assert "could not be evaluated" in out.content
