"""Shadow runs through a real wrapped ``create_agent`` graph: the candidate version runs
on the same input on its own thread, a side-effecting tool is never executed there
(dry-run result), the comparison and the shadow's outcome are recorded, and a failing
or slow shadow never affects the primary run."""

from __future__ import annotations

import operator
import threading
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

import flagmw
from flagmw import FlagClient, FlagRegistry, MemoryStore
from flagmw.core.versions import VERSION_ATTR
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.shadow import shadow
from flagmw.rollout.store import open_rollout_store
from flagmw.rollout.versions import AgentVersion
from flagmw.testing.scripted import ScriptedChatModel, tool_call

REFUNDS: list[str] = []


@flagmw.gated("tools.refund_api.enabled", side_effects=True)
@tool
def refund(order_id: str) -> str:
    """Refund an order (money moves)."""
    REFUNDS.append(order_id)
    return f"refunded {order_id}"


@pytest.fixture
def setup(
    registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> Iterator[tuple[FlagClient, OutcomeRecorder]]:
    client = FlagClient(registry, MemoryStore())
    client.publish(snapshot_document, author="t", message="m")
    rs = open_rollout_store(client.store)
    v = AgentVersion.build(registry, "support-agent", "v1.3.3", {"loop.max_iterations": 3})
    rs.publish_version(v, author="ana", at=0.0)
    rec = OutcomeRecorder(rs, flush_interval=3600)
    REFUNDS.clear()
    yield client, rec
    rec.close()


def _script(messages: list[Any], tools: list[str]) -> Any:
    if any(getattr(m, "type", "") == "tool" for m in messages):
        return "Done: your refund is on its way."
    return tool_call("refund", {"order_id": "o-42"})


def test_a_shadow_never_executes_a_side_effecting_tool(
    setup: tuple[FlagClient, OutcomeRecorder],
) -> None:
    from langchain.agents import create_agent

    client, rec = setup
    agent = create_agent(
        ScriptedChatModel(script=_script), tools=[refund], checkpointer=InMemorySaver(),
        name="support-agent",
    )  # fmt: skip
    graph = flagmw.wrap(agent, client, observers=[rec])
    runner = shadow(graph, client=client, agent="support-agent", version="v1.3.3", share=100,
                    recorder=rec)  # fmt: skip
    cfg = {"configurable": {"thread_id": "user-1", "tenant_id": "acme"}}
    out = runner.invoke({"messages": [HumanMessage("refund o-42")]}, cfg)
    assert out["messages"][-1].content == "Done: your refund is on its way."
    runner.close()
    assert REFUNDS == ["o-42"], "the primary refunded once; the shadow never did"
    rec.flush()
    records = rec.store.outcomes()
    [cmp] = [o for o in records if o.get("kind") == "shadow"]
    assert cmp["primary_tools"] == cmp["shadow_tools"] == ["refund"]
    assert cmp["same_answer"] is True
    assert cmp["error"] is None
    assert cmp["shadow_thread_id"].startswith("shadow:user-1:")
    shadow_run = next(o for o in records if o.get("arm") == "shadow")
    assert (shadow_run["version"], shadow_run["outcome"]) == ("v1.3.3", "completed")
    # the user's thread holds only the primary run; the shadow's thread got the dry run
    user = agent.get_state(cfg).values["messages"]
    assert [m.content for m in user if m.type == "tool"] == ["refunded o-42"]
    shadow_state = agent.get_state({"configurable": {"thread_id": cmp["shadow_thread_id"]}})
    tool_msgs = [m.content for m in shadow_state.values["messages"] if m.type == "tool"]
    assert tool_msgs == ["[dry run] refund has side effects and was not executed (shadow run)."]


class S(TypedDict):
    log: Annotated[list[str], operator.add]


def test_a_failing_or_slow_shadow_never_touches_the_primary(
    setup: tuple[FlagClient, OutcomeRecorder],
) -> None:
    client, rec = setup
    release = threading.Event()

    def work(state: S) -> dict[str, Any]:
        version = flagmw.current().context.attributes.get(VERSION_ATTR)
        if version == "support-agent@v1.3.3":
            release.wait(10)
            raise RuntimeError("candidate crashed")
        return {"log": ["primary"]}

    b = StateGraph(S)
    b.add_node("work", work)
    b.add_edge(START, "work")
    graph = flagmw.wrap(b.compile(checkpointer=InMemorySaver(), name="support-agent"), client)
    runner = shadow(graph, client=client, agent="support-agent", version="v1.3.3", share=100,
                    recorder=rec, max_pending=1)  # fmt: skip
    for i in range(3):  # the first shadow blocks; the others cannot queue: skipped
        assert runner.invoke({"log": []}, {"configurable": {"thread_id": f"t-{i}"}}) == {
            "log": ["primary"]
        }
    assert runner.skipped == 2
    release.set()
    runner.close()
    rec.flush()
    [cmp] = [o for o in rec.store.outcomes() if o.get("kind") == "shadow"]
    assert cmp["error"] == "RuntimeError: candidate crashed"
    assert cmp["same_answer"] is False
    assert runner.compared == 1
    assert runner.failed == 0


def test_sampling_is_sticky_and_proportional(setup: tuple[FlagClient, OutcomeRecorder]) -> None:
    client, rec = setup
    runner = shadow(object(), client=client, agent="support-agent", version="v1.3.3", share=10,
                    recorder=rec)  # fmt: skip
    picks = [runner.sampled({"configurable": {"thread_id": f"t-{i}"}}) for i in range(5000)]
    assert 400 < sum(picks) < 600
    again = [runner.sampled({"configurable": {"thread_id": f"t-{i}"}}) for i in range(5000)]
    assert picks == again
    assert not runner.sampled({"configurable": {}})
    runner.close()


def test_status_summarises_shadow_comparisons(setup: tuple[FlagClient, OutcomeRecorder]) -> None:
    from flagmw.rollout.controller import RolloutController
    from flagmw.rollout.report import status_report

    client, rec = setup
    rs = rec.store
    v = AgentVersion.build(client.registry, "support-agent", "v1.3.2", {"loop.max_iterations": 8})
    rs.publish_version(v, author="ana", at=0.0)
    ctl = RolloutController(rs, clock=lambda: 100.0)
    r = ctl.start("support-agent", "v1.3.3", "v1.3.2", actor="ana")
    rs.record_outcomes(
        {"kind": "shadow", "at": 90.0 + i, "agent": "support-agent", "version": "v1.3.3",
         "same_answer": i < 3, "same_tools": True, "error": None if i else "boom",
         "primary_latency_ms": 100.0, "shadow_latency_ms": 150.0}
        for i in range(4)
    )  # fmt: skip
    sh = status_report(ctl, r)["shadow"]
    assert sh == {
        "runs": 4,
        "same_answer": 0.75,
        "same_tools": 1.0,
        "errors": 1,
        "primary_latency_ms": 100.0,
        "shadow_latency_ms": 150.0,
    }
