"""Async twins (issue 8 §2): ``ainvoke``/``astream`` never wait on store I/O on the
event loop, and a pushing store's listener loads changes before the next step boundary.

A real SQLite store (and a real PostgreSQL one) is instrumented to record, for every
read, whether it ran on the event loop's thread inside a running coroutine."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

import pytest
from conftest import T0, FixedClock
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

import flagmw
from flagmw import EvaluationContext, FlagClient, FlagRegistry
from flagmw.client import overlays as lazy
from flagmw.langgraph.run import current_run
from flagmw.stores import SQLiteStore

REGISTRY = FlagRegistry.from_dict(
    {
        "flags": {
            "loop.max_iterations": {"type": "int", "min": 1, "max": 99, "default": 8},
            "tools.refund_api.enabled": {"type": "bool", "default": True, "binding": "hot"},
        }
    }
)


def _fleet(n: int) -> dict[str, Any]:
    return {
        "tenants": {f"t-{i:03d}": {"values": {"loop.max_iterations": 1 + i % 90}} for i in range(n)}
    }


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LoopWatchingStore(SQLiteStore):
    """A real SQLite store that records the reads made on an event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_loop: list[str] = []
        self.reads: list[str] = []

    def _note(self, what: str) -> None:
        self.reads.append(what)
        if _on_loop():
            self.on_loop.append(what)

    def read_state(self, now: float) -> Any:
        self._note("read_state")
        return super().read_state(now)

    def get_snapshot(self, rev: int | None = None, *, overlays: bool = True) -> Any:
        self._note("get_snapshot")
        return super().get_snapshot(rev, overlays=overlays)

    def get_overlays(
        self, rev: int, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        self._note("get_overlays")
        return super().get_overlays(rev, keys)

    def changed_overlays(self, since_rev: int, rev: int) -> set[tuple[str, str]]:
        self._note("changed_overlays")
        return super().changed_overlays(since_rev, rev)


class S(TypedDict):
    seen: list[int]


def _graph(client: FlagClient) -> Any:
    def node(state: S) -> dict[str, Any]:
        run = current_run()
        assert run is not None
        return {"seen": [*state["seen"], run.rc["loop.max_iterations"]]}

    builder = StateGraph(S)
    builder.add_node("a", node)
    builder.add_node("b", node)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", END)
    return flagmw.wrap(builder.compile(checkpointer=InMemorySaver()), client, tracer=False)


def _cfg(tenant: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex, "tenant_id": tenant}}


async def test_an_async_run_does_its_store_reads_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lazy, "EAGER_OVERLAYS", 10)
    path = tmp_path / "flagmw.db"
    writer = FlagClient(REGISTRY, SQLiteStore(path, create=True), clock=FixedClock(T0))
    writer.publish(_fleet(50), author="a", message="fleet")
    store = LoopWatchingStore(path)
    client = await asyncio.to_thread(FlagClient, REGISTRY, store)  # start-up reads the store
    graph = _graph(client)
    # a tenant never seen: its overlay is read before the run starts, in a thread
    out = await graph.ainvoke({"seen": []}, _cfg("t-007"))
    assert out["seen"] == [8, 8]
    # a publish from elsewhere: the next run's start loads it in a thread too
    writer.publish_tenant("t-009", {"values": {"loop.max_iterations": 42}}, author="a", message="m")
    store.reads.clear()
    out = await graph.ainvoke({"seen": []}, _cfg("t-009"))
    assert out["seen"] == [42, 42]
    assert {"read_state", "get_snapshot"} <= set(store.reads)  # it did load the change
    chunks = [c async for c in graph.astream({"seen": []}, _cfg("t-011"), stream_mode="values")]
    assert chunks[-1]["seen"] == [12, 12]
    assert store.on_loop == []
    # the twins of the writes and reads
    ov = await client.akill("tools.refund_api.enabled", reason="incident", actor="oncall")
    assert (await client.aresolve(EvaluationContext(tenant_id="t-013")))[
        "tools.refund_api.enabled"
    ] is False
    await client.aend_override(ov.id, actor="oncall", reason="fixed")
    assert await client.apoll() == client.generation
    assert store.on_loop == []
    store.close()


