"""PostgresStore specifics on a real server (``FLAGMW_TEST_POSTGRES_URL``): the protocol
itself runs in ``tests/test_stores.py`` and ``tests/test_store_contract.py``.

* never created by accident: a missing schema is a clear error, ``create=True`` makes
  it through the versioned migrations (recorded in ``schema_migrations``), a newer
  schema version is refused;
* snapshots and the audit log are immutable in the database itself (triggers);
* concurrent publishers on separate connections: exactly one wins each parent rev;
* the change listener: the NOTIFY payload carries only ids; with no live listener
  connection for ``stale_after`` the client reports the store unavailable (fail safe)
  and recovers by itself;
* the URL opener (``?schema=``, ``listen_host``/``listen_port``) and the ``flagmw``
  command with ``--store postgresql://…`` and ``FLAGMW_STORE``.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FLAGS_YAML, snapshot_part
from hypothesis import given
from hypothesis import strategies as st

psycopg = pytest.importorskip("psycopg")

from flagmw import ConflictError, FlagClient, FlagRegistry, StoreUnavailableError  # noqa: E402
from flagmw.stores._postgres_changes import ChangeListener, payload  # noqa: E402
from flagmw.stores.postgres import SCHEMA_VERSION, PostgresStore, open_url  # noqa: E402
from flagmw.stores.url import open_store  # noqa: E402

FLAGMW_COMMAND = Path(sys.executable).parent / "flagmw"


@pytest.fixture
def url() -> str:
    value = os.environ.get("FLAGMW_TEST_POSTGRES_URL")
    if not value:
        pytest.skip("set FLAGMW_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    return value


@pytest.fixture
def schema(url: str) -> Iterator[str]:
    """A private schema name, dropped (with everything in it) at teardown."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _publish(store: PostgresStore, parent: int | None, value: int) -> Any:
    return store.publish(
        {"values": {"loop.max_iterations": value}},
        {"flags": {}},
        content_hash=f"sha256:{value}",
        registry_fingerprint="sha256:reg",
        parent_rev=parent,
        author="a",
        message=f"v{value}",
        at=1.0,
    )


def _schema_exists(url: str, schema: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name=%s", (schema,)
        ).fetchone()
    return bool(row and row[0])


# -- creation and migrations -------------------------------------------------------------


def test_a_missing_store_is_an_error_and_nothing_is_created(url: str, schema: str) -> None:
    with pytest.raises(StoreUnavailableError) as info:
        PostgresStore(url, schema=schema)
    assert f"no flagmw store in schema '{schema}'" in str(info.value)
    assert "create=True" in str(info.value)
    assert "@" in info.value.store
    assert f"schema={schema}" in info.value.store
    with pytest.raises(StoreUnavailableError):
        open_store(f"{url}?schema={schema}")
    assert not _schema_exists(url, schema)


def test_create_applies_the_versioned_migrations_once(url: str, schema: str) -> None:
    with PostgresStore(url, schema=schema, create=True) as store:
        assert store.schema_version == SCHEMA_VERSION
        _publish(store, None, 1)
    with PostgresStore(url, schema=schema, create=True) as again:  # idempotent
        assert [i.rev for i in again.history()] == [1]
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(f'SELECT version, name FROM "{schema}".schema_migrations').fetchall()
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema=%s",
                (schema,),
            )
        }
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert tables == {
        "schema_migrations",
        "changes",
        "registries",
        "snapshots",
        "overlays",
        "overrides",
        "audit",
        "api_tokens",
    }


def test_two_processes_creating_one_store_at_once(url: str, schema: str) -> None:
    code = (
        "import sys; from flagmw.stores.postgres import PostgresStore; "
        "PostgresStore(sys.argv[1], schema=sys.argv[2], create=True).close()"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url, schema], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".schema_migrations').fetchone()
    assert row == (SCHEMA_VERSION,)


