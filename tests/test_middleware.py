"""FlagmwMiddleware in ``create_agent``: pin in state (surviving interrupt, resume and a
restart on SQLite), hidden and refused tools, hot kills at the next model call, routes
with fallbacks, combination with ``flagmw.wrap`` — sync and async."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeClient, snapshot_part
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command, interrupt

import flagmw
from flagmw import FlagClient, IntegrityError, RunConfig
from flagmw.integrations.langchain import PIN_KEY, FlagmwMiddleware
from flagmw.langgraph.run import RunState
from flagmw.langgraph.tools import gated
from flagmw.testing import ScriptedChatModel, tool_call

KEY = "tools.refund_api.enabled"
RUN_KILL = "agent.enabled"


@gated(KEY)
@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


@tool
def search(query: str) -> str:
    """Search the knowledge base."""
    return f"found {query}"


@tool
def approve(order_id: str) -> str:
    """Ask a human to approve a refund."""
    answer = interrupt({"approve": order_id})
    return f"human said {answer}"


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

    def named(self, name: str) -> list[dict[str, Any]]:
        return [a for n, a in self.events if n == name]


def _run(agent: Any, inp: Any, cfg: dict[str, Any], mode: str) -> Any:
    return agent.invoke(inp, cfg) if mode == "sync" else asyncio.run(agent.ainvoke(inp, cfg))


def _cfg(thread: str, **conf: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, **conf}}


@pytest.fixture
def client(make_client: MakeClient) -> FlagClient:
    """A client on a real SQLite store with the DESIGN §9 snapshot (rev 1)."""
    return make_client(document=snapshot_part())


# -- pinning ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_pin_is_json_primitives_in_a_private_channel(mode: str, client: FlagClient) -> None:
    agent = create_agent(
        ScriptedChatModel(script=["hi"]),
        tools=[search],
        middleware=[FlagmwMiddleware(client, name="support")],
        checkpointer=InMemorySaver(),
    )
    cfg = _cfg("t-1", tenant_id="acme", user_id="u-17", region="eu", api_key="sk-secret")
    out = _run(agent, {"messages": [HumanMessage("hello")]}, cfg, mode)
    assert PIN_KEY not in out  # private: not in the agent's output
    pin = agent.get_state(cfg).values[PIN_KEY]
    assert json.loads(json.dumps(pin)) == pin  # JSON primitives only
    rc = RunConfig.from_json(pin["rc"])  # verifies config_hash
    assert rc == client.resolve(rc.context)
    assert rc.context.tenant_id == "acme"
    assert rc.context.route == "support"
    assert dict(rc.context.attributes) == {"region": "eu"}  # secrets never become context
    assert rc["model.primary"] == "gpt-4o-mini"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_pin_survives_interrupt_publishes_and_a_restart(
    mode: str, make_client: MakeClient, tmp_path: Path
) -> None:
    """Interrupt → 10 publishes (acme moves to gpt-4o) → resume with new objects on the
    same SQLite files: the resumed run keeps the pinned route and config hash."""
    db = tmp_path / "checkpoints.db"

    def build(client: FlagClient, saver: Any) -> tuple[Any, dict[str, ScriptedChatModel]]:
        routes = {
            "gpt-4o": ScriptedChatModel(script=["big answer"], label="big"),
            "gpt-4o-mini": ScriptedChatModel(script=_approve_then_answer, label="small"),
        }
        mw = FlagmwMiddleware(client, name="support", routes=routes, fallbacks="model.fallbacks")
        model = ScriptedChatModel(script=["unrouted"], label="default")
        return create_agent(model, tools=[approve], middleware=[mw], checkpointer=saver), routes

    cfg = _cfg("t-approve", tenant_id="acme")
    first_client = make_client(tmp_path, document=snapshot_part())

    async def async_flow() -> tuple[Any, Any, dict[str, ScriptedChatModel]]:
        async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
            agent, _ = build(first_client, saver)
            await agent.ainvoke({"messages": [HumanMessage("refund o-1")]}, cfg)
            pinned = (await agent.aget_state(cfg)).values[PIN_KEY]
        _publish_ten(first_client)
        async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
            agent, routes = build(make_client(tmp_path), saver)
            out = await agent.ainvoke(Command(resume="yes"), cfg)
            after = (await agent.aget_state(cfg)).values[PIN_KEY]
        return pinned, (out, after), routes

    if mode == "sync":
        conn = sqlite3.connect(db, check_same_thread=False)
        agent, _ = build(first_client, SqliteSaver(conn))
        agent.invoke({"messages": [HumanMessage("refund o-1")]}, cfg)
        state = agent.get_state(cfg)
        assert state.next == ("tools",)
        pinned = state.values[PIN_KEY]
        conn.close()
        _publish_ten(first_client)
        conn = sqlite3.connect(db, check_same_thread=False)
        agent, routes = build(make_client(tmp_path), SqliteSaver(conn))
        out = agent.invoke(Command(resume="yes"), cfg)
        after = agent.get_state(cfg).values[PIN_KEY]
        conn.close()
    else:
        pinned, (out, after), routes = asyncio.run(async_flow())

    assert (
        make_client(tmp_path).resolve(RunConfig.from_json(pinned["rc"]).context)["model.primary"]
        == "gpt-4o"
    )  # a fresh resolution would now route to the big model
    assert out["messages"][-2].content == "human said yes"
    assert out["messages"][-1].content == "small answer"
    assert out["messages"][-1].response_metadata["flagmw_route"] == "gpt-4o-mini"
    assert routes["gpt-4o"].calls == 0
    assert after["rc"]["config_hash"] == pinned["rc"]["config_hash"]
    assert after["rc"]["snapshot_rev"] == 1


def _approve_then_answer(messages: Any, tools: list[str]) -> Any:
    if isinstance(messages[-1], ToolMessage):
        return "small answer"
    return tool_call("approve", {"order_id": "o-1"}, call_id="ap")


def _publish_ten(client: FlagClient) -> None:
    for i in range(10):
        doc = snapshot_part()
        doc["tenants"]["acme"]["values"]["model.primary"] = "gpt-4o"
        doc["rules"][0]["name"] = f"enterprise-v3-{i}"  # a new rev; acme's values unchanged
        client.publish(doc, author="release", message=f"rev {i + 2}")
    assert client.snapshot_rev == 11


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_kill_made_while_interrupted_applies_on_resume(mode: str, client: FlagClient) -> None:
    """Hot keys move on resume (the first boundary is the re-run tool call); the change
    is stored in the pin while pinned keys and the rev stay."""
    model = ScriptedChatModel(script=_approve_then_answer)
    rec = Recorder()
    agent = create_agent(
        model,
        tools=[approve, refund],
        middleware=[FlagmwMiddleware(client, observers=[rec])],
        checkpointer=InMemorySaver(),
    )
    cfg = _cfg(f"t-wait-{mode}", tenant_id="acme")
    _run(agent, {"messages": [HumanMessage("refund o-1")]}, cfg, mode)
    before = agent.get_state(cfg).values[PIN_KEY]["rc"]
    ov = client.kill(KEY, reason="CRM down", actor="oncall")
    _publish_ten(client)
    _run(agent, Command(resume="yes"), cfg, mode)
    assert model.seen_tools == [["approve", "refund"], ["approve"]]
    after = RunConfig.from_json(agent.get_state(cfg).values[PIN_KEY]["rc"])
    assert [(c.key, c.new, c.provenance.override_id) for c in after.changes] == [
        (KEY, False, ov.id)
    ]
    assert after.snapshot_rev == before["snapshot_rev"] == 1
    assert after["model.primary"] == "gpt-4o-mini"  # pinned, though rev 11 says gpt-4o
    assert {k: v for k, v in after.items() if k != KEY} == {
        k: v for k, v in before["values"].items() if k != KEY
    }
    assert [c["key"] for c in rec.named("flag_changed")] == [KEY]


@pytest.mark.parametrize("pin", ["turn", "thread"])
def test_pin_per_turn_or_per_thread(pin: str, client: FlagClient) -> None:
    routes = {
        "gpt-4o": ScriptedChatModel(script=["big"], label="big"),
        "gpt-4o-mini": ScriptedChatModel(script=["small"], label="small"),
    }
    mw = FlagmwMiddleware(client, routes=routes, pin=pin)  # type: ignore[arg-type]
    agent = create_agent(
        ScriptedChatModel(script=["x"]), tools=[], middleware=[mw], checkpointer=InMemorySaver()
    )
    cfg = _cfg("t-turns", tenant_id="acme")
    first = agent.invoke({"messages": [HumanMessage("one")]}, cfg)["messages"][-1]
    doc = snapshot_part()
    doc["tenants"]["acme"]["values"]["model.primary"] = "gpt-4o"
    client.publish(doc, author="release", message="acme to gpt-4o")
    second = agent.invoke({"messages": [HumanMessage("two")]}, cfg)["messages"][-1]
    assert first.response_metadata["flagmw_route"] == "gpt-4o-mini"
    expected = "gpt-4o" if pin == "turn" else "gpt-4o-mini"
    assert second.response_metadata["flagmw_route"] == expected
    assert agent.get_state(cfg).values[PIN_KEY]["rc"]["snapshot_rev"] == (2 if pin == "turn" else 1)


def test_a_tampered_pin_is_detected(client: FlagClient) -> None:
    mw = FlagmwMiddleware(client)
    pin = {"rc": client.resolve().to_dict(), "turn": "m-1"}
    pin["rc"]["values"]["model.primary"] = "gpt-4o-mini"  # hash no longer matches
    with pytest.raises(IntegrityError, match="does not match its values"):
        mw._before_model({"messages": [], PIN_KEY: pin})


def test_constructor_errors(client: FlagClient) -> None:
    with pytest.raises(ValueError, match="at least one route"):
        FlagmwMiddleware(client, routes={})
    with pytest.raises(ValueError, match="not a BaseChatModel"):
        FlagmwMiddleware(client, routes={"x": "gpt"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="'turn' or 'thread'"):
        FlagmwMiddleware(client, pin="run")  # type: ignore[arg-type]


# -- hidden and refused tools -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_disabled_tool_is_hidden_and_a_call_anyway_is_refused(
    mode: str, client: FlagClient
) -> None:
    ov = client.kill(KEY, reason="CRM webhook returns 500", actor="oncall")
    model = ScriptedChatModel(
        script=[tool_call("refund", {"order_id": "o-9"}, call_id="inj"), "Refunds are down."]
    )
    rec = Recorder()
    agent = create_agent(
        model,
        tools=[refund, search],
        middleware=[FlagmwMiddleware(client, observers=[rec])],
        checkpointer=InMemorySaver(),
    )
    out = _run(agent, {"messages": [HumanMessage("refund o-9 now")]}, _cfg(f"t-{mode}"), mode)
    assert model.seen_tools == [["search"], ["search"]]  # never offered
    refusal = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert refusal.tool_call_id == "inj"
    assert refusal.status == "error"
    assert refusal.content == (
        f"Tool 'refund' is disabled by flag {KEY} (kill {ov.id}: CRM webhook returns 500). "
        "Do not retry it; tell the user it is unavailable."
    )
    assert out["messages"][-1].content == "Refunds are down."
    assert rec.named("tool_refused") == [
        {"tool": "refund", "key": KEY, "reason": "CRM webhook returns 500", "override_id": ov.id}
    ]


def test_tool_gates_by_name_cover_plain_and_provider_tools(client: FlagClient) -> None:
    client.kill(KEY, reason="maintenance", actor="oncall")
    model = ScriptedChatModel(script=[tool_call("search", {"query": "q"}), "done"])
    web = {"type": "web_search"}
    agent = create_agent(
        model,
        tools=[search, web],
        middleware=[FlagmwMiddleware(client, tool_gates={"search": KEY, "web_search": KEY})],
    )
    out = agent.invoke({"messages": [HumanMessage("look it up")]})
    assert model.seen_tools == [[], []]
    refusal = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert refusal.status == "error"
    assert refusal.content.startswith(f"Tool 'search' is disabled by flag {KEY}")


class ChoiceRecorder(ScriptedChatModel):
    """Records the tool_choice of every call."""

    choices: list[Any]

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.choices.append(kw.get("tool_choice"))
        return super()._generate(messages, stop, run_manager, **kw)


class ForceRefund(AgentMiddleware):
    """An outer middleware that forces the refund tool."""

    def wrap_model_call(self, request: ModelRequest, handler: Callable[..., Any]) -> Any:
        return handler(request.override(tool_choice="refund"))

    async def awrap_model_call(self, request: ModelRequest, handler: Callable[..., Any]) -> Any:
        return await handler(request.override(tool_choice="refund"))


@pytest.mark.parametrize("killed", [True, False])
def test_a_tool_choice_forcing_a_hidden_tool_is_reset(killed: bool, client: FlagClient) -> None:
    if killed:
        client.kill(KEY, reason="maintenance", actor="oncall")
    model = ChoiceRecorder(script=["done"], choices=[])
    agent = create_agent(
        model, tools=[refund, search], middleware=[ForceRefund(), FlagmwMiddleware(client)]
    )
    agent.invoke({"messages": [HumanMessage("hi")]})
    assert model.choices == [None if killed else "refund"]


# -- hot kills ---------------------------------------------------------------------------


def _killer(client: FlagClient, key: str, ids: list[str]) -> Any:
    @tool
    def escalate(ticket: str) -> str:
        """Escalate to a human (the on-call kills something meanwhile)."""
        ids.append(client.kill(key, reason="incident 42", actor="oncall").id)
        return "escalated"

    return escalate


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_run_kill_ends_the_run_at_the_next_model_call(mode: str, client: FlagClient) -> None:
    ids: list[str] = []
    model = ScriptedChatModel(script=[tool_call("escalate", {"ticket": "T-1"}), "never said"])
    rec = Recorder()
    agent = create_agent(
        model,
        tools=[_killer(client, RUN_KILL, ids), search],
        middleware=[FlagmwMiddleware(client, observers=[rec])],
        checkpointer=InMemorySaver(),
    )
    cfg = _cfg(f"t-kill-{mode}")
    out = _run(agent, {"messages": [HumanMessage("help")]}, cfg, mode)
    assert model.calls == 1  # the kill reached the run before the second model call
    final = out["messages"][-1]
    assert isinstance(final, AIMessage)
    assert final.content == (
        f"The agent was stopped by flag {RUN_KILL} (kill {ids[0]}: incident 42)."
    )
    drained = rec.named("run_drained")
    assert len(drained) == 1
    assert drained[0]["key"] == RUN_KILL
    assert drained[0]["override_id"] == ids[0]
    assert [c["key"] for c in rec.named("flag_changed")] == [RUN_KILL]
    # a new turn while the kill lasts ends before the model is called
    _run(agent, {"messages": [HumanMessage("still there?")]}, cfg, mode)
    assert model.calls == 1
    client.end_override(ids[0], actor="oncall", reason="fixed")
    out = _run(agent, {"messages": [HumanMessage("and now?")]}, cfg, mode)
    assert model.calls == 2
    assert out["messages"][-1].content == "never said"


def test_a_hot_tool_kill_mid_run_hides_the_tool_from_the_next_call(client: FlagClient) -> None:
    ids: list[str] = []
    model = ScriptedChatModel(
        script=[
            tool_call("escalate", {"ticket": "T-1"}),
            tool_call("refund", {"order_id": "o-1"}, call_id="late"),
            "done",
        ]
    )
    rec = Recorder()
    agent = create_agent(
        model,
        tools=[refund, _killer(client, KEY, ids)],
        middleware=[FlagmwMiddleware(client, observers=[rec])],
        checkpointer=InMemorySaver(),
    )
    cfg = _cfg("t-hot")
    out = agent.invoke({"messages": [HumanMessage("refund o-1")]}, cfg)
    assert model.seen_tools == [["refund", "escalate"], ["escalate"], ["escalate"]]
    late = next(m for m in out["messages"] if getattr(m, "tool_call_id", None) == "late")
    assert late.status == "error"
    assert f"kill {ids[0]}: incident 42" in late.content
    changes = rec.named("flag_changed")
    assert [(c["key"], c["old"], c["new"], c["override_id"]) for c in changes] == [
        (KEY, True, False, ids[0])
    ]
    stored = RunConfig.from_json(agent.get_state(cfg).values[PIN_KEY]["rc"])
    assert [(c.key, c.new) for c in stored.changes] == [(KEY, False)]
    assert stored.snapshot_rev == 1  # pinned keys and rev unchanged


def test_pending_tool_calls_get_a_tool_message_when_the_run_is_killed(client: FlagClient) -> None:
    ov = client.kill(RUN_KILL, reason="incident 42", actor="oncall")
    mw = FlagmwMiddleware(client)
    pin = {"rc": client.resolve().to_dict(), "turn": "h"}
    ai = AIMessage(
        "",
        tool_calls=[
            {"name": "search", "args": {"query": "a"}, "id": "done-1"},
            {"name": "refund", "args": {"order_id": "o"}, "id": "pending-1"},
        ],
    )
    answered = ToolMessage("found a", tool_call_id="done-1", name="search")
    update = mw._before_model({"messages": [HumanMessage("x", id="h"), ai, answered], PIN_KEY: pin})
    assert update is not None
    assert update["jump_to"] == "end"
    pending, final = update["messages"]
    assert isinstance(pending, ToolMessage)
    assert pending.tool_call_id == "pending-1"
    assert pending.status == "error"
    assert final.content == f"The agent was stopped by flag {RUN_KILL} (kill {ov.id}: incident 42)."


# -- combined with flagmw.wrap ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_wrap_and_middleware_share_one_run(mode: str, client: FlagClient) -> None:
    ov = client.kill(KEY, reason="CRM down", actor="oncall")
    model = ScriptedChatModel(script=[tool_call("refund", {"order_id": "o"}), "ok"])
    rec_mw, rec_wrap = Recorder(), Recorder()
    agent = flagmw.wrap(
        create_agent(
            model,
            tools=[refund, search],
            middleware=[FlagmwMiddleware(client, observers=[rec_mw])],
            checkpointer=InMemorySaver(),
        ),
        client,
        tracer=False,
        observers=[rec_wrap],
    )
    cfg = _cfg(f"t-both-{mode}", tenant_id="acme")
    out = _run(agent, {"messages": [HumanMessage("refund o")]}, cfg, mode)
    assert agent.get_state(cfg).values.get(PIN_KEY) is None  # the wrapper pinned, not us
    assert model.seen_tools == [["search"], ["search"]]
    refusal = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert f"kill {ov.id}: CRM down" in refusal.content
    # the events went to the wrapper's run (one run, one pin)
    assert rec_wrap.named("tool_refused") == [
        {"tool": "refund", "key": KEY, "reason": "CRM down", "override_id": ov.id}
    ]
    assert rec_mw.events == []
    assert agent.get_pinned_config(cfg) is not None


# -- the run is current inside model and tool calls --------------------------------------


def test_current_inside_tools_and_models_without_wrap(client: FlagClient) -> None:
    seen: list[tuple[str, Any]] = []

    @tool
    def which_style(x: str) -> str:
        """Report the prompt style of this run."""
        seen.append(("tool", flagmw.current()["prompt.style"]))
        return "ok"

    def policy(messages: Any, tools: list[str]) -> Any:
        seen.append(("model", flagmw.current()["model.primary"]))
        if not any(isinstance(m, ToolMessage) for m in messages):
            return tool_call("which_style", {"x": "1"})
        return "done"

    agent = create_agent(
        ScriptedChatModel(script=policy),
        tools=[which_style],
        middleware=[FlagmwMiddleware(client)],
    )
    agent.invoke(
        {"messages": [HumanMessage("hi")]}, _cfg("t-cur", tenant_id="acme", plan="enterprise")
    )
    assert seen == [("model", "gpt-4o-mini"), ("tool", "v3"), ("model", "gpt-4o-mini")]
