"""The store protocol, on MemoryStore and SQLiteStore, and SQLite across real processes.

* The protocol (atomic publish with an expected parent rev, the change token, overrides,
  the append-only audit log) runs against both stores through one parametrised fixture.
* Two OS processes publishing on the same parent rev: exactly one wins each round.
* A reader process sees a writer process's publish through the change counter, without
  reading the database while the counter stands still.
* The memory-mapped counter survives the deletion of its file; the SQLite triggers keep
  snapshots and the audit log immutable; a forked child resolves and sees later publishes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FLAGS_YAML, T0, FixedClock, snapshot_part
from store_kinds import STORE_KINDS

from flagmw import (
    ConflictError,
    EvaluationContext,
    FlagClient,
    FlagRegistry,
    MemoryStore,
    NotFoundError,
    SQLiteStore,
    Store,
    StoreUnavailableError,
)
from flagmw.core.overrides import Override, OverrideKind, ScopeKind

KEY = "loop.max_iterations"
REGISTRY_DOC = {"flags": {KEY: {"type": "int", "default": 8}}}


class CountingSQLiteStore(SQLiteStore):
    """Counts the authoritative reads a client makes (``read_state``)."""

    reads = 0

    def read_state(self, now: float) -> Any:
        self.reads += 1
        return super().read_state(now)


class CountingMemoryStore(MemoryStore):
    reads = 0

    def read_state(self, now: float) -> Any:
        self.reads += 1
        return super().read_state(now)


@pytest.fixture(params=sorted(STORE_KINDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same protocol tests against every store (``tests/store_kinds.py``)."""
    s, cleanup = STORE_KINDS[request.param](tmp_path)
    yield s
    cleanup()


def _publish(store: Store, parent: int | None, value: int, at: float = T0) -> Any:
    return store.publish(
        {"values": {KEY: value}},
        REGISTRY_DOC,
        content_hash=f"sha256:{value}",
        registry_fingerprint="sha256:reg",
        parent_rev=parent,
        author="alice",
        message=f"set {value}",
        at=at,
    )


def _override(created_at: float = T0, ttl: float = 3600, **changes: Any) -> Override:
    ov = Override(
        id="",
        key=KEY,
        value=3,
        kind=OverrideKind.OVERRIDE,
        scope=ScopeKind.GLOBAL,
        target=None,
        reason="r",
        actor="a",
        created_at=created_at,
        expires_at=created_at + ttl,
    )
    return ov.with_changes(**changes)


# -- the protocol, on both stores --------------------------------------------------------


def test_store_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.name


def test_empty_store(store: Store) -> None:
    assert store.head() is None
    assert store.history() == []
    assert store.list_overrides(include_ended=True) == []
    assert store.audit() == []
    state = store.read_state(T0)
    assert (state.head, list(state.overrides)) == (None, [])
    with pytest.raises(NotFoundError):
        store.get_snapshot()
    with pytest.raises(NotFoundError):
        store.get_snapshot(1)


def test_publish_numbers_revs_and_chains_parents(store: Store) -> None:
    first = _publish(store, None, 1, T0)
    second = _publish(store, 1, 2, T0 + 1)
    third = _publish(store, 2, 3, T0 + 2)
    assert [(i.rev, i.parent_rev) for i in (first, second, third)] == [(1, None), (2, 1), (3, 2)]
    assert third.author == "alice"
    assert third.message == "set 3"
    assert third.created_at == T0 + 2
    assert third.content_hash == "sha256:3"
    assert third.registry_fingerprint == "sha256:reg"
    assert (third.action, third.rollback_of) == ("publish", None)
    assert store.head() == third
    assert store.history() == [third, second, first]
    assert store.history(limit=2) == [third, second]
    record = store.get_snapshot(2)
    assert record.info == second
    assert record.document == {"values": {KEY: 2}}
    assert record.registry == REGISTRY_DOC
    assert store.get_snapshot().info == third
    with pytest.raises(NotFoundError, match="rev 9"):
        store.get_snapshot(9)


