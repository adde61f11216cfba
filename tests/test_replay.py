"""Replaying a recorded run's config (issue 10 §4): ``flagmw.replay`` runs a wrapped graph
on a new thread with exactly the recorded RunConfig pinned; ``resolve_at`` and
``flagmw resolve --at`` recompute it from the store's history; ``flagmw pin show`` reads
it from the checkpoint database. Real LangGraph graphs and checkpointers, a real SQLite
store file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, TypedDict

import pytest
from conftest import FixedClock
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

import flagmw
from flagmw import Flag, FlagClient, FlagRegistry, IntegrityError, SQLiteStore
from flagmw.client.history import resolve_at
from flagmw.langgraph.keys import PIN_KEY, PIN_NAMESPACE

HOT = "tools.search.enabled"
REGISTRY = FlagRegistry(
    [
        Flag(HOT, "bool", True, binding="hot", owner="t"),
        Flag("prompt.version", "int", 1, owner="t"),
        Flag("model.primary", "enum", "gpt-4o", choices=["gpt-4o", "gpt-4o-mini"], owner="t"),
    ]
)
DOC = {
    "values": {"prompt.version": 3},
    "tenants": {"acme": {"values": {"model.primary": "gpt-4o-mini"}}},
}


class S(TypedDict, total=False):
    log: list[str]


def _seen(state: S) -> dict[str, Any]:
    rc = flagmw.current()
    info = flagmw.run_info()
    line = f"p{rc['prompt.version']} {rc['model.primary']} search={rc[HOT]} {info.pin_source}"
    return {"log": [*state.get("log", []), line]}


def _agent(client: FlagClient, saver: Any) -> Any:
    b = StateGraph(S)
    b.add_node("plan", _seen)
    b.add_node("act", _seen)
    b.add_edge(START, "plan")
    b.add_edge("plan", "act")
    return flagmw.wrap(b.compile(checkpointer=saver), client, tracer=False, name="support")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def client(tmp_path: Path, clock: FixedClock) -> Any:
    store = SQLiteStore(tmp_path / "flagmw.db", create=True)
    c = FlagClient(REGISTRY, store, environment="production", clock=clock)
    c.publish(DOC, author="ops", message="first")
    yield c
    c.close()


def _later(client: FlagClient, clock: FixedClock) -> str:
    """20 publishes and a kill after the recording; returns the kill's id."""
    for i in range(20):
        clock.advance(60)
        client.publish(
            {"values": {"prompt.version": 10 + i, "model.primary": "gpt-4o"}},
            author="ops",
            message=f"later {i}",
        )
    clock.advance(60)
    return client.kill(HOT, reason="search leaks PII", actor="oncall", ttl="4h").id


CFG = {"configurable": {"thread_id": "t-incident", "tenant_id": "acme"}}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_recorded_run_replays_with_the_identical_config_after_20_publishes_and_a_kill(
    mode: str, saver: Any, client: FlagClient, clock: FixedClock
) -> None:
    if mode == "async" and not isinstance(saver, InMemorySaver):
        # SqliteSaver / PostgresSaver are sync-only (their async twins are other classes)
        saver = InMemorySaver()
    agent = _agent(client, saver)
    recorded_out = agent.invoke({"log": []}, CFG)
    recorded = agent.get_pinned_config(CFG)
    assert recorded is not None
    assert recorded_out["log"][0] == "p3 gpt-4o-mini search=True resolved"
    _later(client, clock)
    # a run started now sees a different config: the replay is not vacuous
    now_out = agent.invoke(
        {"log": []}, {"configurable": {"thread_id": "t-now", "tenant_id": "acme"}}
    )
    assert now_out["log"][0] == "p29 gpt-4o search=False resolved"

    if mode == "sync":
        result = flagmw.replay(agent, CFG, {"log": []})
    else:
        result = asyncio.run(flagmw.areplay(agent, CFG, {"log": []}))
    assert result.run_config.config_hash == recorded.config_hash
    assert result.output["log"] == [
        "p3 gpt-4o-mini search=True replay",
        "p3 gpt-4o-mini search=True replay",
    ]
    # pinned on its own new thread, which a later resume reads back
    assert result.config["configurable"]["thread_id"].startswith("replay-")
    replayed = agent.get_pinned_config(result.config)
    assert replayed is not None
    assert replayed.config_hash == recorded.config_hash
    # the recorded thread was only read
    assert agent.get_pinned_config(CFG) == recorded


def test_replay_takes_the_span_json_a_stored_pin_or_a_runconfig_and_verifies_them(
    client: FlagClient, clock: FixedClock
) -> None:
    saver = InMemorySaver()
    agent = _agent(client, saver)
    agent.invoke({"log": []}, CFG)
    recorded = agent.get_pinned_config(CFG)
    assert recorded is not None
    pins = [
        t.metadata[PIN_KEY]
        for t in saver.list(
            {"configurable": {"thread_id": "t-incident", "checkpoint_ns": PIN_NAMESPACE}}
        )
    ]
    assert len(pins) == 1
    _later(client, clock)
    for source in (recorded, recorded.to_json(), json.loads(recorded.to_json()), pins[0]):
        result = flagmw.replay(agent, source, {"log": []})
        assert result.run_config.config_hash == recorded.config_hash
        assert result.output["log"][0] == "p3 gpt-4o-mini search=True replay"
    # an edited recording is refused before anything runs
    edited = json.loads(recorded.to_json())
    edited["values"]["prompt.version"] = 99
    with pytest.raises(IntegrityError):
        flagmw.replay(agent, edited, {"log": []})
    with pytest.raises(IntegrityError):
        flagmw.replay(agent, pins[0].replace('"acme"', '"evil"'), {"log": []})
    # never onto a used thread, never from a thread without a pin, only wrapped graphs
    with pytest.raises(ValueError, match="already has checkpoints"):
        flagmw.replay(agent, recorded, {"log": []}, CFG)
    with pytest.raises(LookupError, match="no pinned RunConfig"):
        flagmw.replay(agent, {"configurable": {"thread_id": "nope"}}, {"log": []})
    bare = StateGraph(S)
    bare.add_node("plan", _seen)
    bare.add_edge(START, "plan")
    unwrapped = bare.compile()
    with pytest.raises(TypeError, match="wrapped"):
        flagmw.replay(unwrapped, recorded, {"log": []})


