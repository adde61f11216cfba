"""Shadow runs of a ``create_agent`` agent from its middleware alone (no ``flagmw.wrap``,
no wrapper around ``invoke``): ShadowMiddleware following a rollout's shadow stage on
a real SQLite store — the user's turn is served by the baseline, the candidate runs the
same conversation on its own thread with the side-effecting tool dry-run, the shadow's
outcome and the comparison are recorded, and the controller judges them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, FixedClock
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver

import flagmw
from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.core.versions import VERSION_ATTR
from flagmw.integrations.langchain import FlagmwMiddleware, OutcomeMiddleware, ShadowMiddleware
from flagmw.rollout.controller import RolloutController
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.runtime import attach
from flagmw.rollout.store import open_rollout_store
from flagmw.rollout.versions import AgentVersion
from flagmw.testing.scripted import ScriptedChatModel, tool_call

REFUNDS: list[str] = []
SEEN: list[tuple[str, int]] = []  # (version, messages the model saw)


@flagmw.gated("tools.refund_api.enabled", side_effects=True)
@tool
def refund(order_id: str) -> str:
    """Refund an order (money moves)."""
    REFUNDS.append(order_id)
    return f"refunded {order_id}"


def _script(messages: list[Any], tools: list[str]) -> Any:
    version = str(flagmw.current().context.attributes.get(VERSION_ATTR))
    SEEN.append((version, len(messages)))
    last = messages[-1]
    if getattr(last, "type", "") == "tool":
        return "Done: refunded." if version.endswith("v1.3.2") else "Refund sent."
    if "status" in str(last.content):
        return "All good."
    return tool_call("refund", {"order_id": "o-42"})


@pytest.fixture
def world(
    tmp_path: Path, registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    from langchain.agents import create_agent

    clock = FixedClock(T0)
    store = SQLiteStore(tmp_path / "flags.db", create=True)
    client = FlagClient(registry, store, clock=clock)
    client.publish(snapshot_document, author="t", message="m")
    rs = open_rollout_store(store)
    for version, cap in (("v1.3.2", 8), ("v1.3.3", 6)):
        v = AgentVersion.build(registry, "support-agent", version, {"loop.max_iterations": cap})
        rs.publish_version(v, author="ana", at=clock())
    rec = OutcomeRecorder(rs, clock=clock, flush_interval=3600)
    rt = attach(client, rs, background=False)
    mw = FlagmwMiddleware(client, name="support-agent", observers=[rec])
    sm = ShadowMiddleware(client=client, agent="support-agent", recorder=rec, rollouts=rt)
    with SqliteSaver.from_conn_string(str(tmp_path / "checkpoints.db")) as saver:
        agent = sm.bind(
            create_agent(
                ScriptedChatModel(script=_script), tools=[refund], checkpointer=saver,
                middleware=[mw, OutcomeMiddleware(rec, mw), sm],
            )
        )  # fmt: skip
        REFUNDS.clear()
        SEEN.clear()
        yield {"client": client, "rs": rs, "clock": clock, "rec": rec, "rt": rt, "sm": sm,
               "agent": agent}  # fmt: skip
    sm.close()
    rt.close()
    rec.close()
    rs.close()
    client.close()


def test_the_middleware_alone_shadows_a_rollouts_shadow_stage(world: dict[str, Any]) -> None:
    agent, rs, rec, sm = world["agent"], world["rs"], world["rec"], world["sm"]
    ctl = RolloutController(rs, clock=world["clock"])
    r = ctl.start("support-agent", "v1.3.3", "v1.3.2", "shadow,100", unit="tenant",
                  min_duration=0, min_runs=4, shadow_share=100,
                  guardrails=[{"metric": "error_rate", "max": 0.1}], actor="ana")  # fmt: skip
    world["rt"].refresh()
    for i in range(4):
        cfg = {"configurable": {"thread_id": f"user-{i}", "tenant_id": f"tenant-{i}"}}
        out = agent.invoke({"messages": [HumanMessage("refund o-42")]}, cfg)
        assert out["messages"][-1].content == "Done: refunded."
    # a second turn on one thread: the shadow replays the conversation so far
    cfg0 = {"configurable": {"thread_id": "user-0", "tenant_id": "tenant-0"}}
    out = agent.invoke({"messages": [HumanMessage("status?")]}, cfg0)
    assert out["messages"][-1].content == "All good."
    sm.runner.close()
    rec.flush()
    assert REFUNDS == ["o-42"] * 4, "only the primaries refunded"
    records = rs.outcomes()
    compared = [o for o in records if o.get("kind") == "shadow"]
    assert len(compared) == 5
    first = [o for o in compared if o["primary_tools"]]
    assert len(first) == 4
    assert all(o["shadow_tools"] == ["refund"] for o in first)
    assert not any(o["same_answer"] for o in first)  # "Refund sent." vs "Done: refunded."
    [second] = [o for o in compared if not o["primary_tools"]]
    assert (second["same_answer"], second["shadow_tools"]) == (True, [])
    # the candidate saw the whole conversation in the second turn's shadow (5 messages)
    assert ("support-agent@v1.3.3", 5) in SEEN
    # the user's threads hold only primary turns; nothing of the shadow reached them
    state = agent.get_state(cfg0).values["messages"]
    assert [m.content for m in state if m.type == "tool"] == ["refunded o-42"]
    shadow_cfg = {"configurable": {"thread_id": first[0]["shadow_thread_id"]}}
    shadow_state = agent.get_state(shadow_cfg)
    tool_msgs = [m.content for m in shadow_state.values["messages"] if m.type == "tool"]
    assert tool_msgs == ["[dry run] refund has side effects and was not executed (shadow run)."]
    runs = [o for o in records if o.get("outcome") is not None]
    assert {(o["arm"], o["version"], o["stage"]) for o in runs} == {
        ("baseline", "v1.3.2", 0),
        ("shadow", "v1.3.3", 0),
    }
    [res] = ctl.tick()
    assert (res.action, res.share) == ("advance", 100), res.reason
    assert res.reason.startswith("shadow runs hold: error rate 0.0 % ≤ 10.0 % over 5 runs")
    after = ctl.get(r.name)
    assert (after.status, after.in_shadow) == ("running", False)


def test_a_fixed_version_and_an_unbound_middleware(
    world: dict[str, Any], registry: FlagRegistry
) -> None:
    rec, client = world["rec"], world["client"]
    unbound = ShadowMiddleware(client=client, agent="support-agent", recorder=rec,
                               version="v1.3.3", share=100)  # fmt: skip
    assert unbound.runner.target() is not None
    unbound.runner.offer({"messages": []}, {"configurable": {"thread_id": "x"}}, {}, 1.0)
    assert unbound.runner.started == 0  # no graph bound: nothing to shadow with
    unbound.close()
    with pytest.raises(ValueError, match="ShadowRunner or shadow"):
        ShadowMiddleware()


def test_the_async_hooks_shadow_too(
    tmp_path: Path, registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> None:
    import asyncio

    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    client = FlagClient(registry, SQLiteStore(tmp_path / "a.db", create=True))
    client.publish(snapshot_document, author="t", message="m")
    rs = open_rollout_store(client.store)
    v = AgentVersion.build(registry, "support-agent", "v1.3.3", {"loop.max_iterations": 6})
    rs.publish_version(v, author="ana", at=0.0)
    rec = OutcomeRecorder(rs, flush_interval=3600)
    mw = FlagmwMiddleware(client, name="support-agent", observers=[rec])
    sm = ShadowMiddleware(client=client, agent="support-agent", recorder=rec,
                          version="v1.3.3", share=100)  # fmt: skip
    agent = sm.bind(
        create_agent(ScriptedChatModel(script=_script), tools=[refund],
                     checkpointer=InMemorySaver(), middleware=[mw, OutcomeMiddleware(rec, mw), sm])
    )  # fmt: skip
    REFUNDS.clear()
    cfg = {"configurable": {"thread_id": "async-1", "tenant_id": "acme"}}
    out = asyncio.run(agent.ainvoke({"messages": [HumanMessage("refund o-42")]}, cfg))
    assert out["messages"][-1].content == "Refund sent."  # no rollout: no version assigned
    sm.close()
    rec.close()
    [cmp] = [o for o in rs.outcomes() if o.get("kind") == "shadow"]
    assert (cmp["version"], cmp["shadow_tools"], cmp["error"]) == ("v1.3.3", ["refund"], None)
    assert REFUNDS == ["o-42"]
    rs.close()
    client.close()