def test_a_newer_schema_version_is_refused(url: str, schema: str) -> None:
    PostgresStore(url, schema=schema, create=True).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO \"{schema}\".schema_migrations(version, name) VALUES (99, 'x')")
    with pytest.raises(StoreUnavailableError, match="schema version 99"):
        PostgresStore(url, schema=schema)


@pytest.mark.parametrize("bad", ["Flagmw", "1abc", "a-b", "a;drop", "x" * 49, ""])
def test_schema_names_are_plain(url: str, bad: str) -> None:
    with pytest.raises(ValueError, match="schema name"):
        PostgresStore(url, schema=bad)


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailableError) as info:
        PostgresStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout=1)
    assert info.value.store == "postgresql://nobody@127.0.0.1:1/none?schema=flagmw"


# -- immutability in the database --------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {s}.snapshots SET message='rewritten' WHERE rev=1",
        "UPDATE {s}.snapshots SET document='{{}}'",
        "DELETE FROM {s}.snapshots WHERE rev=1",
        "TRUNCATE {s}.snapshots CASCADE",
        "UPDATE {s}.audit SET reason='nothing happened'",
        "DELETE FROM {s}.audit",
        "TRUNCATE {s}.audit",
    ],
)
def test_snapshots_and_audit_rows_are_immutable(url: str, schema: str, statement: str) -> None:
    with PostgresStore(url, schema=schema, create=True) as store:
        _publish(store, None, 1)
        before = (store.get_snapshot(1), store.audit())
        with (
            psycopg.connect(url, autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"immutable|append-only"),
        ):
            conn.execute(statement.format(s=f'"{schema}"'))
        assert (store.get_snapshot(1), store.audit()) == before


# -- concurrency -------------------------------------------------------------------------


def test_concurrent_publishers_exactly_one_wins_each_round(url: str, schema: str) -> None:
    stores = [PostgresStore(url, schema=schema, create=True) for _ in range(4)]
    try:
        _publish(stores[0], None, 1)
        for round_ in range(5):
            head = round_ + 1
            barrier = threading.Barrier(len(stores))
            outcomes: list[Any] = []

            def race(
                store: PostgresStore,
                head: int = head,
                barrier: Any = barrier,
                outcomes: list[Any] = outcomes,
            ) -> None:
                barrier.wait()
                try:
                    outcomes.append(_publish(store, head, 100 + head).rev)
                except ConflictError as exc:
                    outcomes.append((exc.expected_parent, exc.actual_head))

            threads = [threading.Thread(target=race, args=(s,)) for s in stores]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(outcomes, key=str) == sorted(
                [head + 1] + [(head, head + 1)] * (len(stores) - 1), key=str
            )
        history = stores[1].history()
        assert [i.rev for i in history] == list(range(6, 0, -1))
        assert [e.seq for e in stores[2].audit()] == list(range(6, 0, -1)), "gapless audit"
    finally:
        for s in stores:
            s.close()


# -- the change listener -----------------------------------------------------------------


def test_notification_payload_carries_only_ids(url: str, schema: str) -> None:
    with (
        PostgresStore(url, schema=schema, create=True) as store,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        conn.execute(f'LISTEN "flagmw.{schema}"')
        store.publish(
            {"values": {"big": "x" * 20_000}},
            {"flags": {}},
            content_hash="h",
            registry_fingerprint="f",
            parent_rev=None,
            author="a",
            message="a large document",
            at=1.0,
        )
        notes = list(conn.notifies(timeout=5, stop_after=1))
    assert [json.loads(n.payload) for n in notes] == [{"seq": [1, 0], "rev": 1}]


def test_a_client_whose_listener_cannot_connect_reports_the_store_unavailable(
    url: str, schema: str, registry: FlagRegistry
) -> None:
    PostgresStore(url, schema=schema, create=True).close()
    store = PostgresStore(url, schema=schema, poll_interval=0.1, stale_after=0.5)
    try:
        client = FlagClient(registry, store)
        client.publish(snapshot_part(), author="a", message="m")
        assert client.status().healthy
        good = store.listen_conninfo
        store.listen_conninfo = psycopg.conninfo.make_conninfo(good, dbname="flagmw_no_such_db")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (store.listener_pid,))
        time.sleep(0.8)
        client.poll()
        status = client.status()
        assert (status.healthy, status.stale) == (False, True)
        assert "no change notifications" in (status.last_error or "")
        assert client.snapshot_rev == 1, "keeps serving the last good snapshot"
        store.listen_conninfo = good
        deadline = time.monotonic() + 10
        while not client.status().healthy:
            assert time.monotonic() < deadline, client.status()
            client.refresh(force=True)
            time.sleep(0.05)
        assert client.status().stale is False
    finally:
        store.close()