@pytest.mark.parametrize("stale_parent", [None, 1, 3, 99])
def test_stale_parent_gets_conflict_never_an_overwrite(
    store: Store, stale_parent: int | None
) -> None:
    _publish(store, None, 1)
    _publish(store, 1, 2)
    token = store.change_token()
    audit = store.audit()
    with pytest.raises(ConflictError) as info:
        _publish(store, stale_parent, 7)
    assert (info.value.expected_parent, info.value.actual_head) == (stale_parent, 2)
    assert "flagmw diff" in str(info.value)
    assert [i.rev for i in store.history()] == [2, 1]
    assert store.get_snapshot().document == {"values": {KEY: 2}}
    assert store.change_token() == token
    assert store.audit() == audit


def test_rollback_is_recorded(store: Store) -> None:
    _publish(store, None, 1)
    info = store.publish(
        {"values": {KEY: 1}},
        REGISTRY_DOC,
        content_hash="sha256:1",
        registry_fingerprint="sha256:reg",
        parent_rev=1,
        author="bob",
        message="back",
        at=T0,
        action="rollback",
        rollback_of=1,
    )
    assert (info.rev, info.action, info.rollback_of) == (2, "rollback", 1)
    assert store.history()[0] == info


def test_a_canary_rev_is_recorded_with_its_baseline(store: Store) -> None:
    """Issue 12 §3: a config canary is a rev with action ``canary`` over its baseline
    (``rollback_of``), kept by every store in the columns it already has."""
    _publish(store, None, 1)
    with pytest.raises(ValueError, match="action"):
        store.publish(
            {"values": {KEY: 2}},
            REGISTRY_DOC,
            content_hash="sha256:2",
            registry_fingerprint="sha256:reg",
            parent_rev=1,
            author="ana",
            message="no baseline",
            at=T0,
            action="canary",
        )
    info = store.publish(
        {"values": {KEY: 2}},
        REGISTRY_DOC,
        content_hash="sha256:2",
        registry_fingerprint="sha256:reg",
        parent_rev=1,
        author="ana",
        message="canary",
        at=T0,
        action="canary",
        rollback_of=1,
    )
    assert (info.rev, info.parent_rev, info.action, info.rollback_of) == (2, 1, "canary", 1)
    assert store.head() == info
    assert store.read_state(T0).head == info
    assert store.history()[0] == info
    assert store.get_snapshot(2).info == info
    entry = store.audit()[0]
    assert (entry.action, entry.target, entry.details["rollback_of"]) == ("canary", "rev 2", 1)


def test_published_documents_are_copies(store: Store) -> None:
    doc: dict[str, Any] = {"values": {KEY: 1}}
    store.publish(
        doc,
        REGISTRY_DOC,
        content_hash="h",
        registry_fingerprint="f",
        parent_rev=None,
        author="a",
        message="m",
        at=T0,
    )
    doc["values"][KEY] = 99
    assert store.get_snapshot(1).document == {"values": {KEY: 1}}


def test_change_token_moves_on_every_change_and_only_then(store: Store) -> None:
    tokens = [store.change_token()]

    def moved() -> None:
        token = store.change_token()
        assert token not in tokens
        tokens.append(token)

    def still() -> None:
        assert store.change_token() == tokens[-1]

    _publish(store, None, 1)
    moved()
    ov = store.add_override(_override())
    moved()
    store.renew_override(ov.id, T0 + 7200, actor="a", reason="r", at=T0 + 1)
    moved()
    store.end_override(ov.id, actor="a", reason="r", at=T0 + 2)
    moved()
    _publish(store, 1, 2)
    moved()
    # reads never move it
    store.head()
    store.history()
    store.get_snapshot(1)
    store.read_state(T0)
    store.list_overrides(include_ended=True)
    store.get_override(ov.id)
    store.audit()
    still()
    with pytest.raises(ConflictError):
        _publish(store, 1, 3)
    still()