def test_an_unfrozen_replay_takes_the_live_kill_at_its_step_boundaries(
    client: FlagClient, clock: FixedClock
) -> None:
    agent = _agent(client, InMemorySaver())
    agent.invoke({"log": []}, CFG)
    recorded = agent.get_pinned_config(CFG)
    assert recorded is not None
    _later(client, clock)
    out = flagmw.replay(agent, recorded, {"log": []}, frozen=False).output
    # pinned keys stay as recorded; the hot key follows the live kill
    assert out["log"][0] == "p3 gpt-4o-mini search=False replay"


def test_resolve_at_recomputes_the_recorded_config_from_the_store_history(
    client: FlagClient, clock: FixedClock
) -> None:
    agent = _agent(client, InMemorySaver())
    clock.advance(5)
    kill = client.kill(HOT, reason="flaky", actor="oncall", ttl="1h")
    clock.advance(5)
    agent.invoke({"log": []}, CFG)
    recorded = agent.get_pinned_config(CFG)
    assert recorded is not None
    assert recorded.override_ids == (kill.id,)
    clock.advance(5)
    client.unkill(kill.id, reason="fixed", actor="oncall")
    _later(client, clock)
    store = client.store
    h = resolve_at(
        store, REGISTRY, recorded.context, at=recorded.resolved_at, environment="production"
    )
    assert h.rev == 1
    assert h.override_ids == (kill.id,)  # ended since, but in force then
    assert h.matches(recorded.config_hash)
    assert h.run_config == recorded
    # now: rev 21 and the later kill: another config
    later = resolve_at(store, REGISTRY, recorded.context, at=clock.now, environment="production")
    assert later.rev == 21
    assert not later.matches(recorded.config_hash)
    # before the first publish: defaults only
    assert (
        resolve_at(store, REGISTRY, recorded.context, at=1.0, environment="production").rev is None
    )


def _flagmw(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flagmw.cli.app", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_shows_a_threads_pin_and_checks_a_recorded_hash(
    tmp_path: Path, client: FlagClient, clock: FixedClock
) -> None:
    from langgraph.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "checkpoints.sqlite"
    with SqliteSaver.from_conn_string(str(db)) as saver:
        agent = _agent(client, saver)
        agent.invoke({"log": []}, CFG)
        recorded = agent.get_pinned_config(CFG)
    assert recorded is not None
    _later(client, clock)
    store = ["--store", str(tmp_path / "flagmw.db")]
    shown = _flagmw(
        tmp_path, "pin", "show", "--checkpointer", str(db), "--thread", "t-incident", "--json"
    )
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["run_config"]["config_hash"] == recorded.config_hash
    human = _flagmw(tmp_path, "pin", "show", "--checkpointer", str(db), "--thread", "t-incident")
    assert recorded.config_hash in human.stdout
    assert "prompt.version" in human.stdout
    missing = _flagmw(tmp_path, "pin", "show", "--checkpointer", str(db), "--thread", "nope")
    assert missing.returncode == 2
    assert "no pinned RunConfig" in missing.stderr
    assert "Traceback" not in missing.stderr
    nofile = _flagmw(
        tmp_path, "pin", "show", "--checkpointer", str(tmp_path / "x.sqlite"), "--thread", "t"
    )
    assert nofile.returncode == 2
    assert not (tmp_path / "x.sqlite").exists()  # never created

    at = str(recorded.resolved_at)
    ctx = json.dumps(doc["run_config"]["context"])
    ok = _flagmw(
        tmp_path, *store, "resolve", "--at", at, "--context", ctx, "--hash", recorded.config_hash
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "matches the recorded config_hash" in ok.stdout
    bad = _flagmw(
        tmp_path,
        *store,
        "resolve",
        "--at",
        str(clock.now),
        "--context",
        ctx,
        "--hash",
        recorded.config_hash,
    )
    assert bad.returncode == 1
    assert "does NOT match" in bad.stdout
    wrong = _flagmw(tmp_path, *store, "resolve", "--at", "yesterday")
    assert wrong.returncode == 2
    assert "ISO-8601" in wrong.stderr


def test_pin_show_reads_a_postgres_checkpointer(tmp_path: Path, client: FlagClient) -> None:
    import os
    import uuid

    url = os.environ.get("FLAGMW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set FLAGMW_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    from langgraph.checkpoint.postgres import PostgresSaver

    thread = f"t-pg-{uuid.uuid4().hex}"
    cfg = {"configurable": {"thread_id": thread, "tenant_id": "acme"}}
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()
        agent = _agent(client, saver)
        agent.invoke({"log": []}, cfg)
        recorded = agent.get_pinned_config(cfg)
        try:
            assert recorded is not None
            shown = _flagmw(
                tmp_path, "pin", "show", "--checkpointer", url, "--thread", thread, "--json"
            )
            assert shown.returncode == 0, shown.stderr
            assert json.loads(shown.stdout)["run_config"]["config_hash"] == recorded.config_hash
        finally:
            saver.delete_thread(thread)
