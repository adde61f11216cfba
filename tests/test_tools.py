"""Gated tools: schema kept, hidden from binding, refused with a ToolMessage under every
ToolNode error setting (sync and async), events; the direct-call and the docs examples."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from uuid import UUID

import pytest
from conftest import MakeClient, snapshot_part
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import InjectedState, ToolNode, ToolRuntime
from pydantic import BaseModel, Field, PrivateAttr

from flagmw import EvaluationContext, FlagClient, RefusedError
from flagmw.langgraph.run import RUN_KEY, RunState, use_run
from flagmw.langgraph.tools import GatedFunctionTool, gate_of, gated

KEY = "tools.refund_api.enabled"
REASON = "CRM webhook returns 500"


# -- tools of every kind -----------------------------------------------------------------


def _sync_tool() -> BaseTool:
    @tool
    def refund(order_id: str, amount_cents: int = 0) -> str:
        """Refund an order (amount in cents; 0 = the whole order)."""
        return f"refunded {order_id}"

    return refund


def _async_tool() -> BaseTool:
    @tool
    async def arefund(order_id: str) -> str:
        """Refund an order, asynchronously."""
        await asyncio.sleep(0)
        return f"refunded {order_id}"

    return arefund


class RefundArgs(BaseModel):
    order_id: str = Field(description="the order to refund")


class RefundTool(BaseTool):
    """A BaseTool subclass with its own required constructor argument."""

    name: str = "refund_cls"
    description: str = "Refund an order through the CRM."
    args_schema: type[BaseModel] = RefundArgs
    crm: str = ""

    def __init__(self, crm: str) -> None:
        super().__init__(crm=crm)

    def _run(self, order_id: str) -> str:
        return f"{self.crm} refunded {order_id}"


class AsyncRefundTool(BaseTool):
    name: str = "refund_async_cls"
    description: str = "Refund an order (async implementation)."
    args_schema: type[BaseModel] = RefundArgs

    def _run(self, order_id: str) -> str:
        raise AssertionError("the async path must use _arun")

    async def _arun(self, order_id: str) -> str:
        return f"async refunded {order_id}"


def _plain_sync() -> Any:
    def refund_fn(order_id: str) -> str:
        """Refund an order (a plain function)."""
        return f"refunded {order_id}"

    return refund_fn


def _plain_async() -> Any:
    async def refund_afn(order_id: str) -> str:
        """Refund an order (a plain coroutine function)."""
        return f"refunded {order_id}"

    return refund_afn


@gated(KEY)
class DecoratedRefundTool(BaseTool):
    """A BaseTool subclass gated at its definition."""

    name: str = "refund_decorated"
    description: str = "Refund an order (class gated where it is defined)."
    args_schema: type[BaseModel] = RefundArgs

    def _run(self, order_id: str) -> str:
        return f"refunded {order_id}"


# (id, factory of the ungated tool or function, whether it can run synchronously)
KINDS: list[tuple[str, Any, bool]] = [
    ("tool", _sync_tool, True),
    ("async_tool", _async_tool, False),
    ("basetool", lambda: RefundTool("crm"), True),
    ("async_basetool", AsyncRefundTool, False),
    ("function", _plain_sync, True),
    ("async_function", _plain_async, False),
]


def _gated_kind(kind: str) -> BaseTool:
    if kind == "decorated_class":
        return DecoratedRefundTool()
    factory = next(f for k, f, _ in KINDS if k == kind)
    return gated(KEY)(factory())


ALL_KINDS = [k for k, _, _ in KINDS] + ["decorated_class"]
SYNC_KINDS = [k for k, _, sync in KINDS if sync] + ["decorated_class"]
# an async-only tool cannot run under a sync invoke
KIND_MODES = [
    (k, m) for k in ALL_KINDS for m in ("sync", "async") if m == "async" or k in SYNC_KINDS
]


def _run_state(client: FlagClient, **ctx: Any) -> RunState:
    return RunState(client=client, rc=client.resolve(EvaluationContext(**ctx)), name="test")


def _tool_graph(tools: list[Any], **node_kw: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("tools", ToolNode(tools, **node_kw))
    builder.add_edge(START, "tools")
    builder.add_edge("tools", END)
    return builder.compile()


def _call(name: str, call_id: str = "c1", **args: Any) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


def _kill_message(override_id: str, name: str = "refund") -> str:
    return (
        f"Tool '{name}' is disabled by flag {KEY} (kill {override_id}: {REASON}). "
        "Do not retry it; tell the user it is unavailable."
    )


@pytest.fixture
def killed(memory_client: MakeClient) -> tuple[FlagClient, str]:
    client = memory_client(document=snapshot_part())
    ov = client.kill(KEY, reason=REASON, actor="oncall", ttl="1h")
    return client, ov.id


# -- schema ------------------------------------------------------------------------------


def _schema_view(t: BaseTool) -> dict[str, Any]:
    return {
        "name": t.name,
        "description": t.description,
        "args": t.args,
        "call_schema": t.tool_call_schema.model_json_schema(),
        "openai": convert_to_openai_tool(t),
        "return_direct": t.return_direct,
        "response_format": t.response_format,
    }


@pytest.mark.parametrize("kind", [k for k, _, _ in KINDS])
def test_gating_keeps_name_description_and_schema(kind: str) -> None:
    factory = next(f for k, f, _ in KINDS if k == kind)
    original = factory()
    plain = original if isinstance(original, BaseTool) else tool(original)
    gated_tool = gated(KEY)(factory())
    assert _schema_view(gated_tool) == _schema_view(plain)
    assert isinstance(gated_tool, type(plain))
    assert gate_of(gated_tool) == KEY
    assert gated_tool.metadata == {"flagmw": {"flag": KEY}}
    assert gate_of(plain) is None


def test_gating_keeps_return_direct_response_format_and_metadata() -> None:
    @tool(return_direct=True, response_format="content_and_artifact")
    def export(order_id: str) -> tuple[str, dict[str, str]]:
        """Export an order."""
        return "exported", {"order_id": order_id}

    export.metadata = {"owner": "payments"}
    g = gated(KEY)(export)
    assert g.return_direct is True
    assert g.response_format == "content_and_artifact"
    assert g.metadata == {"owner": "payments", "flagmw": {"flag": KEY}}
    assert export.metadata == {"owner": "payments"}  # the original is not changed
    assert _schema_view(g) == _schema_view(export)


def test_decorated_class_keeps_its_name_and_gates_every_instance() -> None:
    assert DecoratedRefundTool.__name__ == "DecoratedRefundTool"
    assert DecoratedRefundTool.__qualname__ == "DecoratedRefundTool"
    a, b = DecoratedRefundTool(), DecoratedRefundTool(metadata={"team": "x"})
    assert gate_of(a) == KEY
    assert b.metadata == {"team": "x", "flagmw": {"flag": KEY}}
    schema = _schema_view(a)["call_schema"]
    assert schema["properties"] == RefundArgs.model_json_schema()["properties"]
    assert schema["required"] == ["order_id"]


def test_regating_with_another_flag_is_refused_and_same_flag_is_idempotent() -> None:
    g = gated(KEY)(_sync_tool())
    assert gate_of(gated(KEY)(g)) == KEY
    with pytest.raises(ValueError, match=r"already gated by flag 'tools\.refund_api\.enabled'"):
        gated("agent.enabled")(g)


def test_the_gate_follows_the_metadata_of_a_copy(killed: tuple[FlagClient, str]) -> None:
    client, _ = killed
    g = gated(KEY)(_sync_tool())
    call = {"name": "refund", "args": {"order_id": "a"}, "id": "c1", "type": "tool_call"}
    moved = g.model_copy(update={"metadata": {"flagmw": {"flag": "agent.enabled"}}})
    with use_run(_run_state(client)):
        assert g.invoke(call).status == "error"
        assert moved.invoke(call).status == "success"  # gated by agent.enabled now


class SessionTool(BaseTool):
    """A BaseTool whose constructor sets a private attribute."""

    name: str = "session_tool"
    description: str = "Uses a session made in __init__."
    _session: str = PrivateAttr(default="none")

    def __init__(self, session: str) -> None:
        super().__init__()
        self._session = session

    def _run(self) -> str:
        return f"session {self._session}"


def test_a_gated_copy_keeps_private_attributes(memory_client: MakeClient) -> None:
    client = memory_client(document=snapshot_part())
    g = gated(KEY)(SessionTool("s-42"))
    assert isinstance(g, SessionTool)
    with use_run(_run_state(client)):
        assert g.invoke({}) == "session s-42"


def test_bad_targets_get_clear_errors() -> None:
    with pytest.raises(TypeError, match="provider tool dict"):
        gated(KEY)({"type": "web_search"})  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="BaseTool subclass"):
        gated(KEY)(int)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="non-empty str"):
        gated("")
    with pytest.raises(ValueError, match="'allow' or 'refuse'"):
        gated(KEY, outside_run="maybe")  # type: ignore[arg-type]


def test_plain_function_becomes_a_callable_structured_tool(killed: tuple[FlagClient, str]) -> None:
    client, ov = killed
    fn = gated(KEY, outside_run="allow")(_plain_sync())
    assert isinstance(fn, GatedFunctionTool)
    assert isinstance(fn, StructuredTool)
    assert fn("o-1") == "refunded o-1"  # outside a run, allowed: evaluated nothing, ran
    with use_run(_run_state(client)), pytest.raises(RefusedError) as info:
        fn("o-1")
    assert info.value.key == KEY
    assert info.value.override_id == ov
    assert info.value.reason == REASON


async def test_plain_async_function_is_checked_when_awaited(
    killed: tuple[FlagClient, str],
) -> None:
    client, _ = killed
    fn = gated(KEY, outside_run="allow")(_plain_async())
    assert await fn("o-2") == "refunded o-2"
    with use_run(_run_state(client)):
        with pytest.raises(RefusedError):
            await fn("o-2")


# -- injected arguments ----------------------------------------------------------------


def test_injected_runtime_and_state_stay_hidden_and_injected(memory_client: MakeClient) -> None:
    @tool
    def lookup(
        order_id: str,
        runtime: ToolRuntime,
        messages: Annotated[list[Any], InjectedState("messages")],
    ) -> str:
        """Look an order up."""
        return f"{order_id}:{runtime.tool_call_id}:{len(messages)}"

    g = gated(KEY)(lookup)
    assert _schema_view(g) == _schema_view(lookup)
    assert set(g.tool_call_schema.model_json_schema()["properties"]) == {"order_id"}
    state = _run_state(memory_client())
    out = _tool_graph([g]).invoke(
        {"messages": [_call("lookup", "c9", order_id="o-5")]}, {"configurable": {RUN_KEY: state}}
    )
    assert out["messages"][-1].content == "o-5:c9:1"
    assert out["messages"][-1].status == "success"


# -- refusal under ToolNode, every error setting, sync and async ----------------------


def _typed_handler(e: ValueError) -> str:
    return f"handled: {e}"


ERROR_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("default", {}),
    ("true", {"handle_tool_errors": True}),
    ("false", {"handle_tool_errors": False}),
    ("string", {"handle_tool_errors": "tool failed"}),
    ("callable", {"handle_tool_errors": _typed_handler}),
    ("type", {"handle_tool_errors": ValueError}),
    ("tuple", {"handle_tool_errors": (ToolException, KeyError)}),
]


@pytest.mark.parametrize(("kind", "mode"), KIND_MODES)
@pytest.mark.parametrize(("setting", "node_kw"), ERROR_SETTINGS, ids=[s for s, _ in ERROR_SETTINGS])
def test_refusal_is_a_tool_message_under_every_toolnode_setting(
    kind: str, setting: str, node_kw: dict[str, Any], mode: str, killed: tuple[FlagClient, str]
) -> None:
    client, ov = killed
    gated_tool = _gated_kind(kind)
    state = _run_state(client)
    graph = _tool_graph([gated_tool], **node_kw)
    inp = {"messages": [_call(gated_tool.name, order_id="o-1")]}
    cfg = {"configurable": {RUN_KEY: state}}
    out = graph.invoke(inp, cfg) if mode == "sync" else asyncio.run(graph.ainvoke(inp, cfg))
    msg = out["messages"][-1]
    assert isinstance(msg, ToolMessage)
    assert msg.status == "error"
    assert msg.tool_call_id == "c1"
    assert msg.name == gated_tool.name
    assert msg.content == _kill_message(ov, gated_tool.name)
    assert state.events == [
        (
            "tool_refused",
            {"tool": gated_tool.name, "key": KEY, "reason": REASON, "override_id": ov},
        )
    ]


@pytest.mark.parametrize(("kind", "mode"), KIND_MODES)
def test_enabled_tool_runs_unchanged(kind: str, mode: str, memory_client: MakeClient) -> None:
    gated_tool = _gated_kind(kind)
    state = _run_state(memory_client())
    graph = _tool_graph([gated_tool])
    inp = {"messages": [_call(gated_tool.name, order_id="o-1")]}
    cfg = {"configurable": {RUN_KEY: state}}
    out = graph.invoke(inp, cfg) if mode == "sync" else asyncio.run(graph.ainvoke(inp, cfg))
    msg = out["messages"][-1]
    assert msg.status == "success"
    assert msg.content.endswith("refunded o-1")
    assert state.events == []


def test_a_failing_enabled_tool_still_fails_as_before(memory_client: MakeClient) -> None:
    """Gating must not change how the tool's own errors are handled."""

    @tool
    def broken(order_id: str) -> str:
        """Always fails."""
        raise ToolException("CRM timeout")

    state = _run_state(memory_client())
    cfg = {"configurable": {RUN_KEY: state}}
    inp = {"messages": [_call("broken", order_id="o")]}
    with pytest.raises(ToolException, match="CRM timeout"):
        _tool_graph([gated(KEY)(broken)]).invoke(inp, cfg)
    gated_out = _tool_graph([gated(KEY)(broken)], handle_tool_errors=True).invoke(inp, cfg)
    plain_out = _tool_graph([broken], handle_tool_errors=True).invoke(inp, cfg)
    got, want = gated_out["messages"][-1], plain_out["messages"][-1]
    assert (got.content, got.status) == (want.content, want.status)
    assert "CRM timeout" in got.content
    assert state.events == []