def test_the_slow_poll_catches_a_change_without_a_notification(url: str, schema: str) -> None:
    with (
        PostgresStore(url, schema=schema, create=True) as store,
        PostgresStore(url, schema=schema, poll_interval=0.2) as reader,
    ):
        token = reader.change_token()
        # a change whose notification never comes (written behind the store's back, as
        # a notification lost in a proxy would look)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'UPDATE "{schema}".changes SET override_seq = override_seq + 1')
        deadline = time.monotonic() + 5
        while reader.change_token() == token:
            assert time.monotonic() < deadline, "the slow poll never noticed"
            time.sleep(0.01)
        assert reader.change_token() == store.read_state(0).token


# -- URLs and the command line -----------------------------------------------------------


def test_url_opener_reads_schema_and_listener_parameters(url: str, schema: str) -> None:
    PostgresStore(url, schema=schema, create=True).close()
    sep = "&" if "?" in url else "?"
    with open_url(f"{url}{sep}schema={schema}&listen_port=5432", create=False) as store:
        assert store.schema == schema
        assert "schema" not in store.conninfo
        assert "port=5432" in store.listen_conninfo
        assert store.change_token() == store.read_state(0).token
    with open_store(f"{url}{sep}schema={schema}") as store:  # type: ignore[attr-defined]
        assert isinstance(store, PostgresStore)