def test_read_state_token_is_the_change_token(store: Store) -> None:
    # The client compares change_token() with the token of the state it last read; they
    # must be comparable, or every poll would re-read the store.
    assert store.read_state(T0).token == store.change_token()
    _publish(store, None, 1)
    assert store.read_state(T0).token == store.change_token()
    store.add_override(_override())
    assert store.read_state(T0).token == store.change_token()


def test_overrides_lifecycle(store: Store) -> None:
    a = store.add_override(_override(created_at=T0))
    b = store.add_override(
        _override(created_at=T0 + 1, scope=ScopeKind.TENANT, target="acme", value=4)
    )
    assert a.id != b.id
    assert a.id.startswith("ov-")
    assert store.get_override(b.id) == b
    assert (b.scope, b.target, b.value) == (ScopeKind.TENANT, "acme", 4)
    assert [o.id for o in store.list_overrides()] == [b.id, a.id], "newest first"

    renewed = store.renew_override(a.id, T0 + 10_000, actor="r", reason="more", at=T0 + 2)
    assert renewed.expires_at == T0 + 10_000
    assert store.get_override(a.id).expires_at == T0 + 10_000
    ended = store.end_override(b.id, actor="e", reason="done", at=T0 + 3)
    assert (ended.ended_at, ended.ended_by, ended.end_reason) == (T0 + 3, "e", "done")
    assert [o.id for o in store.list_overrides()] == [a.id]
    assert {o.id for o in store.list_overrides(include_ended=True)} == {a.id, b.id}

    for missing in (
        store.get_override,
        lambda i: store.end_override(i, actor="a", reason="r", at=T0),
    ):
        with pytest.raises(NotFoundError):
            missing("ov-404")
    with pytest.raises(NotFoundError):
        store.renew_override("ov-404", T0, actor="a", reason="r", at=T0)


def test_list_overrides_by_key_and_newest_first_at_the_same_time(store: Store) -> None:
    made = [
        store.add_override(_override(key="agent.enabled" if i % 2 else KEY)) for i in range(12)
    ]  # all created at the same time: creation order decides
    assert [o.id for o in store.list_overrides()] == [o.id for o in reversed(made)]
    assert [o.id for o in store.list_overrides(key=KEY)] == [o.id for o in reversed(made[::2])]
    store.end_override(made[0].id, actor="a", reason="r", at=T0)
    assert made[0].id not in {o.id for o in store.list_overrides(key=KEY)}
    assert made[0].id in {o.id for o in store.list_overrides(key=KEY, include_ended=True)}
    assert store.list_overrides(key="no.such") == []


def test_read_state_leaves_out_ended_and_expired_overrides(store: Store) -> None:
    live = store.add_override(_override(ttl=100))
    ended = store.add_override(_override(ttl=100))
    store.end_override(ended.id, actor="a", reason="r", at=T0 + 1)
    short = store.add_override(_override(ttl=10))
    assert {o.id for o in store.read_state(T0 + 9.999).overrides} == {live.id, short.id}
    assert {o.id for o in store.read_state(T0 + 10).overrides} == {live.id}
    assert store.read_state(T0 + 100).overrides == []
    # list_overrides keeps expired ones (explain and `flagmw overrides --all` show them)
    assert short.id in {o.id for o in store.list_overrides()}


