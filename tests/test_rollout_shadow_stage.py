"""A rollout's ``shadow`` stage end to end: real ``create_agent`` graphs wrapped by
flagmw on a SQLite store, a ShadowRunner following the rollout (no user run gets the
candidate, sampled baseline runs are shadowed on it, a side-effecting tool never runs
in a shadow), the controller advancing to the first traffic stage or rolling back on
the shadow runs' numbers, and the stage machine's properties with a shadow stage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, FixedClock
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

import flagmw
from flagmw import FlagClient, FlagRegistry, SQLiteStore
from flagmw.core.context import EvaluationContext
from flagmw.core.versions import VERSION_ATTR
from flagmw.rollout.controller import RolloutController
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.runtime import RolloutRuntime, attach
from flagmw.rollout.shadow import ShadowRunner, shadow
from flagmw.rollout.stages import SHADOW, Rollout, RolloutError, assign_arm, parse_stages
from flagmw.rollout.store import RolloutStore, open_rollout_store
from flagmw.rollout.versions import AgentVersion
from flagmw.testing.scripted import ScriptedChatModel, tool_call

REFUNDS: list[str] = []


class World:
    candidate_fails = False
    candidate_answer = "Done: your refund is on its way."


WORLD = World()


@flagmw.gated("tools.refund_api.enabled", side_effects=True)
@tool
def refund(order_id: str) -> str:
    """Refund an order (money moves)."""
    REFUNDS.append(order_id)
    return f"refunded {order_id}"


def _script(messages: list[Any], tools: list[str]) -> Any:
    version = str(flagmw.current().context.attributes.get(VERSION_ATTR))
    candidate = version.endswith("v1.3.3")
    if any(getattr(m, "type", "") == "tool" for m in messages):
        if candidate and WORLD.candidate_fails:
            raise RuntimeError("candidate model outage")
        return WORLD.candidate_answer if candidate else "Done: your refund is on its way."
    return tool_call("refund", {"order_id": "o-42"})


Setup = tuple[FlagClient, RolloutStore, FixedClock, OutcomeRecorder, RolloutRuntime, Any]


@pytest.fixture
def setup(
    tmp_path: Path, registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> Iterator[Setup]:
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
    agent = create_agent(
        ScriptedChatModel(script=_script), tools=[refund], checkpointer=InMemorySaver(),
        name="support-agent",
    )  # fmt: skip
    graph = flagmw.wrap(agent, client, observers=[rec])
    REFUNDS.clear()
    WORLD.candidate_fails = False
    WORLD.candidate_answer = "Done: your refund is on its way."
    yield client, rs, clock, rec, rt, graph
    rt.close()
    rec.close()
    rs.close()
    client.close()


def _traffic(runner: ShadowRunner, rec: OutcomeRecorder, n: int, prefix: str = "t") -> None:
    for i in range(n):
        cfg = {"configurable": {"thread_id": f"{prefix}-{i}", "tenant_id": f"tenant-{i}"}}
        out = runner.invoke({"messages": [HumanMessage("refund o-42")]}, cfg)
        assert out["messages"][-1].content == "Done: your refund is on its way."
    runner.close()
    rec.flush()


def _start(ctl: RolloutController, **kw: Any) -> Rollout:
    args: dict[str, Any] = {
        "unit": "tenant",
        "min_duration": "30m",
        "min_runs": 6,
        "shadow_share": 100,
        "guardrails": [{"metric": "error_rate", "max": 0.2}],
        "actor": "ana",
    }
    return ctl.start("support-agent", "v1.3.3", "v1.3.2", "shadow,25,100", **(args | kw))


def test_the_shadow_stage_shadows_baseline_runs_then_advances(setup: Setup) -> None:
    client, rs, clock, rec, rt, graph = setup
    ctl = RolloutController(rs, clock=clock)
    r = _start(ctl)
    assert (r.stages, r.share, r.in_shadow, r.stage_label) == ((0, 25, 100), 0, True, "shadow")
    rt.refresh()
    runner = shadow(graph, client=client, agent="support-agent", recorder=rec, rollouts=rt)
    _traffic(runner, rec, 8)
    records = rs.outcomes()
    primaries = [o for o in records if o.get("arm") == "baseline"]
    shadows = [o for o in records if o.get("arm") == "shadow"]
    compared = [o for o in records if o.get("kind") == "shadow"]
    # no user run got the candidate; every run was shadowed (share 100 %) on it
    assert {(o["version"], o["stage"]) for o in primaries} == {("v1.3.2", 0)}
    assert len(primaries) == len(shadows) == len(compared) == 8
    assert {(o["version"], o["stage"], o["rollout"]) for o in shadows} == {
        ("v1.3.3", SHADOW, r.name)
    }
    assert all(o["same_answer"] and o["same_tools"] for o in compared)
    # the refund ran once per primary run, never in a shadow
    assert REFUNDS == ["o-42"] * 8
    # the status shows the shadow stage, the shadow arm and the comparisons
    from typer.testing import CliRunner

    from flagmw.cli.app import app

    db = str(client.store.name).removeprefix("sqlite:")
    status = CliRunner().invoke(app, ["--store", db, "rollout", "status", "--no-plot"])
    assert status.exit_code == 0, status.output
    assert "shadow stage: 100 % of tenants shadowed" in status.output
    assert "shadow runs of v1.3.3: 8, same answer 100 %, same tools 100 %" in status.output
    assert "traffic split" not in status.output  # no split to test in a shadow stage
    cells = [
        [c.strip() for c in ln.split("│") if c.strip()]
        for ln in status.output.splitlines()
        if "v1.3." in ln
    ]
    assert {tuple(row[:3]) for row in cells if len(row) >= 3} >= {
        ("shadow", "shadow", "v1.3.3"),
        ("shadow", "baseline", "v1.3.2"),
    }
    # too early: the stage's minimum duration
    [res] = ctl.tick()
    assert res.action == "wait"
    assert "minimum duration" in res.reason
    clock.advance(31 * 60)
    [res] = ctl.tick()
    assert res.action == "advance", res.reason
    assert res.reason.startswith("shadow runs hold: error rate 0.0 % ≤ 20.0 % over 8 runs")
    assert res.share == 25
    [entry] = [e for e in rs.audit(10) if e["action"] == "rollout.advance"]
    assert entry["details"]["stage"] == "shadow"
    assert entry["details"]["candidate"]["runs"] == 8
    assert (entry["details"]["share_before"], entry["details"]["share_after"]) == (0, 25)
    # out of the shadow stage the runner shadows nothing; the candidate takes traffic
    rt.refresh()
    runner = shadow(graph, client=client, agent="support-agent", recorder=rec, rollouts=rt)
    assert runner.target() is None
    _traffic(runner, rec, 40, prefix="u")
    assert runner.started == 0
    fresh = [o for o in rs.outcomes() if str(o.get("thread_id", "")).startswith("u-")]
    arms = {o["arm"] for o in fresh}
    assert arms == {"candidate", "baseline"}
    assert {o["stage"] for o in fresh} == {25}


def test_a_failing_shadow_rolls_back_and_never_touches_the_primary(setup: Setup) -> None:
    client, rs, clock, rec, rt, graph = setup
    WORLD.candidate_fails = True
    ctl = RolloutController(rs, clock=clock)
    r = _start(ctl)
    rt.refresh()
    runner = shadow(graph, client=client, agent="support-agent", recorder=rec, rollouts=rt)
    _traffic(runner, rec, 6)  # every primary answered (asserted in _traffic)
    assert runner.compared == 6
    [res] = ctl.tick()  # a failed guardrail rolls back at once, whatever the duration
    assert res.action == "rollback"
    assert res.reason == "error rate 100.0 % > 20.0 % over 6 runs"
    after = ctl.get(r.name)
    assert (after.status, after.share, after.in_shadow) == ("rolled_back", 0, False)
    [entry] = [e for e in rs.audit(10) if e["action"] == "rollout.rollback"]
    assert entry["details"]["stage"] == "shadow"
    assert entry["details"]["candidate"]["errors"] == 6
    assert REFUNDS == ["o-42"] * 6
    rt.refresh()
    assert runner.target() is None


def test_a_low_same_answer_rate_rolls_the_shadow_stage_back(setup: Setup) -> None:
    client, rs, clock, rec, rt, graph = setup
    WORLD.candidate_answer = "Refund refused."
    ctl = RolloutController(rs, clock=clock)
    r = _start(ctl, shadow_agreement=0.9)
    assert r.shadow_agreement == 0.9
    rt.refresh()
    runner = shadow(graph, client=client, agent="support-agent", recorder=rec, rollouts=rt)
    _traffic(runner, rec, 6)
    clock.advance(3600)
    [res] = ctl.tick()
    assert (res.action, res.reason) == ("rollback", "same answer 0.0 % < 90.0 % over 6 shadow runs")


def test_the_shadow_share_samples_sticky_units_of_the_rollout(setup: Setup) -> None:
    client, rs, clock, rec, rt, graph = setup
    ctl = RolloutController(rs, clock=clock)
    _start(ctl, shadow_share=10)
    rt.refresh()
    runner = shadow(graph, client=client, agent="support-agent", recorder=rec, rollouts=rt)
    cfgs = [
        {"configurable": {"thread_id": f"x-{i}", "tenant_id": f"t{i % 500}"}} for i in range(3000)
    ]
    picks = [runner.sampled(c) for c in cfgs]
    assert 0.07 < sum(picks) / len(picks) < 0.13
    # sticky by the rollout's unit: one tenant, one decision, whatever the thread
    by_tenant: dict[str, set[bool]] = {}
    for c, p in zip(cfgs, picks, strict=True):
        by_tenant.setdefault(c["configurable"]["tenant_id"], set()).add(p)
    assert all(len(v) == 1 for v in by_tenant.values())
    assert not runner.sampled({"configurable": {"thread_id": "no-tenant"}})
    # a paused rollout shadows nothing; a killed candidate is never shadowed
    ctl.pause(ctl.rollouts()[0].name, actor="ana", reason="hold")
    rt.refresh()
    assert runner.target() is None
    runner.close()
    with pytest.raises(ValueError, match="version"):
        shadow(graph, client=client, agent="support-agent", recorder=rec)


def test_start_from_the_command_line_with_a_shadow_stage(tmp_path: Path, setup: Setup) -> None:
    from typer.testing import CliRunner

    from flagmw.cli.app import app

    client, rs = setup[:2]
    db = str(client.store.name).removeprefix("sqlite:")
    bad = CliRunner().invoke(
        app,
        ["--store", db, "rollout", "start", "support-agent", "--name", "x",
         "--candidate", "v1.3.3", "--baseline", "v1.3.2", "--stages", "1,shadow,100"],
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "optionally led by shadow" in bad.output
    assert RolloutController(rs).rollouts() == []  # nothing started
    res = CliRunner().invoke(
        app,
        ["--store", db, "--actor", "ana", "rollout", "start", "support-agent",
         "--candidate", "v1.3.3", "--baseline", "v1.3.2", "--stages", "shadow,1,5,100",
         "--shadow-share", "20", "--shadow-agreement", "0.8"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "shadow stage: 20 % of tenants shadowed (stages shadow,1,5,100)" in res.output
    [r] = RolloutController(rs).rollouts()
    assert (r.stages, r.shadow_share, r.shadow_agreement) == ((0, 1, 5, 100), 20, 0.8)


# -- the stage machine with a shadow stage (properties) -------------------------------------

OPS = ("advance", "pause", "resume", "rollback", "abort")
stage_lists = st.tuples(
    st.booleans(),
    st.lists(st.integers(min_value=1, max_value=9999), max_size=5, unique=True),
).map(lambda t: ("shadow",) * t[0] + (*sorted(x / 100 for x in t[1]), 100))


def _apply(r: Rollout, op: str, at: float) -> Rollout:
    if op == "advance":
        return r.advance(at, "t")
    if op in ("pause", "rollback", "abort"):
        return getattr(r, op)(at, "t", "why")
    return r.resume(at, "t")


@given(
    stage_lists,
    st.lists(st.sampled_from(OPS), max_size=30),
    st.lists(st.text(max_size=8), max_size=20),
)
def test_with_a_shadow_stage_shares_only_grow_and_units_never_leave(
    stages: tuple[Any, ...], ops: list[str], units: list[str]
) -> None:
    r = Rollout.start("r", "a", "v2", "v1", stages, unit="user", at=0.0, actor="t")
    assert r.in_shadow == (stages[0] == "shadow")
    inside: set[str] = set()
    shares = [r.share]
    for i, op in enumerate(ops):
        now = {u for u in units if assign_arm(r, EvaluationContext(user_id=u)) == "candidate"}
        if r.in_shadow:
            assert r.share == 0
            assert now == set(), "no user run gets the candidate in the shadow stage"
        if r.active:
            assert inside <= now, "a unit admitted stays admitted while the share grows"
        inside = now
        before = r
        try:
            r = _apply(r, op, float(i + 1))
        except RolloutError:
            assert r == before
            continue
        if op in ("rollback", "abort"):
            assert r.share == 0
            assert not r.active
            assert not r.in_shadow
        else:
            assert r.share >= shares[-1]
        shares.append(r.share)
    assert [h["share"] for h in r.history] == shares
    assert Rollout.from_dict(r.to_dict()) == r


def test_shadow_stage_lists_are_checked() -> None:
    assert parse_stages("shadow,1,5,25,50,100") == (0, 1, 5, 25, 50, 100)
    assert parse_stages(["shadow", 100]) == (0, 100)
    for bad in ("1,shadow,100", "shadow", "shadow,shadow,100", "0,100", "shadow,0,100"):
        with pytest.raises(RolloutError):
            parse_stages(bad)
    for share in (0, -1, 101):
        with pytest.raises(RolloutError, match="shadow share"):
            Rollout.start("r", "a", "v2", "v1", "shadow,100", shadow_share=share, at=0, actor="t")
    with pytest.raises(RolloutError, match="agreement"):
        Rollout.start("r", "a", "v2", "v1", "shadow,100", shadow_agreement=2, at=0, actor="t")
    plain = Rollout.start("r", "a", "v2", "v1", "1,100", shadow_share=50, at=0, actor="t")
    assert (plain.shadow_share, plain.in_shadow) == (0, False)  # no shadow stage: no share
