"""The decision of one gated-tool call outside a run (issue 7, bug 3.7): a tool called
where the run does not reach — a ``ThreadPoolExecutor`` inside a node does not carry
context variables — is evaluated live with the client it was gated with, refused when
no answer is possible, and runs unevaluated only with ``outside_run="allow"``."""

from __future__ import annotations

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import MakeClient, snapshot_part
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.graph import END, START, MessagesState, StateGraph

import flagmw
from flagmw import FlagClient, RefusedError
from flagmw.errors import StoreUnavailableError
from flagmw.langgraph.run import RunState
from flagmw.langgraph.tools import gated

KEY = "tools.refund_api.enabled"


def _refund() -> BaseTool:
    @tool
    def refund(order_id: str) -> str:
        """Refund an order."""
        return f"refunded {order_id}"

    return refund


def _call(t: BaseTool) -> dict[str, Any]:
    return {"name": t.name, "args": {"order_id": "o-1"}, "id": "c1", "type": "tool_call"}


class Events:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def run_started(self, run: RunState) -> None: ...

    def activate(self, run: RunState) -> Any:
        import contextlib

        return contextlib.nullcontext()

    def run_event(self, run: RunState, name: str, attributes: Any) -> None:
        self.events.append((name, dict(attributes)))

    def run_ended(self, run: RunState, outcome: Any, error: Any) -> None: ...


def _pool_graph(t: BaseTool, client: FlagClient, *, carry_context: bool, obs: Any = ()) -> Any:
    """A wrapped graph whose node calls ``t`` through a thread pool."""

    def node(state: MessagesState) -> dict[str, Any]:
        with ThreadPoolExecutor(max_workers=1) as pool:
            if carry_context:
                ctx = contextvars.copy_context()
                msg = pool.submit(ctx.run, t.invoke, _call(t)).result()
            else:
                msg = pool.submit(t.invoke, _call(t)).result()
        return {"messages": [msg]}

    builder = StateGraph(MessagesState)
    builder.add_node("work", node)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return flagmw.wrap(builder.compile(), client, tracer=False, observers=list(obs))


@pytest.fixture
def client(memory_client: MakeClient) -> FlagClient:
    return memory_client(document=snapshot_part())


def _answer(graph: Any) -> ToolMessage:
    out = graph.invoke({"messages": [("user", "refund o-1")]})
    msg = out["messages"][-1]
    assert isinstance(msg, ToolMessage)
    return msg


def test_a_killed_tool_called_from_a_thread_pool_in_a_node_is_refused(client: FlagClient) -> None:
    """Regression (bug 3.7): with the old default (outside_run="allow") it ran."""
    ov = client.kill(KEY, reason="CRM down", actor="oncall", ttl="1h")
    msg = _answer(_pool_graph(gated(KEY)(_refund()), client, carry_context=False))
    assert msg.status == "error"
    assert "no flagmw run is active" in msg.content
    assert "refunded" not in msg.content
    # gated with the client: evaluated live, the kill is named
    msg = _answer(_pool_graph(gated(KEY, client=client)(_refund()), client, carry_context=False))
    assert msg.status == "error"
    assert ov.id in msg.content
    assert "CRM down" in msg.content


def test_with_the_context_carried_the_run_decides(client: FlagClient) -> None:
    ov = client.kill(KEY, reason="CRM down", actor="oncall", ttl="1h")
    obs = Events()
    graph = _pool_graph(gated(KEY)(_refund()), client, carry_context=True, obs=[obs])
    msg = _answer(graph)
    assert msg.status == "error"
    assert ov.id in msg.content
    assert [n for n, _ in obs.events] == ["tool_refused"]


def test_an_enabled_tool_gated_with_a_client_runs_outside_a_run(client: FlagClient) -> None:
    msg = _answer(_pool_graph(gated(KEY, client=client)(_refund()), client, carry_context=False))
    assert msg.status == "success"
    assert msg.content == "refunded o-1"
    # without a client there is no answer: refused, even though the flag is on
    msg = _answer(_pool_graph(gated(KEY)(_refund()), client, carry_context=False))
    assert msg.status == "error"


def test_a_tenant_scoped_kill_refuses_a_live_evaluation_outside_a_run(client: FlagClient) -> None:
    ov = client.kill(KEY, reason="acme's CRM is down", actor="oncall", ttl="1h", tenant="acme")
    assert client.is_enabled(KEY)  # the empty context does not see it
    live = gated(KEY, client=client)(_refund())
    msg = live.invoke(_call(live))
    assert msg.status == "error"
    assert ov.id in msg.content
    assert "tenant acme" in msg.content
    client.end_override(ov.id, actor="oncall", reason="fixed")
    assert live.invoke(_call(live)).content == "refunded o-1"


def test_direct_python_call_outside_a_run_follows_the_same_policy(client: FlagClient) -> None:
    client.kill(KEY, reason="CRM down", actor="oncall", ttl="1h")

    def refund_fn(order_id: str) -> str:
        """Refund an order."""
        return f"refunded {order_id}"

    with pytest.raises(RefusedError, match="no flagmw run is active"):
        gated(KEY)(refund_fn)("o-1")
    with pytest.raises(RefusedError, match="CRM down"):
        gated(KEY, client=client)(refund_fn)("o-1")
    assert gated(KEY, outside_run="allow")(refund_fn)("o-1") == "refunded o-1"


def test_no_answer_from_the_store_refuses(
    client: FlagClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(**kw: Any) -> Any:
        raise StoreUnavailableError("memory:test", "injected outage")

    monkeypatch.setattr(client, "overrides", down)
    live = gated(KEY, client=client)(_refund())
    with caplog.at_level(logging.WARNING, logger="flagmw"):
        msg = live.invoke(_call(live))
    assert msg.status == "error"
    assert "could not be evaluated" in msg.content


def test_gating_keeps_the_client_on_regating_and_class_gates() -> None:
    sentinel: Any = object()
    once = gated(KEY, client=sentinel)(_refund())
    assert once.gate_client is sentinel
    assert gated(KEY)(once).gate_client is sentinel  # same gate again: idempotent

    @gated(KEY, client=sentinel)
    class Refund(BaseTool):
        name: str = "refund_cls"
        description: str = "Refund."

        def _run(self, order_id: str) -> str:
            return order_id

    assert Refund().gate_client is sentinel