def test_audit_is_append_only_and_filterable(store: Store) -> None:
    _publish(store, None, 1)
    ov = store.add_override(_override(kind=OverrideKind.KILL, value=False, force=True))
    store.add_override(_override())
    store.end_override(ov.id, actor="x", reason="y", at=T0 + 5)
    entries = store.audit()
    assert [e.action for e in entries] == ["kill.end", "override.set", "kill.forced", "publish"]
    assert [e.seq for e in entries] == [4, 3, 2, 1]
    assert [e.action for e in store.audit(action="kill")] == ["kill.end", "kill.forced"]
    assert [e.action for e in store.audit(action="kill.forced")] == ["kill.forced"]
    assert store.audit(action="kil") == []
    assert store.audit(limit=1) == entries[:1]
    publish = entries[-1]
    assert (publish.actor, publish.reason, publish.target) == ("alice", "set 1", "rev 1")
    assert (publish.before, publish.after) == (None, 1)
    assert entries[0].to_dict()["details"] == {}


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(
            "memory",
        ),
        "sqlite",
    ],
)
def test_a_returned_snapshot_cannot_change_the_stored_rev(kind: str, tmp_path: Path) -> None:
    store: Store = (
        MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "s.db", create=True)
    )
    _publish(store, None, 1)
    document = store.get_snapshot(1).document
    document["values"][KEY] = 99  # type: ignore[index]  # e.g. to prepare the next publish
    assert store.get_snapshot(1).document == {"values": {KEY: 1}}
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_idle_polls_never_read_the_store(
    kind: str, tmp_path: Path, registry: FlagRegistry, clock: FixedClock
) -> None:
    store: CountingMemoryStore | CountingSQLiteStore = (
        CountingMemoryStore()
        if kind == "memory"
        else CountingSQLiteStore(tmp_path / "c.db", create=True)
    )
    client = FlagClient(registry, store, clock=clock)
    client.publish(snapshot_part(), author="a", message="m")
    client.kill("tools.refund_api.enabled", reason="r", actor="a")
    generation = client.poll()
    reads = store.reads
    for _ in range(2000):
        assert client.poll() == generation
        client.is_enabled("tools.refund_api.enabled")
        client.value(KEY)
    assert store.reads == reads
    other = FlagClient(registry, store, clock=clock)  # a second writer on the same store
    other.kill("agent.enabled", reason="r", actor="a")
    assert client.poll() == generation + 1
    assert store.reads > reads
    store.close()


# -- SQLite specifics --------------------------------------------------------------------


def test_sqlite_file_layout_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "flagmw.db"
    with SQLiteStore(path, create=True) as store:
        _publish(store, None, 1)
        store.add_override(_override())
        assert store.name == f"sqlite:{path}"
        assert store.signal_path == path.with_name("flagmw.db-changes")
    assert path.exists()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    with SQLiteStore(path) as again:
        assert [i.rev for i in again.history()] == [1]
        assert len(again.list_overrides()) == 1
        assert [e.action for e in again.audit()] == ["override.set", "publish"]


@pytest.mark.parametrize(
    ("table", "statement"),
    [
        ("snapshots", "UPDATE snapshots SET message='rewritten' WHERE rev=1"),
        ("snapshots", "UPDATE snapshots SET document='{}'"),
        ("snapshots", "DELETE FROM snapshots WHERE rev=1"),
        ("audit", "UPDATE audit SET reason='nothing happened'"),
        ("audit", "DELETE FROM audit"),
    ],
)
def test_snapshots_and_audit_rows_are_immutable(tmp_path: Path, table: str, statement: str) -> None:
    path = tmp_path / "flagmw.db"
    with SQLiteStore(path, create=True) as store:
        _publish(store, None, 1)
        before = (store.get_snapshot(1), store.audit())
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.DatabaseError, match=r"immutable|append-only"):
            conn.execute(statement)
    finally:
        conn.close()
    with SQLiteStore(path) as store:
        assert (store.get_snapshot(1), store.audit()) == before


def test_sqlite_store_that_cannot_be_opened(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.db"
    directory.mkdir()
    with pytest.raises(StoreUnavailableError) as info:
        SQLiteStore(directory)
    assert str(directory) in str(info.value)
    assert info.value.store == f"sqlite:{directory}"

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, it is a text file\n" * 200)
    with pytest.raises(StoreUnavailableError, match="flagmw store"):
        SQLiteStore(garbage)

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailableError):
        SQLiteStore(blocker / "sub" / "flagmw.db")


def test_sqlite_store_of_another_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "flagmw.db"
    SQLiteStore(path, create=True).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE meta SET value=99 WHERE key='schema_version'")
    conn.close()
    with pytest.raises(StoreUnavailableError, match="schema version 99"):
        SQLiteStore(path)


