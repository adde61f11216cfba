"""Config canaries (issue 12 §3) end to end: a snapshot rev rolled out to a growing share
of tenants through real wrapped LangGraph runs on a real SQLite store file, with the
same controller, guardrails and audit as agent versions.

* stages advance on good outcomes; scripted failures on the canary rev roll it back
  automatically, with the numbers in the audit log; new runs get the baseline's content
  at once (the controller published it as a plain rev);
* a candidate run waiting for approval resumes on its pinned canary rev;
* the root span of a run names its snapshot rev and stage;
* a client without the rollout runtime (or whose runtime has not read the rollout)
  serves the baseline to everyone;
* a completed canary leaves a plain rev with the canary's content;
* plain publishes, rollbacks and overlay publishes are refused while a canary is live;
* units only join the candidate as the share grows (property).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from conftest import T0, FixedClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flagmw
from flagmw import EvaluationContext, FlagClient, FlagRegistry, MemoryStore, SQLiteStore
from flagmw.client.canary import CONFIG_REV_ATTR, CanaryInProgressError
from flagmw.errors import ConflictError, FlagmwError, StoreUnavailableError
from flagmw.rollout.canary import start_canary
from flagmw.rollout.controller import RolloutController
from flagmw.rollout.outcomes import OutcomeRecorder
from flagmw.rollout.report import status_report
from flagmw.rollout.runtime import attach
from flagmw.rollout.stages import RolloutError
from flagmw.rollout.store import RolloutStore, open_rollout_store
from flagmw.rollout.versions import AgentVersion
from flagmw.tracing import RunTracer

RAILS = [{"metric": "error_rate", "baseline_plus": 0.02}, {"metric": "error_rate", "max": 0.2}]
KEY = "loop.max_iterations"


class S(TypedDict):
    ask: bool
    log: list[str]


class World:
    fail_rev: int | None = None


def _graph(world: World, saver: Any) -> Any:
    def work(state: S) -> dict[str, Any]:
        rc = flagmw.current()
        if state.get("ask"):
            interrupt("approve?")
        if world.fail_rev is not None and rc.snapshot_rev == world.fail_rev:
            raise RuntimeError("the canary config breaks refunds")
        return {"log": [f"rev {rc.snapshot_rev} max={rc[KEY]}", f"model={rc['model.primary']}"]}

    b = StateGraph(S)
    b.add_node("work", work)
    b.add_edge(START, "work")
    return b.compile(checkpointer=saver, name="support-agent")


def _doc(snapshot_document: dict[str, Any], cap: int) -> dict[str, Any]:
    doc = dict(snapshot_document)
    model = "gpt-4o-mini" if cap == 6 else "gpt-4o"  # a pinned key beside the hot one
    doc["values"] = {**doc.get("values", {}), KEY: cap, "model.primary": model}
    return doc


@pytest.fixture
def world(
    tmp_path: Path, registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> Iterator[tuple[FlagClient, RolloutStore, FixedClock, Path]]:
    clock = FixedClock(T0)
    store = SQLiteStore(tmp_path / "flags.db", create=True)
    client = FlagClient(registry, store, clock=clock)
    client.publish(_doc(snapshot_document, 8), author="t", message="baseline")
    rs = open_rollout_store(store)
    yield client, rs, clock, tmp_path
    rs.close()
    client.close()


@pytest.fixture
def saver(tmp_path: Path) -> Iterator[SqliteSaver]:
    conn = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
    yield SqliteSaver(conn)
    conn.close()


def test_a_config_canary_advances_then_rolls_back_automatically(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    registry: FlagRegistry,
    snapshot_document: dict[str, Any],
    saver: SqliteSaver,
) -> None:
    client, rs, clock, tmp_path = world
    # a worker that does not take part: no rollout runtime, its own store handle
    plain = FlagClient(registry, SQLiteStore(tmp_path / "flags.db"), clock=clock)
    rt = attach(client, rs, background=False)
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    started = start_canary(
        client,
        _doc(snapshot_document, 6),
        stages="10,50,100",
        unit="tenant",
        min_duration="10m",
        min_runs=20,
        guardrails=RAILS,
        author="ana",
        message="cap the loop at 6",
        controller=ctl,
    )
    r = started.rollout
    assert (started.publish.rev, started.publish.parent_rev) == (2, 1)
    assert (r.name, r.kind, r.candidate, r.baseline, r.share) == (
        "config-rev-2",
        "config",
        "rev-2",
        "rev-1",
        10,
    )
    head = client.store.head()
    assert head is not None
    assert (head.rev, head.action, head.rollback_of) == (2, "canary", 1)
    st_ = client.status()
    assert (st_.head_rev, st_.snapshot_rev, st_.canary_rev, st_.stale) == (2, 1, 2, False)
    assert rs.audit()[-1]["action"] == "rollout.start"

    rt.refresh()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rec = OutcomeRecorder(rs, clock=clock, flush_interval=3600)
    fw = World()
    graph = flagmw.wrap(
        _graph(fw, saver), client, observers=[rec], tracer=RunTracer(tracer_provider=provider)
    )
    plain_graph = flagmw.wrap(_graph(fw, saver), plain)
    n = iter(range(10**6))

    def traffic(runs: int, tenants: int = 200, g: Any = graph) -> dict[str, set[str]]:
        seen: dict[str, set[str]] = {}
        for i in range(runs):
            tenant = f"tenant-{i % tenants:03d}"
            cfg = {"configurable": {"thread_id": f"t-{next(n)}", "tenant_id": tenant}}
            try:
                key = g.invoke({"ask": False, "log": []}, cfg)["log"][0]
            except RuntimeError:
                key = "failed"
            seen.setdefault(key, set()).add(tenant)
        rec.flush()
        return seen

    seen = traffic(400)
    assert set(seen) == {"rev 1 max=8", "rev 2 max=6"}
    at_10 = seen["rev 2 max=6"]
    assert 8 <= len(at_10) <= 35  # ~10 % of 200 tenants, sticky per tenant
    assert not at_10 & seen["rev 1 max=8"]
    # the worker without the runtime serves the baseline to every tenant, candidates too
    assert traffic(60, g=plain_graph) == {"rev 1 max=8": {f"tenant-{i:03d}" for i in range(60)}}
    assert plain.value(KEY, EvaluationContext(tenant_id=min(at_10))) == 8
    # the root span names the rev and the stage; the RunConfig pins the arm
    roots = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent support-agent"]
    cand_spans = [s for s in roots if (s.attributes or {}).get("flagmw.snapshot_rev") == 2]
    assert cand_spans
    a = dict(cand_spans[0].attributes or {})
    assert (a["flagmw.rollout"], a["flagmw.stage"]) == ("config-rev-2", 10)

    [t] = ctl.tick()
    assert t.action == "wait"
    assert "minimum duration" in t.reason
    clock.advance(600)
    [t] = ctl.tick()
    assert (t.action, t.share) == ("advance", 50)
    rt.refresh()
    seen = traffic(400)
    assert at_10 <= seen["rev 2 max=6"]  # a tenant in at 10 % is still in at 50 %
    assert 60 <= len(seen["rev 2 max=6"]) <= 140

    # candidate runs wait for approval at 50 %
    pending = []
    for i in range(30):
        tenant = f"tenant-{i:03d}"
        cfg = {"configurable": {"thread_id": f"hitl-{i}", "tenant_id": tenant}}
        graph.invoke({"ask": True, "log": []}, cfg)
        if tenant in seen["rev 2 max=6"]:
            pending.append(cfg)
    assert len(pending) >= 3
    rec.flush()

    # the canary rev regresses: the next tick rolls back, publishing rev 1's content
    fw.fail_rev = 2
    seen = traffic(200)
    assert len(seen["failed"]) >= 20
    [t] = ctl.tick()
    assert (t.action, t.share) == ("rollback", 0)
    assert re.match(r"error rate [\d.]+ % > baseline 0\.0 % \+ 2 points over \d+ runs", t.reason)
    entry = rs.audit()[-1]
    assert entry["action"] == "rollout.rollback"
    assert (entry["details"]["share_before"], entry["details"]["share_after"]) == (50, 0)
    assert entry["details"]["candidate"]["error_rate"] > 0.2
    assert entry["details"]["baseline"]["error_rate"] == 0.0
    head = client.store.head()
    assert head is not None
    assert (head.rev, head.parent_rev, head.action, head.rollback_of) == (3, 2, "rollback", 1)
    assert head.content_hash == client.store.get_snapshot(1).info.content_hash
    # new runs get the baseline's content at once, on both workers, runtime refreshed or not
    assert traffic(100) == {"rev 3 max=8": {f"tenant-{i:03d}" for i in range(100)}}
    assert set(traffic(20, g=plain_graph)) == {"rev 3 max=8"}
    assert client.status().canary_rev is None
    # a waiting candidate run resumes on its pinned canary rev; its hot key re-resolves
    # against the head, which after the rollback has the baseline's content
    fw.fail_rev = None
    out = graph.invoke(Command(resume="yes"), pending[0])
    assert out["log"] == ["rev 2 max=8", "model=gpt-4o-mini"]
    # the status report has both arms per stage
    rep = status_report(ctl, ctl.get("config-rev-2"))
    arms = {(row["stage"], row["arm"], row["version"]) for row in rep["stages"]}
    assert {(10, "candidate", "rev-2"), (10, "baseline", "rev-1")} <= arms
    assert rep["rollout"]["status"] == "rolled_back"
    # and the plot draws both arms' runs (config runs carry no agent version)
    from flagmw.rollout.plot import plot_rollout

    done = ctl.get("config-rev-2")
    plot_rollout(done, ctl.outcomes(done), tmp_path / "drawn.png")
    plot_rollout(done, [], tmp_path / "empty.png")
    drawn = (tmp_path / "drawn.png").read_bytes()
    assert drawn[:8] == b"\x89PNG\r\n\x1a\n"
    assert drawn != (tmp_path / "empty.png").read_bytes()
    rec.close()
    plain.close()


def test_a_completed_canary_leaves_a_plain_rev_with_its_content(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    registry: FlagRegistry,
    snapshot_document: dict[str, Any],
) -> None:
    client, rs, clock, tmp_path = world
    plain = FlagClient(registry, SQLiteStore(tmp_path / "flags.db"), clock=clock)
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    s = start_canary(
        client,
        _doc(snapshot_document, 6),
        stages="50,100",
        min_runs=0,
        min_duration=0,
        author="ana",
        message="m",
        controller=ctl,
    )
    rt = attach(client, rs, background=False)
    rc = client.resolve(EvaluationContext(tenant_id="a"))
    assert rc.context.attributes[CONFIG_REV_ATTR] in (1, 2)
    assert ctl.advance(s.rollout.name, actor="ana").share == 100
    rt.refresh()
    revs = {client.resolve(EvaluationContext(tenant_id=f"t{i}")).snapshot_rev for i in range(50)}
    assert revs == {2}
    assert plain.resolve(EvaluationContext(tenant_id="t1")).snapshot_rev == 1  # not taking part
    done = ctl.advance(s.rollout.name, actor="ana")
    assert (done.status, done.share) == ("completed", 100)
    head = client.store.head()
    assert head is not None
    assert (head.rev, head.action, head.rollback_of) == (3, "publish", None)
    assert head.content_hash == s.publish.content_hash
    plain.poll()
    assert (plain.snapshot_rev, plain.value(KEY)) == (3, 6)
    assert plain.status().canary_rev is None
    assert [e["action"] for e in rs.audit()][-1] == "rollout.complete"
    # the canary is over: plain publishes work again
    assert client.publish(_doc(snapshot_document, 7), author="t", message="next").rev == 4
    rt.close()
    plain.close()


def test_publishes_during_a_canary_are_refused(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
) -> None:
    client, rs, clock, _ = world
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    start_canary(client, _doc(snapshot_document, 6), author="a", message="m", controller=ctl)
    attempts = [
        lambda: client.publish(_doc(snapshot_document, 7), author="a", message="m"),
        lambda: client.rollback(1, author="a", message="m"),
        lambda: client.publish_tenant("acme", {"values": {KEY: 3}}, author="a", message="m"),
        lambda: client.publish_overlays({"routes": {"x": None}}, author="a", message="m"),
        lambda: start_canary(client, _doc(snapshot_document, 5), author="a", message="m"),
    ]
    for attempt in attempts:
        with pytest.raises(CanaryInProgressError, match="config-rev-2") as info:
            attempt()
        assert isinstance(info.value, ConflictError)  # the CLI's exit 3, the console's 409
        assert "flagmw rollout abort config-rev-2" in str(info.value)
    assert client.store.head().rev == 2  # type: ignore[union-attr]
    # kills and overrides still reach both arms
    client.override(KEY, 2, reason="incident", actor="oncall")
    for rev in (1, 2):
        ctx = EvaluationContext(tenant_id="x", attributes={CONFIG_REV_ATTR: rev})
        assert client.resolve(ctx)[KEY] == 2
    # no other rollout starts while the canary is active
    reg = client.registry
    for v in ("v1", "v2"):
        rs.publish_version(AgentVersion.build(reg, "a", v, {KEY: 3}), author="a", at=clock())
    with pytest.raises(RolloutError, match="config-rev-2"):
        ctl.start("a", "v2", "v1", actor="a")
    # a rollback by hand publishes the baseline's content; publishing works again
    ctl.rollback("config-rev-2", actor="oncall", reason="by hand")
    assert client.store.head().rollback_of == 1  # type: ignore[union-attr]
    assert client.publish(_doc(snapshot_document, 7), author="a", message="m").rev == 4
    # and a canary does not start while a version rollout is active (nothing published)
    ctl.start("a", "v2", "v1", actor="a")
    with pytest.raises(RolloutError, match="a-2"):
        start_canary(client, _doc(snapshot_document, 5), author="a", message="m", controller=ctl)
    assert client.store.head().rev == 4  # type: ignore[union-attr]
    ctl.abort("a-2", actor="a", reason="r")
    with pytest.raises(FlagmwError, match="nothing to roll out"):
        start_canary(client, _doc(snapshot_document, 7), author="a", message="m", controller=ctl)


def test_hot_keys_follow_the_arm_then_the_end_of_the_canary(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
) -> None:
    client, rs, clock, _ = world
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    start_canary(client, _doc(snapshot_document, 6), author="a", message="m", controller=ctl)
    cand = client.resolve(EvaluationContext(tenant_id="x", attributes={CONFIG_REV_ATTR: 2}))
    base = client.resolve(EvaluationContext(tenant_id="x", attributes={CONFIG_REV_ATTR: 1}))
    assert (cand.snapshot_rev, cand[KEY], base.snapshot_rev, base[KEY]) == (2, 6, 1, 8)
    assert client.resolve_hot(cand) is cand
    assert client.resolve_hot(base) is base
    ctl.abort("config-rev-2", actor="oncall", reason="r")
    client.poll()  # a step boundary
    moved = client.resolve_hot(cand)
    assert moved[KEY] == 8  # after the rollback: the baseline's content
    assert [c.key for c in moved.changes] == [KEY]


def test_a_worker_whose_runtime_has_not_read_the_canary_serves_the_baseline(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
) -> None:
    client, rs, clock, _ = world
    rt = attach(client, rs, background=False)  # reads the rollouts before the canary
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    start_canary(
        client, _doc(snapshot_document, 6), stages="100", author="a", message="m", controller=ctl
    )
    revs = {client.resolve(EvaluationContext(tenant_id=f"t{i}")).snapshot_rev for i in range(30)}
    assert revs == {1}
    rt.refresh()  # now it has: stage 100 % serves the canary to everyone
    revs = {client.resolve(EvaluationContext(tenant_id=f"t{i}")).snapshot_rev for i in range(30)}
    assert revs == {2}
    rt.close()


class _Unreadable(RolloutStore):
    """A rollout store whose reads fail (the runtime keeps its last state)."""

    def _list(self, kind: str) -> list[dict[str, Any]]:
        raise FlagmwError("rollout store unreachable")


def test_a_runtime_that_cannot_read_the_rollout_store_serves_the_baseline(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
) -> None:
    client, rs, clock, _ = world
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    start_canary(
        client, _doc(snapshot_document, 6), stages="100", author="a", message="m", controller=ctl
    )
    rt = attach(client, _Unreadable(), background=False)
    assert rt.errors == 1
    revs = {client.resolve(EvaluationContext(tenant_id=f"t{i}")).snapshot_rev for i in range(30)}
    assert revs == {1}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(1, 99), min_size=0, max_size=4, unique=True),
    tenants=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60, unique=True),
)
def test_units_only_join_the_canary_as_its_share_grows(cuts: list[int], tenants: list[str]) -> None:
    registry = FlagRegistry.from_dict({"flags": {KEY: {"type": "int", "default": 8}}})
    clock = FixedClock(T0)
    store = MemoryStore()
    client = FlagClient(registry, store, clock=clock)
    client.publish({"values": {KEY: 5}}, author="a", message="m")
    rs = open_rollout_store(store)
    ctl = RolloutController(rs, clock=clock, flags=store)
    stages = [*sorted(cuts), 100]
    s = start_canary(
        client, {"values": {KEY: 6}}, stages=stages, author="a", message="m", controller=ctl
    )
    rt = attach(client, rs, background=False)
    before: set[str] = set()
    for i, share in enumerate(stages):
        assert ctl.get(s.rollout.name).share == share
        now = {
            t
            for t in tenants
            if client.resolve(EvaluationContext(tenant_id=t)).snapshot_rev == s.publish.rev
        }
        assert before <= now
        if share == 100:
            assert now == set(tenants)
        before = now
        if i < len(stages) - 1:
            ctl.advance(s.rollout.name, actor="a")
            rt.refresh()
    rt.close()


def test_resolution_as_it_was_during_a_canary_follows_the_arm(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
) -> None:
    from flagmw.client.history import resolve_at

    client, rs, clock, _ = world
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    start_canary(client, _doc(snapshot_document, 6), author="a", message="m", controller=ctl)
    clock.advance(60)
    ctl.abort("config-rev-2", actor="a", reason="r")
    during = T0 + 30
    for attrs, rev, cap in (({CONFIG_REV_ATTR: 2}, 2, 6), ({CONFIG_REV_ATTR: 1}, 1, 8), ({}, 1, 8)):
        ctx = EvaluationContext(tenant_id="x", attributes=attrs)
        h = resolve_at(client.store, client.registry, ctx, at=during, environment="production")
        assert (h.rev, h.run_config[KEY]) == (rev, cap)


class _Outage(SQLiteStore):
    """A SQLite store whose publishes fail while ``down`` (the disk is full)."""

    down = False

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise StoreUnavailableError(self.name, "disk I/O error")
        return super().publish(*args, **kwargs)


def test_a_rollback_whose_publish_fails_records_nothing_and_is_retried(
    tmp_path: Path, registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> None:
    clock = FixedClock(T0)
    store = _Outage(tmp_path / "flags.db", create=True)
    client = FlagClient(registry, store, clock=clock)
    client.publish(_doc(snapshot_document, 8), author="t", message="baseline")
    rs = open_rollout_store(store)
    ctl = RolloutController(rs, clock=clock, flags=store)
    start_canary(
        client, _doc(snapshot_document, 6), min_runs=5, author="a", message="m", controller=ctl
    )
    rs.record_outcomes(
        {"at": clock(), "rollout": "config-rev-2", "stage": 1, "arm": arm, "tenant": f"t{i}",
         "outcome": "failed" if arm == "candidate" else "completed"}
        for i in range(40)
        for arm in ("candidate", "baseline")
    )  # fmt: skip
    store.down = True
    with pytest.raises(StoreUnavailableError):
        ctl.tick()
    assert ctl.get("config-rev-2").status == "running"  # nothing recorded
    assert store.head().action == "canary"  # type: ignore[union-attr]
    assert [e["action"] for e in rs.audit()] == ["rollout.start"]
    store.down = False
    [t] = ctl.tick()
    assert (t.action, t.share) == ("rollback", 0)
    assert store.head().rollback_of == 1  # type: ignore[union-attr]
    rs.close()
    client.close()


@pytest.mark.parametrize("completed", [False, True])
def test_a_tick_records_how_a_canary_ended_when_the_record_was_missed(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
    completed: bool,
) -> None:
    from flagmw.rollout.canary import _publish_end

    client, rs, clock, _ = world
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    start_canary(
        client, _doc(snapshot_document, 6), stages="100", author="a", message="m", controller=ctl
    )
    # a controller published the end, then died before it wrote the rollout record
    _publish_end(client.store, 2, 1, completed, "controller", clock())
    [t] = ctl.tick()
    assert t.action == ("complete" if completed else "rollback")
    assert "the head moved on to rev 3" in t.reason
    assert ctl.get("config-rev-2").status == ("completed" if completed else "rolled_back")
    assert client.store.head().rev == 3  # type: ignore[union-attr]  # nothing published twice
    assert ctl.tick() == []


def test_a_controller_without_the_flag_store_leaves_a_canary_alone(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
) -> None:
    client, rs, clock, _ = world
    start_canary(client, _doc(snapshot_document, 6), min_runs=0, min_duration=0, author="a",
                 message="m")  # fmt: skip
    blind = RolloutController(rs, clock=clock)
    [t] = blind.tick()
    assert (t.action, t.share) == ("wait", 1)
    assert "flags=store" in t.reason
    with pytest.raises(RolloutError, match="flags=store"):
        blind.abort("config-rev-2", actor="a", reason="r")
    assert blind.get("config-rev-2").status == "running"
    assert client.store.head().action == "canary"  # type: ignore[union-attr]


def test_explain_and_value_of_an_assigned_context_name_the_canary_rev(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
) -> None:
    client, _rs, _clock, _ = world
    start_canary(client, _doc(snapshot_document, 6), author="a", message="m")
    assigned = EvaluationContext(tenant_id="x", attributes={CONFIG_REV_ATTR: 2})
    other = EvaluationContext(tenant_id="x")
    assert (client.value(KEY, assigned), client.value(KEY, other)) == (6, 8)
    mine, theirs = client.explain(KEY, assigned), client.explain(KEY, other)
    assert (mine.snapshot_rev, mine.value, theirs.snapshot_rev, theirs.value) == (2, 6, 1, 8)


def test_a_config_canary_has_no_shadow_stage(
    world: tuple[FlagClient, RolloutStore, FixedClock, Path],
    snapshot_document: dict[str, Any],
) -> None:
    client, rs, clock, _ = world
    ctl = RolloutController(rs, clock=clock, flags=client.store)
    with pytest.raises(RolloutError, match="no shadow stage"):
        start_canary(
            client,
            _doc(snapshot_document, 6),
            stages="shadow,10,100",
            author="a",
            message="m",
            controller=ctl,
        )
    assert client.store.head().rev == 1  # type: ignore[union-attr]
    assert ctl.rollouts() == []