def test_refusal_of_content_and_artifact_tool(killed: tuple[FlagClient, str]) -> None:
    @tool(response_format="content_and_artifact")
    def export(order_id: str) -> tuple[str, dict[str, str]]:
        """Export an order."""
        return "exported", {"order_id": order_id}

    client, ov = killed
    g = gated(KEY)(export)
    with use_run(_run_state(client)):
        msg = g.invoke(
            {"name": "export", "args": {"order_id": "o"}, "id": "c7", "type": "tool_call"}
        )
    assert isinstance(msg, ToolMessage)
    assert msg.status == "error"
    assert msg.artifact is None
    assert msg.content == _kill_message(ov, "export")


def test_direct_invoke_without_tool_call_returns_the_refusal_text(
    killed: tuple[FlagClient, str],
) -> None:
    client, ov = killed
    g = gated(KEY)(_sync_tool())
    with use_run(_run_state(client)):
        assert g.invoke({"order_id": "o-1"}) == _kill_message(ov)


class _Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[str] = []
        self.ends: list[Any] = []
        self.errors: list[BaseException] = []

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kw: Any) -> None:
        self.starts.append(input_str)

    def on_tool_end(self, output: Any, **kw: Any) -> None:
        self.ends.append(output)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        self.errors.append(error)


def test_refusal_is_traced_as_a_tool_run_without_injected_state(
    killed: tuple[FlagClient, str],
) -> None:
    @tool
    def lookup(order_id: str, runtime: ToolRuntime) -> str:
        """Look an order up."""
        return order_id

    client, ov = killed
    rec = _Recorder()
    state = _run_state(client)
    _tool_graph([gated(KEY)(lookup)]).invoke(
        {"messages": [_call("lookup", order_id="o-3")]},
        {"configurable": {RUN_KEY: state}, "callbacks": [rec]},
    )
    assert rec.starts == ["{'order_id': 'o-3'}"]
    assert len(rec.ends) == 1
    assert rec.ends[0].status == "error"
    assert rec.ends[0].content == _kill_message(ov, "lookup")
    assert rec.errors == []


def test_metadata_is_json(killed: tuple[FlagClient, str]) -> None:
    g = gated("model.primary", when=("gpt-4o",), outside_run="refuse")(_sync_tool())
    assert json.loads(json.dumps(g.metadata)) == g.metadata


def test_docs_examples_run() -> None:
    """Every ```python block of docs/tools-and-models.md runs, in order, in one namespace."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "tools-and-models.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6
    namespace: dict[str, Any] = {"__name__": "docs_tools_and_models"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/tools-and-models.md[block {i}]", "exec"), namespace)