def test_change_counter_survives_deletion_of_its_file(tmp_path: Path) -> None:
    path = tmp_path / "flagmw.db"
    writer = SQLiteStore(path, create=True)
    reader = SQLiteStore(path, verify_interval=0.0)  # verify at every check
    _publish(writer, None, 1)
    assert reader.change_token() == reader.read_state(T0).token

    reader.signal_path.unlink()
    _publish(writer, 1, 2)  # the writer still maps the deleted file
    token = reader.change_token()  # the next verify re-creates and repairs the file
    assert token == reader.read_state(T0).token
    assert reader.signal_path.exists()
    assert reader.signal_path.stat().st_size == 16

    # a new process-local store maps the repaired file and reads the right sequences from
    # it without asking the database (a verify interval of an hour)
    late = SQLiteStore(path, verify_interval=3600)
    assert late.change_token() == token  # first call verifies
    assert late.change_token() == token  # then the memory-mapped counter
    writer.close()
    writer = SQLiteStore(path)  # a writer that maps the current file
    _publish(writer, 2, 3)
    assert late.change_token() != token, "the counter file signals again after the repair"
    assert late.change_token() == reader.read_state(T0).token
    for s in (writer, reader, late):
        s.close()


def test_two_stores_on_one_file_see_each_others_changes(tmp_path: Path) -> None:
    a = SQLiteStore(tmp_path / "flagmw.db", create=True, verify_interval=3600)
    b = SQLiteStore(tmp_path / "flagmw.db", verify_interval=3600)
    a.change_token()
    b.change_token()  # both now read the memory-mapped counter
    before = a.change_token()
    _publish(b, None, 1)
    assert a.change_token() != before
    assert a.change_token() == b.change_token()
    assert a.head() == b.head()
    a.close()
    b.close()