def test_the_command_line_with_a_postgres_store(url: str, schema: str, tmp_path: Path) -> None:
    flags = tmp_path / "flags.yaml"
    flags.write_text(FLAGS_YAML, encoding="utf-8")
    spec = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    env = {**os.environ, "FLAGMW_STORE": spec}

    def run(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(FLAGMW_COMMAND), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            **kw,
        )

    missing = run("history", "--store", spec)
    assert missing.returncode != 0
    assert "no flagmw store" in missing.stderr
    assert "Traceback" not in missing.stderr
    refused = run("publish", str(flags), "--store", spec, "--author", "a", "--message", "m")
    assert refused.returncode == 2  # only init creates a store
    assert "flagmw init" in refused.stderr
    created = run("init", "--no-flags-file", "--store", spec)
    assert created.returncode == 0, created.stderr
    assert "created store" in created.stdout
    done = run("publish", str(flags), "--store", spec, "--author", "a", "--message", "m")
    assert done.returncode == 0, done.stderr
    killed = run("kill", "tools.refund_api.enabled", "--reason", "r", "--actor", "a", env=env)
    assert killed.returncode == 0, killed.stderr
    history = run("history", "--json", env=env)
    assert history.returncode == 0, history.stderr
    assert [i["rev"] for i in json.loads(history.stdout)["snapshots"]] == [1]
    with PostgresStore(url, schema=schema) as store:
        assert [e.action for e in store.audit()] == ["kill.set", "publish"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents(
    url: str, schema: str
) -> None:
    with PostgresStore(url, schema=schema, create=True) as store:
        _publish(store, None, 1)
        token = store.change_token()  # the listener runs, the pool holds a connection
        parent_listener = store.listener_pid
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                out = {
                    "token": list(store.change_token()),
                    "head": store.head().rev,  # type: ignore[union-attr]
                    "listener": store.listener_pid,
                }
                out["rev"] = _publish(store, 1, 2).rev
                os.write(w, json.dumps(out).encode())
            except BaseException as exc:
                os.write(w, json.dumps({"error": repr(exc)}).encode())
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        child = json.loads(data)
        assert "error" not in child, child
        assert child["token"] == list(token)
        assert child["head"] == 1
        assert child["rev"] == 2
        assert child["listener"] not in (None, parent_listener), "its own listener"
        # the parent's sessions survived the child: its listener hears the child's publish
        deadline = time.monotonic() + 5
        while store.change_token() == token:
            assert time.monotonic() < deadline, "the parent's listener is gone"
            time.sleep(0.005)
        assert store.listener_pid == parent_listener
        assert store.head().rev == 2  # type: ignore[union-attr]


# -- the token (pure: no server) ---------------------------------------------------------

_seqs = st.tuples(st.integers(0, 50), st.integers(0, 50))


@given(st.lists(_seqs, max_size=30))
def test_the_token_only_grows_whatever_order_sequences_arrive_in(
    arrivals: list[tuple[int, int]],
) -> None:
    # notifications, resyncs, polls and a store's own writes all fold into the token, in
    # any order (threads): it is the componentwise maximum of all, never going back
    listener = ChangeListener()
    listener._init_listener()
    seen = [listener._seqs]
    for seqs in arrivals:
        listener._advance(seqs)
        seen.append(listener._seqs)
    for before, after in itertools.pairwise(seen):
        assert after[0] >= before[0]
        assert after[1] >= before[1]
    if arrivals:
        assert listener._seqs == (max(a[0] for a in arrivals), max(a[1] for a in arrivals))


@given(st.dictionaries(st.sampled_from(["seq", "rev", "ov", "x"]), st.integers(0, 2**62)))
def test_notification_payloads_are_small(ids: dict[str, int]) -> None:
    seqs = (ids.pop("seq", 0), ids.pop("x", 0))
    text = payload(seqs, **ids)
    assert len(text.encode()) < 200
    assert json.loads(text)["seq"] == list(seqs)


def test_a_store_whose_sessions_were_all_terminated_recovers(url: str, schema: str) -> None:
    """As after a server restart or a failover: every pooled connection and the listener
    are cut; the next read and write use fresh connections, the listener reconnects."""
    with (
        PostgresStore(url, schema=schema, create=True) as store,
        PostgresStore(url, schema=schema) as writer,
    ):
        _publish(store, None, 1)
        token = store.change_token()
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name IN (%s, %s)",
                (f"flagmw:{schema}", f"flagmw-listen:{schema}"),
            ).fetchall()
        assert len(rows) >= 2, "the listener and the pooled session(s)"
        assert store.head().rev == 1  # type: ignore[union-attr]
        _publish(writer, 1, 2)
        deadline = time.monotonic() + 10
        while store.change_token() == token:
            assert time.monotonic() < deadline, "the listener never came back"
            time.sleep(0.01)
        assert store.read_state(0).token == store.change_token()
        assert store.head().rev == 2  # type: ignore[union-attr]


def test_a_lost_listener_is_reported_within_half_a_second(
    url: str, schema: str, registry: FlagRegistry
) -> None:
    PostgresStore(url, schema=schema, create=True).close()
    store = PostgresStore(url, schema=schema)  # poll_interval 1 s, stale_after 3 s
    good = store.listen_conninfo
    try:
        client = FlagClient(registry, store)
        assert client.status().healthy
        store.listen_conninfo = psycopg.conninfo.make_conninfo(good, dbname="flagmw_no_such_db")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (store.listener_pid,))
        lost = time.monotonic()
        while client.status().healthy:
            client.poll()
            assert time.monotonic() - lost < 1.0, "not reported within one poll interval"
            time.sleep(0.01)
        assert client.status().stale
    finally:
        store.listen_conninfo = good
        store.close()