async def test_the_same_runs_read_on_the_loop_without_the_twin(tmp_path: Path) -> None:
    """The check above can fail: a synchronous resolve inside a coroutine is seen."""
    path = tmp_path / "flagmw.db"
    FlagClient(REGISTRY, SQLiteStore(path, create=True)).publish(_fleet(5), author="a", message="m")
    store = LoopWatchingStore(path)
    client = FlagClient(REGISTRY, store)
    FlagClient(REGISTRY, SQLiteStore(path)).publish_tenant(
        "t-001", {"values": {}}, author="a", message="m"
    )
    client.resolve(EvaluationContext(tenant_id="t-001"))
    assert "read_state" in store.on_loop


@pytest.mark.skipif(
    not os.environ.get("FLAGMW_TEST_POSTGRES_URL"),
    reason="set FLAGMW_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)",
)
def test_a_pushing_store_listener_loads_a_change_before_any_poll() -> None:
    """PostgreSQL: the listener thread refreshes the client when a NOTIFY arrives, so a
    step boundary (a poll) finds the change installed and does no I/O."""
    import psycopg

    from flagmw.stores.url import open_store

    url = os.environ["FLAGMW_TEST_POSTGRES_URL"]
    schema = f"t_async_{uuid.uuid4().hex[:10]}"
    spec = f"{url}?schema={schema}"
    writer_store = open_store(spec, create=True)
    reader_store = open_store(spec)
    try:
        writer = FlagClient(REGISTRY, writer_store)
        writer.publish({"values": {"loop.max_iterations": 3}}, author="a", message="1")
        reader = FlagClient(REGISTRY, reader_store)
        assert reader.snapshot_rev == 1
        # its start-up did not wait on its own listener (which refreshes it)
        assert reader.status().last_error is None
        before = reader.generation
        writer.publish({"values": {"loop.max_iterations": 4}}, author="a", message="2")
        deadline = time.monotonic() + 5.0
        while reader.generation == before and time.monotonic() < deadline:
            time.sleep(0.005)  # no poll(): only the listener can install it
        assert reader.generation != before
        assert reader.snapshot_rev == 2
        assert reader.value("loop.max_iterations") == 4
    finally:
        writer_store.close()
        reader_store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_an_async_run_on_a_config_canary_reads_its_overlays_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 §3: with a canary head a run may be assigned either rev; both revs'
    overlays of its tenant are loaded before it starts, in a thread."""
    from flagmw.rollout.canary import start_canary
    from flagmw.rollout.runtime import attach

    monkeypatch.setattr(lazy, "EAGER_OVERLAYS", 10)
    monkeypatch.setattr(lazy, "PREFETCH_CHANGED", 5)  # the canary's overlays stay unread
    path = tmp_path / "flagmw.db"
    writer = FlagClient(REGISTRY, SQLiteStore(path, create=True), clock=FixedClock(T0))
    writer.publish(_fleet(50), author="a", message="fleet")
    tenants = _fleet(50)["tenants"]
    canary = {"tenants": {t: {"values": {"loop.max_iterations": 77}} for t in tenants}}
    store = LoopWatchingStore(path)
    client = await asyncio.to_thread(FlagClient, REGISTRY, store)
    rt = await asyncio.to_thread(attach, client, None, background=False)
    await asyncio.to_thread(start_canary, writer, canary, stages="50,100", author="a", message="m")
    await asyncio.to_thread(rt.refresh)
    graph = _graph(client)
    seen = set()
    for i in range(20):
        out = await graph.ainvoke({"seen": []}, _cfg(f"t-{i:03d}"))
        seen.add(out["seen"][0])
    assert 77 in seen  # candidates on the canary rev
    assert seen - {77}  # the others on the baseline
    assert store.on_loop == []
    rt.close()
    store.close()
