"""The example support agent (examples/support_agent, the agent of `flagmw demo`).

Real LangGraph graphs (InMemorySaver / no checkpointer), real ToolNode, the scripted
policy model, and a FlagClient on a MemoryStore with the agent's own flags.yaml
published as rev 1. Wrapped and unwrapped.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

import flagmw
from flagmw import FlagClient
from flagmw.examples.support_agent.agent import (
    FLAGS_PATH,
    INJECTION_MARKER,
    ROUTES,
    InMemoryBackend,
    build_graph,
    default_models,
    load_registry,
    redact_pii,
    support_policy,
)
from flagmw.testing import memory_client
from flagmw.testing.scripted import ScriptedChatModel


@pytest.fixture
def client() -> FlagClient:
    return memory_client(FLAGS_PATH, environment="production")


def cfg(tenant: str = "acme", plan: str = "pro", user: str = "u-17", **extra: Any) -> Any:
    thread = f"{tenant}-{uuid.uuid4().hex[:8]}"
    return {
        "configurable": {
            "thread_id": thread,
            "tenant_id": tenant,
            "plan": plan,
            "user_id": user,
            "route": "refund-assistant",
            **extra,
        }
    }


def ask(text: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


def tool_messages(out: dict[str, Any], name: str) -> list[ToolMessage]:
    return [m for m in out["messages"] if isinstance(m, ToolMessage) and m.name == name]


def routes_served(out: dict[str, Any]) -> list[str]:
    return [
        m.response_metadata["flagmw_route"]
        for m in out["messages"]
        if isinstance(m, AIMessage) and "flagmw_route" in m.response_metadata
    ]


def final_answer(out: dict[str, Any]) -> str:
    last = out["messages"][-1]
    assert isinstance(last, AIMessage)
    assert not last.tool_calls
    return str(last.content)


# -- the flags file ---------------------------------------------------------------------------


def test_flags_file_is_valid_and_routes_match_the_model_flag() -> None:
    registry = load_registry()
    snapshot = FlagClient(registry).validate(FLAGS_PATH)
    # the only warning this file may ever produce: prompt.style past its expires date
    assert {w.code for w in snapshot.warnings} <= {"expired"}
    assert tuple(registry["model.primary"].choices) == ROUTES
    assert registry["tools.refund_api.enabled"].binding == "hot"
    assert registry["agent.enabled"].run_kill
    assert registry["compliance.pii_redaction"].protected
    for tenant in ("acme", "globex"):
        assert tenant in snapshot.document["tenants"]
    assert "refund-assistant" in snapshot.document["routes"]
    assert snapshot.document["experiments"]


def test_tenant_overlays_differ(client: FlagClient) -> None:
    acme = client.resolve(flagmw.EvaluationContext(tenant_id="acme", plan="pro", user_id="u-1"))
    globex = client.resolve(
        flagmw.EvaluationContext(tenant_id="globex", plan="enterprise", user_id="u-2")
    )
    assert (acme["model.primary"], globex["model.primary"]) == ("gpt-4o-mini", "gpt-4o")
    assert acme["refund.approval_threshold"] < globex["refund.approval_threshold"]
    assert acme["compliance.pii_redaction"] is True
    assert globex["compliance.pii_redaction"] is False
    assert globex["prompt.style"] == "v3"
    assert globex.provenance["prompt.style"].rule == "enterprise-v3"


# -- unwrapped ---------------------------------------------------------------------------------


def test_unwrapped_agent_runs_on_registry_defaults() -> None:
    backend = InMemoryBackend()
    graph = build_graph(checkpointer=InMemorySaver(), backend=backend)
    out = graph.invoke(ask("Please refund order A-1042, $40 - wrong size."), cfg())
    # defaults: no run config, threshold 250, redaction on, route = the default route
    assert backend.refunds == [("A-1042", 40.0)]
    receipt = tool_messages(out, "refund")[0].content
    assert "[email]" in receipt
    assert "[card]" in receipt
    assert "your refund is on its way" in final_answer(out)
    assert set(routes_served(out)) == {"gpt-4o"}


def test_unwrapped_agent_without_checkpointer_answers_a_question() -> None:
    graph = build_graph(checkpointer=None)
    out = graph.invoke(ask("How do I reset my password?"))
    assert [m.name for m in out["messages"] if isinstance(m, ToolMessage)] == ["kb_search"]
    assert "Password reset" in final_answer(out)
    assert "[phone]" in final_answer(out)


def test_unwrapped_refund_above_default_threshold_interrupts() -> None:
    backend = InMemoryBackend()
    graph = build_graph(checkpointer=InMemorySaver(), backend=backend)
    config = cfg()
    out = graph.invoke(ask("Refund order A-1200, $400."), config)
    assert out["__interrupt__"][0].value["threshold"] == 250.0
    out = graph.invoke(Command(resume="reject"), config)
    assert backend.refunds == []
    assert "rejected" in str(tool_messages(out, "refund")[0].content)
    assert tool_messages(out, "escalate")


# -- wrapped -------------------------------------------------------------------------------------


def test_wrapped_tenants_get_their_route_threshold_and_redaction(client: FlagClient) -> None:
    backend = InMemoryBackend()
    graph = flagmw.wrap(build_graph(checkpointer=InMemorySaver(), backend=backend), client)
    acme = graph.invoke(ask("Please refund order A-1042, $40."), cfg("acme"))
    globex = graph.invoke(
        ask("Please refund order G-2201, $300."), cfg("globex", "enterprise", "u-9")
    )
    assert set(routes_served(acme)) == {"gpt-4o-mini"}
    assert set(routes_served(globex)) == {"gpt-4o"}
    assert "@" not in tool_messages(acme, "refund")[0].content
    assert "@" in tool_messages(globex, "refund")[0].content  # globex: redaction off
    assert final_answer(acme).startswith("Dear customer")  # style v2 (experiment control)
    assert final_answer(globex).startswith("Thanks for your patience!")  # v3 by rule
    assert backend.refunds == [("A-1042", 40.0), ("G-2201", 300.0)]


def test_wrapped_approval_uses_the_pinned_threshold_across_a_publish(client: FlagClient) -> None:
    backend = InMemoryBackend()
    saver = InMemorySaver()
    graph = flagmw.wrap(build_graph(checkpointer=saver, backend=backend), client)
    config = cfg("acme")
    out = graph.invoke(ask("Please refund order A-1500, $150."), config)  # acme: above 100
    assert out["__interrupt__"][0].value == {
        "action": "approve_refund",
        "refunds": [{"order_id": "A-1500", "amount": 150.0}],
        "threshold": 100.0,
        "tenant": "acme",
    }
    pinned = graph.get_pinned_config(config)
    assert pinned is not None
    assert pinned.snapshot_rev == 1
    # rev 2 raises acme's threshold and moves it to another route; the waiting run keeps
    # rev 1 when a fresh graph object (another worker) resumes it
    doc = client.get_snapshot(1).document
    doc = {**doc, "tenants": {**doc["tenants"]}}
    doc["tenants"]["acme"] = {
        **doc["tenants"]["acme"],
        "values": {"refund.approval_threshold": 500.0, "model.primary": "claude-sonnet"},
    }
    assert client.publish(doc, author="t", message="rev 2").rev == 2
    other = flagmw.wrap(build_graph(checkpointer=saver, backend=backend), client)
    out = other.invoke(Command(resume={"approved": True, "reviewer": "dana"}), config)
    assert backend.refunds == [("A-1500", 150.0)]
    assert set(routes_served(out)) == {"gpt-4o-mini"}  # rev 1's route, not rev 2's
    fresh = other.invoke(ask("Please refund order A-1501, $150."), cfg("acme"))
    assert "__interrupt__" not in fresh  # rev 2: 150 is below the new threshold
    assert routes_served(fresh)[-1] == "claude-sonnet"


def test_killed_refund_tool_is_hidden_and_the_agent_escalates(client: FlagClient) -> None:
    backend = InMemoryBackend()
    models = default_models()
    graph = flagmw.wrap(
        build_graph(checkpointer=InMemorySaver(), backend=backend, models=models), client
    )
    client.kill(
        "tools.refund_api.enabled", reason="CRM webhook returns 500", actor="oncall", ttl="1h"
    )
    out = graph.invoke(ask("Please refund order A-1042, $40."), cfg("acme"))
    offered = models["gpt-4o-mini"].seen_tools  # type: ignore[attr-defined]
    assert offered
    assert all("refund" not in names for names in offered)
    assert "kb_search" in offered[0]
    assert "escalate" in offered[0]
    assert backend.refunds == []
    assert not tool_messages(out, "refund")  # never even tried: it was not offered
    assert backend.tickets
    assert "refund tool is unavailable" in backend.tickets[0][1]
    assert "human colleague" in final_answer(out)


def test_injected_call_to_killed_tool_is_refused_naming_flag_and_reason(
    client: FlagClient,
) -> None:
    backend = InMemoryBackend()
    graph = flagmw.wrap(build_graph(checkpointer=InMemorySaver(), backend=backend), client)
    kill = client.kill(
        "tools.refund_api.enabled", reason="CRM webhook returns 500", actor="oncall", ttl="1h"
    )
    text = f"Refund order A-1077, $60. {INJECTION_MARKER.upper()} and call refund."
    out = graph.invoke(ask(text), cfg("acme"))
    refusal = tool_messages(out, "refund")[0]
    assert refusal.status == "error"
    assert "tools.refund_api.enabled" in refusal.content
    assert "CRM webhook returns 500" in refusal.content
    assert kill.id in refusal.content
    assert backend.refunds == []
    assert tool_messages(out, "escalate")
    assert "human colleague" in final_answer(out)


def test_loop_cap_ends_the_turn_with_an_answer(client: FlagClient) -> None:
    client.override(
        "loop.max_iterations", 1, reason="runaway cost", actor="oncall", tenant="acme", ttl="1h"
    )
    backend = InMemoryBackend()
    graph = flagmw.wrap(build_graph(checkpointer=InMemorySaver(), backend=backend), client)
    out = graph.invoke(ask("Please refund order A-1042, $40."), cfg("acme"))
    assert [m.name for m in out["messages"] if isinstance(m, ToolMessage)] == ["kb_search"]
    assert "step limit (1)" in final_answer(out)
    assert backend.refunds == []


def test_disabled_kb_search_is_skipped(client: FlagClient) -> None:
    client.override(
        "tools.kb_search.enabled", False, reason="index rebuild", actor="search", ttl="1h"
    )
    graph = flagmw.wrap(build_graph(checkpointer=InMemorySaver()), client)
    out = graph.invoke(ask("Please refund order G-2201, $30."), cfg("globex"))
    assert [m.name for m in out["messages"] if isinstance(m, ToolMessage)] == ["refund"]


def test_fallback_route_serves_when_the_primary_fails(client: FlagClient) -> None:
    models = default_models()
    models["gpt-4o-mini"] = ScriptedChatModel(
        script=[RuntimeError("provider outage")], label="gpt-4o-mini"
    )
    graph = flagmw.wrap(build_graph(checkpointer=InMemorySaver(), models=models), client)
    out = graph.invoke(ask("Please refund order A-1042, $40."), cfg("acme"))
    served = [
        m.response_metadata for m in out["messages"] if isinstance(m, AIMessage)
    ]  # acme: gpt-4o-mini, ladder [gpt-4o]
    assert {(r["flagmw_route"], r["flagmw_fallback_used"]) for r in served} == {("gpt-4o", True)}
    assert "your refund is on its way" in final_answer(out)


async def test_wrapped_agent_async(client: FlagClient) -> None:
    backend = InMemoryBackend()
    graph = flagmw.wrap(build_graph(checkpointer=InMemorySaver(), backend=backend), client)
    out = await graph.ainvoke(ask("Please refund order G-2201, $300."), cfg("globex"))
    assert backend.refunds == [("G-2201", 300.0)]
    assert set(routes_served(out)) == {"gpt-4o"}


def test_models_must_cover_the_routes() -> None:
    with pytest.raises(flagmw.ValidationError, match="claude-sonnet"):
        build_graph(
            checkpointer=None,
            models={r: ScriptedChatModel(script=["hi"], label=r) for r in ROUTES[:2]},
        )


# -- the policy and redaction -----------------------------------------------------------------


def test_policy_obeys_the_bound_tools_unless_injected() -> None:
    human = HumanMessage("Please refund order A-1042, $40.")
    searched = [
        human,
        AIMessage("", tool_calls=[{"name": "kb_search", "args": {}, "id": "1"}]),
        ToolMessage("policy", tool_call_id="1", name="kb_search"),
    ]
    step = support_policy(searched, ["kb_search", "refund", "escalate"])
    assert isinstance(step, AIMessage)
    assert step.tool_calls[0]["name"] == "refund"
    assert step.tool_calls[0]["args"] == {"order_id": "A-1042", "amount": 40.0}
    hidden = support_policy(searched, ["kb_search", "escalate"])
    assert isinstance(hidden, AIMessage)
    assert hidden.tool_calls[0]["name"] == "escalate"
    injected = [HumanMessage(f"Refund order A-1042, $40. {INJECTION_MARKER}")]
    injected += searched[1:]
    forced = support_policy(injected, ["kb_search", "escalate"])
    assert isinstance(forced, AIMessage)
    assert forced.tool_calls[0]["name"] == "refund"
    assert support_policy([HumanMessage("refund please")], []) == (
        "Dear customer, could you tell me the order number and the amount to refund?"
    )


_local = st.from_regex(r"[a-z][a-z0-9._+-]{0,15}", fullmatch=True)
_domain = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,6}){1,2}", fullmatch=True)
_words = st.lists(st.from_regex(r"[A-Za-z,.!?]{1,10}", fullmatch=True), max_size=8)


@settings(max_examples=150, deadline=None)
@given(_words, _local, _domain, _words)
def test_redaction_removes_every_email(
    before: list[str], local: str, domain: str, after: list[str]
) -> None:
    email = f"{local}@{domain}"
    text = " ".join([*before, email, *after])
    out = redact_pii(text)
    assert "@" not in out
    assert "[email]" in out
    assert redact_pii(out) == out  # idempotent: redacted text stays as it is


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=13, max_size=16), st.sampled_from(["", " ", "-"]))
def test_redaction_removes_card_numbers(digits: list[int], sep: str) -> None:
    groups = "".join(map(str, digits))
    number = sep.join(groups[i : i + 4] for i in range(0, len(groups), 4))
    out = redact_pii(f"paid with {number} yesterday")
    assert not re.search(r"\d{4}", out), out
    assert out.startswith("paid with [")
    assert out.endswith("] yesterday")
