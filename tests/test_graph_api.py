"""flagmw.wrap keeps the compiled graph's API: every stream mode yields what the bare
graph yields, ``with_config`` / ``batch`` / ``get_state`` / ``update_state`` /
``astream_events`` work, and it works on ``create_agent`` graphs, on prebuilt
``ToolNode`` graphs and with subgraphs; ``flagmw.current()`` works in nodes, tools
(ToolNode's executor threads), model calls and middleware, sync and async."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from graph_workers.support import LogState, linear_graph, make_registry, publish
from langchain.agents import create_agent
from langchain.agents.middleware import before_model
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph, add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, interrupt
from pydantic import BaseModel

import flagmw
from flagmw import FlagClient, MemoryStore, RunConfig
from flagmw.langgraph.drain import RunDrained
from flagmw.langgraph.keys import PIN_KEY, PIN_NAMESPACE, REF_KEY
from flagmw.langgraph.pin import decode_pin
from flagmw.langgraph.run import RUN_KEY, current_run
from flagmw.testing import ScriptedChatModel, pinned, tool_call


@pytest.fixture
def client() -> Iterator[FlagClient]:
    c = FlagClient(make_registry(), MemoryStore(), environment="test")
    publish(c, 1)
    yield c
    c.close()


def cfg(**configurable: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}", **configurable}}


# -- every stream mode yields what the bare graph yields -------------------------------


class ChatState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    notes: Annotated[list[str], lambda a, b: a + b]


def chat_graph(saver: Any) -> Any:
    """model (a chat model: "messages" chunks) → writer ("custom" chunks) → child
    subgraph (namespaced chunks with subgraphs=True)."""
    model = ScriptedChatModel(script=["hello from the pinned model"], label="m")

    def call_model(state: ChatState) -> dict[str, Any]:
        reply = model.invoke(state["messages"])
        return {"messages": [reply], "notes": [f"model={flagmw.current()['model.primary']}"]}

    def writer(state: ChatState) -> dict[str, Any]:
        get_stream_writer()({"rev": flagmw.current().snapshot_rev})
        return {"notes": ["written"]}

    child = StateGraph(ChatState)
    child.add_node("inner", lambda s: {"notes": [f"inner v{flagmw.current()['prompt.version']}"]})
    child.add_edge(START, "inner")

    builder = StateGraph(ChatState)
    builder.add_node("model", call_model)
    builder.add_node("writer", writer)
    builder.add_node("child", child.compile())
    builder.add_edge(START, "model")
    builder.add_edge("model", "writer")
    builder.add_edge("writer", "child")
    builder.add_edge("child", END)
    return builder.compile(checkpointer=saver)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?")


def normalise(x: Any) -> Any:
    """Chunks with run-specific ids and times blanked out. ``flagmw.*`` metadata keys
    are the wrapper's intended addition (``config["metadata"]`` carries the rev and hash
    to tracers; "messages" and "debug" chunks show run metadata) and are set aside here
    — a "debug" task's ``metadata`` entry exists only when the run has metadata; they
    are asserted in test_messages_metadata_carries_the_rev_for_tracers."""
    if isinstance(x, BaseModel):
        return (type(x).__name__, normalise(x.model_dump()))
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (type(x).__name__, normalise(dataclasses.asdict(x)))
    if isinstance(x, tuple) and hasattr(x, "_asdict"):
        return (type(x).__name__, normalise(x._asdict()))
    if isinstance(x, dict):
        return {
            normalise(k): normalise(v)
            for k, v in x.items()
            if not str(k).startswith("flagmw.") and not (k == "metadata" and _only_flagmw(v))
        }
    if isinstance(x, list | tuple):
        return (type(x).__name__, [normalise(v) for v in x])
    if isinstance(x, str):
        return _UUID.sub("<id>", _TS.sub("<ts>", x))
    return x


def _only_flagmw(v: Any) -> bool:
    return isinstance(v, dict) and bool(v) and all(str(k).startswith("flagmw.") for k in v)


MODES: list[Any] = [
    "values",
    "updates",
    "messages",
    "custom",
    "debug",
    "checkpoints",
    "tasks",
    ["values", "updates", "messages", "custom", "debug", "checkpoints", "tasks"],
]


def run_both(client: FlagClient, **kwargs: Any) -> tuple[list[Any], list[Any]]:
    config = {"configurable": {"thread_id": "same", "tenant_id": "acme"}}
    bare_chunks = []
    rc = client.resolve(flagmw.EvaluationContext(tenant_id="acme", route="LangGraph"))
    with pinned(rc):
        for chunk in chat_graph(InMemorySaver()).stream(
            {"messages": [HumanMessage("hi")]}, config, **kwargs
        ):
            bare_chunks.append(chunk)
    graph = flagmw.wrap(chat_graph(InMemorySaver()), client, tracer=False)
    wrapped_chunks = list(graph.stream({"messages": [HumanMessage("hi")]}, config, **kwargs))
    return bare_chunks, wrapped_chunks


@pytest.mark.parametrize("subgraphs", [False, True])
@pytest.mark.parametrize("mode", MODES, ids=lambda m: m if isinstance(m, str) else "all")
def test_every_stream_mode_yields_the_bare_graphs_chunks(
    client: FlagClient, mode: Any, subgraphs: bool
) -> None:
    bare, wrapped = run_both(client, stream_mode=mode, subgraphs=subgraphs)
    assert len(wrapped) == len(bare) > 0
    assert [normalise(c) for c in wrapped] == [normalise(c) for c in bare]
    assert RUN_KEY not in repr(wrapped)  # the RunState never leaks into chunks


def test_stream_v2_format_is_kept(client: FlagClient) -> None:
    bare, wrapped = run_both(client, stream_mode=["checkpoints", "updates"], version="v2")
    assert [normalise(c) for c in wrapped] == [normalise(c) for c in bare]
    assert RUN_KEY not in repr(wrapped)


def test_messages_metadata_carries_the_rev_for_tracers(client: FlagClient) -> None:
    graph = flagmw.wrap(chat_graph(InMemorySaver()), client, tracer=False)
    chunks = list(graph.stream({"messages": [HumanMessage("hi")]}, cfg(), stream_mode="messages"))
    _, metadata = chunks[0]
    assert metadata["flagmw.snapshot_rev"] == 1
    assert metadata["flagmw.config_hash"].startswith("sha256:")


async def test_async_stream_modes_and_events(client: FlagClient) -> None:
    config = {"configurable": {"thread_id": "same", "tenant_id": "acme"}}
    rc = client.resolve(flagmw.EvaluationContext(tenant_id="acme", route="LangGraph"))
    mode = ["updates", "messages", "custom", "checkpoints"]
    with pinned(rc):
        bare = [
            c
            async for c in chat_graph(InMemorySaver()).astream(
                {"messages": [HumanMessage("hi")]}, config, stream_mode=mode, subgraphs=True
            )
        ]
    graph = flagmw.wrap(chat_graph(InMemorySaver()), client, tracer=False)
    wrapped = [
        c
        async for c in graph.astream(
            {"messages": [HumanMessage("hi")]}, config, stream_mode=mode, subgraphs=True
        )
    ]
    assert [normalise(c) for c in wrapped] == [normalise(c) for c in bare]

    events = [
        e
        async for e in graph.astream_events({"messages": [HumanMessage("hi")]}, cfg(), version="v2")
    ]
    root = events[0]
    assert root["event"] == "on_chain_start"
    assert root["metadata"]["flagmw.snapshot_rev"] == 1
    streamed = [e for e in events if e["event"] == "on_custom_event" or e["event"].endswith("_end")]
    assert streamed


# -- the rest of the API ----------------------------------------------------------------


def test_with_config_keeps_flagmw(client: FlagClient) -> None:
    graph = flagmw.wrap(linear_graph(("a", "b"), checkpointer=InMemorySaver()), client,
                        tracer=False)  # fmt: skip
    acme = graph.with_config(configurable={"tenant_id": "acme"}, recursion_limit=50)
    assert type(acme) is type(graph)
    assert acme.checkpointer is graph.checkpointer
    out = acme.invoke({"log": []}, cfg())
    assert [e["hot"]["loop.max_iterations"] for e in out["log"]] == [5, 5]  # acme's overlay
    assert type(graph.copy()) is type(graph)


def test_get_state_and_update_state(client: FlagClient) -> None:
    graph = flagmw.wrap(
        linear_graph(("a", "b", "c"), {"b": lambda n, s: {"answer": interrupt("?")}},
                     checkpointer=InMemorySaver()),
        client, tracer=False,
    )  # fmt: skip
    config = cfg()
    graph.invoke({"log": []}, config)
    state = graph.get_state(config)
    assert state.next == ("b",)
    assert state.interrupts
    assert PIN_KEY not in state.metadata  # the latest checkpoint is not the pinned one
    publish(client, 2)
    graph.update_state(config, {"log": [{"node": "human", "note": "edited"}]})
    out = graph.invoke(Command(resume="ok"), config)
    assert [e["node"] for e in out["log"]] == ["a", "human", "b", "c"]
    assert {e["rev"] for e in out["log"] if "rev" in e} == {1}
    history = list(graph.get_state_history(config))
    assert not any(PIN_KEY in h.metadata for h in history)  # in the flagmw.pin namespace
    # every root checkpoint names the pin, the one update_state wrote included
    assert len({h.metadata[REF_KEY] for h in history}) == 1


def test_batch_pins_each_run(client: FlagClient) -> None:
    graph = flagmw.wrap(linear_graph(("a", "b"), checkpointer=InMemorySaver()), client,
                        tracer=False)  # fmt: skip
    configs = [cfg(tenant_id=t) for t in ("acme", "globex", "acme")]
    outs = graph.batch([{"log": []}] * 3, configs)
    assert [o["log"][0]["hot"]["loop.max_iterations"] for o in outs] == [5, 8, 5]
    runs = {o["log"][0]["hash"] for o in outs}
    assert len(runs) == 2
    for config in configs:
        assert graph.get_pinned_config(config) is not None


async def test_abatch_and_ainvoke_current_in_async_nodes(client: FlagClient) -> None:
    async def node(state: LogState) -> dict[str, Any]:
        rc = flagmw.current()
        return {"log": [{"rev": rc.snapshot_rev, "version": rc["prompt.version"]}]}

    builder = StateGraph(LogState)
    builder.add_node("n", node)
    builder.add_edge(START, "n")
    graph = flagmw.wrap(builder.compile(checkpointer=InMemorySaver()), client, tracer=False)
    outs = await graph.abatch([{"log": []}] * 3, [cfg() for _ in range(3)])
    assert [o["log"] for o in outs] == [[{"rev": 1, "version": 1}]] * 3


# -- subgraphs --------------------------------------------------------------------------


def parent_with_child(child: Any, saver: Any, how: str = "node") -> Any:
    """p1 → child → p2; the child is a node itself ("node": its output log repeats the
    parent's entries, as any subgraph sharing a reducer key) or invoked inside a node
    ("call")."""
    builder = StateGraph(LogState)
    builder.add_node("p1", lambda s: {"log": [{"node": "p1", "run": id(current_run())}]})
    if how == "node":
        builder.add_node("child", child)
    else:
        builder.add_node("child", lambda s: {"log": child.invoke({"log": []})["log"]})
    builder.add_node("p2", lambda s: {"log": [{"node": "p2", "run": id(current_run())}]})
    builder.add_edge(START, "p1")
    builder.add_edge("p1", "child")
    builder.add_edge("child", "p2")
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize("how", ["node", "call"])
def test_a_wrapped_graph_nested_in_a_wrapped_parent_gets_its_own_run(
    client: FlagClient, how: str
) -> None:
    """Bug 3.1: a wrapped graph run as a node of (or called inside a node of) another
    wrapped graph ran under the parent's run: its own client was ignored. Now it has
    its own run (its own client's values), nested in the parent's (``run.parent``), and
    the parent's nodes after it see the parent's run again."""
    other = FlagClient(make_registry(), MemoryStore(), environment="test")
    publish(other, 7)
    runs: dict[str, Any] = {}

    def seen(name: str, obs: dict[str, Any]) -> None:
        runs[name] = current_run()

    child = flagmw.wrap(linear_graph(("c1", "c2"), {"c1": seen, "c2": seen}), other, tracer=False)
    saver = InMemorySaver()
    graph = flagmw.wrap(parent_with_child(child, saver, how), client, tracer=False)
    config = cfg()
    out = graph.invoke({"log": []}, config)
    nodes = [e["node"] for e in out["log"]]
    assert nodes == (["p1", "p1", "c1", "c2", "p2"] if how == "node" else ["p1", "c1", "c2", "p2"])
    by = {e["node"]: e for e in out["log"]}
    assert by["c1"]["pinned"]["prompt.version"] == by["c2"]["pinned"]["prompt.version"] == 7
    assert by["p1"]["run"] == by["p2"]["run"]  # the parent's run again after the child
    child_run = runs["c1"]
    assert runs["c2"] is child_run
    assert child_run.client is other
    assert id(child_run) != by["p1"]["run"]
    assert child_run.parent is not None
    assert id(child_run.parent) == by["p1"]["run"]
    assert child_run.parent.client is client
    # each run pinned once, in the thread's pin namespace; the nested run's own
    # checkpoints (in its task's namespace) name its pin, the parent's root ones its
    every = list(saver.list(None))
    pins = {t.config["configurable"]["checkpoint_id"]: t for t in every if PIN_KEY in t.metadata}
    assert len(pins) == 2, [t.metadata for t in every]
    assert {t.config["configurable"]["checkpoint_ns"] for t in pins.values()} == {PIN_NAMESPACE}
    refs: dict[str, set[str]] = {}
    for t in every:
        if REF_KEY in t.metadata:
            ns = t.config["configurable"]["checkpoint_ns"]
            refs.setdefault(ns, set()).add(t.metadata[REF_KEY].split(" ")[0])
    assert "" in refs, refs
    assert len(refs) == 2, refs
    (child_ns,) = set(refs) - {""}
    assert child_ns.startswith("child:")
    assert refs[""] | refs[child_ns] == set(pins)
    assert not refs[""] & refs[child_ns]
    child_pin = decode_pin(pins[next(iter(refs[child_ns]))].metadata[PIN_KEY])
    assert child_pin.config_hash == child_run.pinned.config_hash
    assert child_pin["prompt.version"] == 7
    assert child_run.pin_source == "resolved"


def test_a_nested_wrapped_agent_reads_flags_of_its_own_registry(client: FlagClient) -> None:
    """Bug 3.1: flags only the nested agent's registry defines raised UnknownFlagError
    (the parent's RunConfig was current); sync and async, and current() is the
    parent's again after the child returns."""
    registry = flagmw.FlagRegistry([flagmw.Flag("child.only", "int", 41, owner="t")])
    other = FlagClient(registry, MemoryStore(), environment="test")
    other.publish({"values": {"child.only": 42}}, author="t", message="m")

    def child_node(state: LogState) -> dict[str, Any]:
        return {"log": [{"node": "c", "only": flagmw.current()["child.only"]}]}

    cb = StateGraph(LogState)
    cb.add_node("c", child_node)
    cb.add_edge(START, "c")
    child = flagmw.wrap(cb.compile(), other, tracer=False)

    def call(state: LogState) -> dict[str, Any]:
        before = flagmw.current()
        log = child.invoke({"log": []})["log"]
        assert flagmw.current() is before
        return {"log": [*log, {"node": "p", "rev": flagmw.current().snapshot_rev}]}

    async def acall(state: LogState) -> dict[str, Any]:
        before = flagmw.current()
        log = (await child.ainvoke({"log": []}))["log"]
        assert flagmw.current() is before
        return {"log": [*log, {"node": "p", "rev": flagmw.current().snapshot_rev}]}

    for node in (call, acall):
        pb = StateGraph(LogState)
        pb.add_node("p", node)
        pb.add_edge(START, "p")
        parent = flagmw.wrap(pb.compile(checkpointer=InMemorySaver()), client, tracer=False)
        if node is call:
            out = parent.invoke({"log": []}, cfg())
        else:
            out = asyncio.run(parent.ainvoke({"log": []}, cfg()))
        assert out["log"] == [{"node": "c", "only": 42}, {"node": "p", "rev": 1}]
    assert flagmw.current(optional=True) is None


def test_the_run_is_current_only_inside_its_own_stream(client: FlagClient) -> None:
    """``invoke`` / ``ainvoke`` keep the run current for the whole stream they read
    (LangGraph's invoke consumes it; no caller code runs between chunks); a stream read
    by other code — here a node of a run of the same wrapped graph, on another thread —
    sets it around each chunk only, so between chunks the reader's run is current. And
    after any of them, nothing is left current."""
    seen: list[tuple[str, Any]] = []

    def node(state: LogState) -> dict[str, Any]:
        outer = flagmw.current()
        if not state["log"]:  # the outer run: read an inner run of the same graph
            for _ in graph.stream({"log": [{"node": "inner"}]}, cfg()):
                seen.append(("between chunks", flagmw.current() is outer))
        return {"log": [{"node": "n", "run": id(outer)}]}

    builder = StateGraph(LogState)
    builder.add_node("n", node)
    builder.add_edge(START, "n")
    graph = flagmw.wrap(builder.compile(checkpointer=InMemorySaver()), client, tracer=False)

    out = graph.invoke({"log": []}, cfg())
    assert seen
    assert all(same for _, same in seen)
    assert out["log"][-1]["node"] == "n"
    assert flagmw.current(optional=True) is None
    for chunk in graph.stream({"log": [{"node": "x"}]}, cfg()):
        assert flagmw.current(optional=True) is None, chunk
    assert asyncio.run(graph.ainvoke({"log": [{"node": "x"}]}, cfg()))["log"][-1]["node"] == "n"
    assert flagmw.current(optional=True) is None

    async def read() -> None:
        async for chunk in graph.astream({"log": [{"node": "x"}]}, cfg()):
            assert flagmw.current(optional=True) is None, chunk

    asyncio.run(read())
    client.kill("agent.enabled", reason="test", actor="t", ttl="1h")
    with pytest.raises(RunDrained):  # a run that fails leaves nothing current either
        graph.invoke({"log": [{"node": "x"}]}, cfg())
    assert flagmw.current(optional=True) is None


def test_a_kill_reaches_a_run_inside_a_subgraph_and_it_resumes(client: FlagClient) -> None:
    made: dict[str, Any] = {}

    def kill(name: str, seen: dict[str, Any]) -> None:
        made["ov"] = client.kill("agent.enabled", reason="outage", actor="oncall", ttl="1h")

    child = linear_graph(("c1", "c2", "c3"), {"c1": kill})
    saver = InMemorySaver()
    graph = flagmw.wrap(parent_with_child(child, saver), client, tracer=False)
    config = cfg()
    with pytest.raises(RunDrained) as err:
        graph.invoke({"log": []}, config)
    assert err.value.override_id == made["ov"].id
    assert graph.get_state(config).next == ("child",)
    client.unkill(made["ov"].id, actor="oncall", reason="fixed")
    out = graph.invoke(None, config)
    nodes = [e["node"] for e in out["log"]]
    assert nodes[0] == "p1"
    assert nodes[-3:] == ["c2", "c3", "p2"]
    assert {e["rev"] for e in out["log"] if "rev" in e} == {1}


def test_a_wrapped_subgraph_of_an_unwrapped_parent_resolves_its_own(client: FlagClient) -> None:
    child = flagmw.wrap(linear_graph(("c1",)), client, tracer=False)
    builder = StateGraph(LogState)
    builder.add_node("child", child)
    builder.add_edge(START, "child")
    out = builder.compile(checkpointer=InMemorySaver()).invoke({"log": []}, cfg())
    assert out["log"][0]["rev"] == 1
    assert flagmw.current(optional=True) is None


# -- create_agent, ToolNode: current() in tools, model calls and middleware ------------


def seen_by(where: list[tuple[str, int | None, str]], label: str) -> None:
    rc: RunConfig = flagmw.current()
    where.append((label, rc.snapshot_rev, threading.current_thread().name))


def refund_tool(where: list[tuple[str, int | None, str]], use_async: bool = False) -> Any:
    if use_async:

        @tool
        async def refund(order_id: str) -> str:
            """Refund an order."""
            await asyncio.sleep(0)
            seen_by(where, "tool")
            return f"refunded {order_id} with prompt v{flagmw.current()['prompt.version']}"

        return refund

    @tool
    def refund(order_id: str) -> str:
        """Refund an order."""
        seen_by(where, "tool")
        return f"refunded {order_id} with prompt v{flagmw.current()['prompt.version']}"

    return refund


@pytest.mark.parametrize("use_async", [False, True])
async def test_create_agent_graph(client: FlagClient, use_async: bool) -> None:
    where: list[tuple[str, int | None, str]] = []

    def policy(messages: Any, tools: list[str]) -> Any:
        seen_by(where, "model")
        if isinstance(messages[-1], ToolMessage):
            return f"done: {messages[-1].content}"
        return tool_call("refund", {"order_id": "o-1"})

    @before_model
    def check(state: Any, runtime: Any) -> None:
        seen_by(where, "middleware")

    agent = create_agent(
        ScriptedChatModel(script=policy),
        tools=[refund_tool(where, use_async)],
        middleware=[check],
        checkpointer=InMemorySaver(),
    )
    graph = flagmw.wrap(agent, client, name="refund-assistant", tracer=False)
    config = cfg(tenant_id="acme")
    question = {"messages": [HumanMessage("refund o-1")]}
    if use_async:
        out = await graph.ainvoke(question, config)
    else:
        out = graph.invoke(question, config)
    assert out["messages"][-1].content == "done: refunded o-1 with prompt v1"
    assert [w[0] for w in where] == ["middleware", "model", "tool", "middleware", "model"]
    assert {w[1] for w in where} == {1}
    if not use_async:  # ToolNode runs sync tools in executor threads
        tool_thread = next(w[2] for w in where if w[0] == "tool")
        assert tool_thread != threading.main_thread().name
    pinned_rc = graph.get_pinned_config(config)
    assert pinned_rc is not None
    assert pinned_rc.context.route == "refund-assistant"
    assert pinned_rc.context.tenant_id == "acme"


def test_prebuilt_tool_node_graph_with_interrupt_and_resume(client: FlagClient) -> None:
    where: list[tuple[str, int | None, str]] = []
    model = ScriptedChatModel(script=[tool_call("refund", {"order_id": "o-2"}), "all done"])

    class State(TypedDict):
        messages: Annotated[list[AnyMessage], add_messages]

    def agent(state: State) -> dict[str, Any]:
        seen_by(where, "model")
        return {"messages": [model.bind_tools([refund_tool(where)]).invoke(state["messages"])]}

    def approve(state: State) -> dict[str, Any]:
        interrupt("approve the refund?")
        return {}

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("approve", approve)
    builder.add_node("tools", ToolNode([refund_tool(where)]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, {"tools": "approve", END: END})
    builder.add_edge("approve", "tools")
    builder.add_edge("tools", "agent")
    graph = flagmw.wrap(builder.compile(checkpointer=InMemorySaver()), client, tracer=False)
    config = cfg()
    graph.invoke({"messages": [HumanMessage("refund o-2")]}, config)
    for n in range(2, 6):
        publish(client, n)
    out = graph.invoke(Command(resume=True), config)
    assert isinstance(out["messages"][-1], AIMessage)
    assert out["messages"][-1].content == "all done"
    assert out["messages"][-2].content == "refunded o-2 with prompt v1"
    assert [w[0] for w in where] == ["model", "tool", "model"]
    assert {w[1] for w in where} == {1}
    assert client.resolve()["prompt.version"] == 5  # what a fresh run would have seen


# -- the langgraph internals the wrapper reads ------------------------------------------


def test_langgraph_still_passes_the_private_keys_the_wrapper_reads() -> None:
    """flagmw.langgraph.keys reads three of LangGraph's private configurable keys (no
    public accessor exists). Fails loudly when an upgrade of langgraph moves them."""
    from langgraph.config import get_config
    from langgraph.runtime import Runtime

    from flagmw.langgraph.keys import (
        LENT_CHECKPOINTER_KEY,
        RUNTIME_KEY,
        SUPPORTED_LANGGRAPH,
        TASK_ID_KEY,
    )

    assert (TASK_ID_KEY, LENT_CHECKPOINTER_KEY, RUNTIME_KEY) == (
        "__pregel_task_id",
        "__pregel_checkpointer",
        "__pregel_runtime",
    ), f"langgraph renamed its configurable keys: flagmw supports {SUPPORTED_LANGGRAPH}"
    seen: dict[str, Any] = {}

    def inner(state: LogState) -> dict[str, Any]:
        seen.update(get_config()["configurable"])
        return {}

    sub = StateGraph(LogState)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")
    parent = StateGraph(LogState)
    parent.add_node("sub", sub.compile())
    parent.add_edge(START, "sub")
    saver = InMemorySaver()
    parent.compile(checkpointer=saver).invoke({"log": []}, cfg())
    assert isinstance(seen.get(TASK_ID_KEY), str)
    assert seen.get(LENT_CHECKPOINTER_KEY) is saver
    assert isinstance(seen.get(RUNTIME_KEY), Runtime)
    assert hasattr(seen[RUNTIME_KEY], "control")


def test_a_nested_wrapped_agent_on_its_own_thread_pins_in_its_own_checkpointer(
    client: FlagClient,
) -> None:
    """A wrapped agent called from a node with a thread of its own (an explicit
    ``thread_id``: LangGraph then does not inherit the caller's configurable) pins in
    its own checkpointer, resumes from its own pin, and stays nested (``parent``)."""
    other = FlagClient(make_registry(), MemoryStore(), environment="test")
    publish(other, 7)
    child_saver = InMemorySaver()
    runs: list[Any] = []

    def ask(name: str, obs: dict[str, Any]) -> None:
        runs.append(current_run())
        interrupt("ok?")

    child = flagmw.wrap(
        linear_graph(("c1",), {"c1": ask}, checkpointer=child_saver), other, tracer=False
    )
    child_config = cfg()

    def call(state: Any) -> dict[str, Any]:
        out = child.invoke({"log": []}, child_config)
        return {"log": [{"node": "p", "child_interrupted": "__interrupt__" in out}]}

    builder = StateGraph(LogState)
    builder.add_node("p", call)
    builder.add_edge(START, "p")
    parent = flagmw.wrap(builder.compile(checkpointer=InMemorySaver()), client, tracer=False)
    parent.invoke({"log": []}, cfg())
    pinned_rc = child.get_pinned_config(child_config)
    assert pinned_rc is not None
    assert pinned_rc["prompt.version"] == 7
    assert runs[0].parent is not None
    assert runs[0].parent.client is client
    assert runs[0].pin_source == "resolved"
    publish(other, 8)  # a new snapshot: the child's resume keeps its pin
    out = child.invoke(Command(resume="yes"), child_config)
    assert [e["pinned"]["prompt.version"] for e in out["log"]] == [7]
    assert runs[1].pin_source == "checkpoint"
    assert runs[1].parent is None


@pytest.mark.parametrize("how", ["node", "call"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_nested_wrapped_agent_interrupted_in_the_parents_thread_resumes_with_its_pin(
    saver: Any, how: str, mode: str
) -> None:
    """Bug 3.1: a wrapped agent nested in a node of another wrapped graph (sharing the
    parent's thread and checkpointer) pins in its task's checkpoint namespace. When it
    interrupts and the parent is resumed — by a fresh wrapper, as in another process,
    after new snapshots were published for both — the nested agent continues with its
    own pin (not the parent's, not a fresh resolve), on every checkpointer."""
    if mode == "async" and not isinstance(saver, InMemorySaver):
        # SqliteSaver / PostgresSaver are sync-only (their async twins are other classes)
        saver = InMemorySaver()
    store_p, store_c = MemoryStore(), MemoryStore()

    def build() -> tuple[Any, FlagClient, FlagClient]:
        parent_client = FlagClient(make_registry(), store_p, environment="test")
        child_client = FlagClient(make_registry(), store_c, environment="test")

        def ask(name: str, obs: dict[str, Any]) -> None:
            interrupt("ok?")

        child = flagmw.wrap(linear_graph(("c1", "c2"), {"c1": ask}), child_client, tracer=False)
        graph = flagmw.wrap(parent_with_child(child, saver, how), parent_client, tracer=False)
        return graph, parent_client, child_client

    graph, parent_client, child_client = build()
    publish(parent_client, 3)
    publish(child_client, 7)
    config = cfg()

    def run(g: Any, value: Any) -> Any:
        if mode == "sync":
            return g.invoke(value, config)
        return asyncio.run(g.ainvoke(value, config))

    out = run(graph, {"log": []})
    assert "__interrupt__" in out
    publish(parent_client, 4)
    publish(child_client, 8)
    resumed_graph, _, _ = build()  # a fresh wrapper and clients: nothing in memory
    out = run(resumed_graph, Command(resume="yes"))
    by = {e["node"]: e["pinned"]["prompt.version"] for e in out["log"] if "pinned" in e}
    assert by == {"c1": 7, "c2": 7}, out["log"]
    assert [e["node"] for e in out["log"]][-1] == "p2"
    parent_pin = resumed_graph.get_pinned_config(config)
    assert parent_pin is not None
    assert parent_pin["prompt.version"] == 3


async def test_nested_wrapped_agents_run_concurrently_in_one_node(client: FlagClient) -> None:
    """Two wrapped agents with different clients gathered in one async node each see
    their own run; the node sees its own before and after."""
    clients = []
    for n in (5, 6):
        c = FlagClient(make_registry(), MemoryStore(), environment="test")
        publish(c, n)
        clients.append(c)

    async def slow(state: LogState) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"log": [{"v": flagmw.current()["prompt.version"]}]}

    agents = []
    for c in clients:
        b = StateGraph(LogState)
        b.add_node("s", slow)
        b.add_edge(START, "s")
        agents.append(flagmw.wrap(b.compile(), c, tracer=False))

    async def fan_out(state: LogState) -> dict[str, Any]:
        mine = flagmw.current()
        outs = await asyncio.gather(*(a.ainvoke({"log": []}) for a in agents))
        assert flagmw.current() is mine
        return {"log": [e for o in outs for e in o["log"]] + [{"v": mine["prompt.version"]}]}

    b = StateGraph(LogState)
    b.add_node("f", fan_out)
    b.add_edge(START, "f")
    parent = flagmw.wrap(b.compile(checkpointer=InMemorySaver()), client, tracer=False)
    out = await parent.ainvoke({"log": []}, cfg())
    assert out["log"] == [{"v": 5}, {"v": 6}, {"v": 1}]