# -- real processes ----------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from flagmw import ConflictError, FlagClient, FlagRegistry, SQLiteStore

    mode, db, flags, sync = sys.argv[1:5]
    sync = Path(sync)
    registry = FlagRegistry.from_yaml(flags)


    def signal(name, text=""):
        # write then rename: the file appears with its content, never empty
        tmp = sync / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(sync / name)


    def wait_for(path, seconds=60.0):
        deadline = time.monotonic() + seconds
        while not path.exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {path}")
            time.sleep(0.0005)


    if mode == "publish":
        name, rounds = sys.argv[5], int(sys.argv[6])
        client = FlagClient(registry, SQLiteStore(db))
        out = []
        for r in range(rounds):
            head = client.store.head().rev
            signal(f"ready-{r}-{name}", str(head))
            wait_for(sync / f"go-{r}")
            doc = {"values": {"loop.max_iterations": 2 + r}, "routes": {name: {}}}
            try:
                info = client.publish(doc, author=name, message=f"round {r}", parent_rev=head)
                out.append({"round": r, "head": head, "rev": info.rev})
            except ConflictError as exc:
                out.append({"round": r, "head": head,
                            "conflict": [exc.expected_parent, exc.actual_head]})
            signal(f"done-{r}-{name}")
        print(json.dumps(out))

    elif mode == "write-once":
        client = FlagClient(registry, SQLiteStore(db))
        info = client.publish({"values": {"loop.max_iterations": 33}}, author="writer",
                              message="from another process")
        print(json.dumps({"rev": info.rev}))

    elif mode == "read":
        class CountingStore(SQLiteStore):
            reads = 0

            def read_state(self, now):
                self.reads += 1
                return super().read_state(now)

        store = CountingStore(db)
        client = FlagClient(registry, store)
        rev0, reads0, token0 = client.snapshot_rev, store.reads, store.change_token()
        generation0 = client.poll()
        signal("reader-ready")
        polls = violations = 0
        deadline = time.monotonic() + 60
        while client.snapshot_rev == rev0 and time.monotonic() < deadline:
            client.poll()
            polls += 1
            if store.reads != reads0 and store.change_token() == token0:
                violations += 1  # read the database although the counter stood still
        print(json.dumps({
            "rev0": rev0, "rev": client.snapshot_rev, "polls": polls,
            "violations": violations, "reads_after_move": store.reads - reads0,
            "value": client.value("loop.max_iterations"),
            "generation_moved": client.generation > generation0,
        }))
    """
)


def _spawn(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    worker = tmp_path / "worker.py"
    if not worker.exists():
        worker.write_text(WORKER, encoding="utf-8")
    flags = tmp_path / "flags.yaml"
    if not flags.exists():
        flags.write_text(FLAGS_YAML, encoding="utf-8")
    sync = tmp_path / "sync"
    sync.mkdir(exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            str(worker),
            args[0],
            str(tmp_path / "flagmw.db"),
            str(flags),
            str(sync),
            *args[1:],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 90) -> Any:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out)


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"timed out waiting for {path}"
        time.sleep(0.001)


def test_two_processes_publishing_on_the_same_parent(tmp_path: Path, make_client: Any) -> None:
    rounds = 4
    client = make_client(tmp_path, document=snapshot_part())
    assert client.snapshot_rev == 1
    procs = [_spawn(tmp_path, "publish", name, str(rounds)) for name in ("p1", "p2")]
    sync = tmp_path / "sync"
    try:
        for r in range(rounds):
            for name in ("p1", "p2"):  # both have read the head before either publishes
                _wait_for(sync / f"ready-{r}-{name}")
            heads = {(sync / f"ready-{r}-{name}").read_text() for name in ("p1", "p2")}
            assert heads == {str(r + 1)}
            (sync / f"go-{r}").write_text("")
            for name in ("p1", "p2"):
                _wait_for(sync / f"done-{r}-{name}")
        results = {name: _finish(p) for name, p in zip(("p1", "p2"), procs, strict=True)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for r in range(rounds):
        outcomes = [results[name][r] for name in ("p1", "p2")]
        winners = [o for o in outcomes if "rev" in o]
        losers = [o for o in outcomes if "conflict" in o]
        assert len(winners) == 1, outcomes
        assert len(losers) == 1, outcomes
        assert winners[0]["rev"] == r + 2
        assert losers[0]["conflict"] == [r + 1, r + 2]
    history = client.history()
    assert [i.rev for i in history] == list(range(rounds + 1, 0, -1)), "no lost or duplicate rev"
    assert [i.parent_rev for i in history] == [*range(rounds, 0, -1), None]
    assert [e.after for e in client.audit(action="publish")] == list(range(rounds + 1, 0, -1))
    client.poll()
    assert client.snapshot_rev == rounds + 1


def test_reader_process_sees_a_writer_process_through_the_change_counter(
    tmp_path: Path, make_client: Any
) -> None:
    make_client(tmp_path, document=snapshot_part())
    reader = _spawn(tmp_path, "read")
    try:
        _wait_for(tmp_path / "sync" / "reader-ready")
        time.sleep(0.3)  # let the reader poll an unchanged store for a while
        writer = _spawn(tmp_path, "write-once")
        written = _finish(writer)
        seen = _finish(reader)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert written == {"rev": 2}
    assert seen["rev0"] == 1
    assert seen["rev"] == 2, seen
    assert seen["value"] == 33
    assert seen["generation_moved"] is True
    assert seen["polls"] > 100, "the reader polled the unchanged store before the publish"
    assert seen["violations"] == 0, "a database read happened while the counter stood still"
    assert seen["reads_after_move"] >= 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_forked_child_resolves_and_sees_the_parents_later_publish(make_client: Any) -> None:
    client = make_client(document=snapshot_part())
    ctx = EvaluationContext(tenant_id="acme", user_id="u-1", route="refund-assistant")
    parent_rc = client.resolve(ctx)
    go_r, go_w = os.pipe()
    res_r, res_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            os.close(go_w)
            os.close(res_r)
            os.close(ready_r)
            out: dict[str, Any] = {"before": client.resolve(ctx).to_json()}
            os.write(ready_w, b"x")  # resolved: the parent may publish now
            os.read(go_r, 1)
            deadline = time.monotonic() + 30
            while client.snapshot_rev != 2 and time.monotonic() < deadline:
                client.poll()
                time.sleep(0.001)
            out |= {"rev": client.snapshot_rev, "value": client.value(KEY, ctx)}
            out["resolved"] = client.resolve(ctx)[KEY]
            os.write(res_w, json.dumps(out).encode())
        except BaseException as exc:
            os.write(res_w, json.dumps({"error": repr(exc)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(res_w)
    os.close(ready_w)
    os.read(ready_r, 1)  # not before the child resolved what it saw at the fork
    os.close(ready_r)
    doc = snapshot_part()
    doc["values"][KEY] = 21
    doc["routes"] = {}
    assert client.publish(doc, author="parent", message="after the fork").rev == 2
    os.write(go_w, b"x")
    os.close(go_w)
    chunks = []
    while chunk := os.read(res_r, 65536):
        chunks.append(chunk)
    os.close(res_r)
    _, status = os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks))
    assert "error" not in result, result
    assert os.waitstatus_to_exitcode(status) == 0
    # at the fork the child resolved exactly what the parent did (same time: injected clock)
    assert result["before"] == parent_rc.to_json()
    assert result["rev"] == 2
    assert result["value"] == 21
    assert result["resolved"] == 21
    assert client.value(KEY, ctx) == 21  # and the parent's own connection still works


def test_a_closed_sqlite_store_reopens_on_the_next_use(
    tmp_path: Path, registry: FlagRegistry
) -> None:
    store = SQLiteStore(tmp_path / "flagmw.db", create=True)
    client = FlagClient(registry, store)
    client.publish(snapshot_part(), author="a", message="m")
    store.close()
    assert store.head() is not None  # reads reopen the connection
    assert client.poll() == client.generation  # and so must the change check
    assert store.change_token() == store.read_state(T0).token


def test_the_audit_log_cannot_be_forged_through_the_store_api(store: Store) -> None:
    """Issue 9 item 9: actions are derived from the operation, times from the store."""
    with pytest.raises(TypeError):
        store.add_override(_override(), audit_action="publish")  # type: ignore[call-arg]
    for action, rollback_of in (("kill.set", None), ("publish", 1), ("rollback", None)):
        with pytest.raises(ValueError, match="action"):
            store.publish(
                {"values": {}},
                {"flags": {}},
                content_hash="sha256:x",
                registry_fingerprint="f",
                parent_rev=None,
                author="a",
                message="m",
                at=T0,
                action=action,
                rollback_of=rollback_of,
            )
    assert store.head() is None
    # a caller's time (a client clock set to the epoch) does not date the audit entry
    store.add_override(_override(created_at=0.0, kind=OverrideKind.KILL, value=False))
    (entry,) = store.audit()
    assert entry.action == "kill.set"
    assert entry.at > 1_700_000_000


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM {s}overrides",
        "UPDATE {s}overrides SET reason='nothing happened'",
        "UPDATE {s}overrides SET value='true'",
        "UPDATE {s}overrides SET created_at=0",
        "UPDATE {s}overrides SET ended_at=1 WHERE ended_at IS NOT NULL",
    ],
)
@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_overrides_are_append_only_in_the_database(store: Store, statement: str) -> None:
    """Issue 9 item 9: whoever connects to the database, an override can only be renewed
    or ended once (SQLite and PostgreSQL triggers)."""
    a = store.add_override(_override())
    b = store.add_override(_override())
    store.end_override(b.id, actor="e", reason="done", at=T0 + 1)
    before = store.list_overrides(include_ended=True)
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path, isolation_level=None)  # type: ignore[attr-defined]
        try:
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(statement.format(s=""))
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(store.conninfo, autocommit=True) as conn:  # type: ignore[attr-defined]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.format(s=f'"{store.schema}".'))  # type: ignore[attr-defined]
    assert store.list_overrides(include_ended=True) == before
    store.renew_override(a.id, T0 + 9000, actor="r", reason="more", at=T0 + 2)  # still allowed
