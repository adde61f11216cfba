"""Every store backend, by name, for the one contract suite (``tests/test_store_contract.py``
and the protocol tests in ``tests/test_stores.py``).

Each entry builds a fresh, empty, isolated store and returns it with a cleanup function:
a temporary SQLite file, a private PostgreSQL schema, a private Redis key prefix. Server
backends read ``FLAGMW_TEST_POSTGRES_URL`` / ``FLAGMW_TEST_REDIS_URL`` and skip with a
clear reason when unset (``.ci/run`` sets them and turns a skip into a failure).

Two optional hooks per backend serve the notification and reconnect contract tests:
:data:`SECOND_INSTANCE` (open another instance on the same store that learns of changes
by notification only) and :data:`DISCONNECTED` (a context manager that cuts the
instance's notification connection and keeps it cut until the block ends). A backend
without an entry skips those tests with the reason.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from flagmw import MemoryStore, SQLiteStore, Store

#: name → factory(tmp_path) -> (store, cleanup)
StoreFactory = Callable[[Path], tuple[Store, Callable[[], None]]]


def _memory(tmp_path: Path) -> tuple[Store, Callable[[], None]]:
    s = MemoryStore()
    return s, s.close


def _sqlite(tmp_path: Path) -> tuple[Store, Callable[[], None]]:
    s = SQLiteStore(tmp_path / "s.db", create=True)
    return s, s.close


def _postgres_url() -> str:
    url = os.environ.get("FLAGMW_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set FLAGMW_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    return url


def _postgres(tmp_path: Path) -> tuple[Store, Callable[[], None]]:
    import psycopg

    from flagmw.stores.postgres import PostgresStore

    url = _postgres_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"  # a private schema per test
    s = PostgresStore(url, schema=schema, create=True)

    def cleanup() -> None:
        s.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return s, cleanup


def _redis_url() -> str:
    url = os.environ.get("FLAGMW_TEST_REDIS_URL")
    if not url:
        pytest.skip("set FLAGMW_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    return url


def redis_cleanup(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN + DEL)."""
    import redis

    with redis.Redis.from_url(url) as r:
        keys = list(r.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000))
        if keys:
            r.delete(*keys)


def _redis(tmp_path: Path) -> tuple[Store, Callable[[], None]]:
    from flagmw.stores.redis import RedisStore

    url = _redis_url()
    prefix = f"flagmw-test:{uuid.uuid4().hex[:16]}:"  # a private key prefix per test
    s = RedisStore(url, prefix=prefix, create=True)

    def cleanup() -> None:
        s.close()
        redis_cleanup(url, prefix)

    return s, cleanup


STORE_KINDS: dict[str, StoreFactory] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
    "redis": _redis,
}


# -- per-kind hooks of the notification and reconnect contract tests ---------------------


def _sqlite_second(store: Store) -> Store:
    assert isinstance(store, SQLiteStore)
    return SQLiteStore(store.path, create=False, verify_interval=3600)


def _postgres_second(store: Store) -> Store:
    from flagmw.stores.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    # no safety-net poll within the test: only a notification can move its token
    return PostgresStore(store.conninfo, schema=store.schema, poll_interval=3600)


#: name → open a second instance on the same store that learns of changes by
#: notification only (its safety-net poll, if any, disabled); kinds without one skip.
def _redis_second(store: Store) -> Store:
    from flagmw.stores.redis import RedisStore

    assert isinstance(store, RedisStore)
    # no safety-net poll within the test: only a pub/sub message can move its token
    return RedisStore(store.url, prefix=store.prefix, poll_interval=3600)


SECOND_INSTANCE: dict[str, Callable[[Store], Store]] = {
    "sqlite": _sqlite_second,
    "postgres": _postgres_second,
    "redis": _redis_second,
}


@contextmanager
def _postgres_disconnected(store: Store) -> Iterator[None]:
    """Kill the listener's backend (``pg_terminate_backend``) and keep it from
    reconnecting until the block ends (its connection string points at a database that
    does not exist meanwhile)."""
    import psycopg

    from flagmw.stores.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    pid = store.listener_pid
    assert pid is not None, "the listener is not connected"
    good = store.listen_conninfo
    store.listen_conninfo = psycopg.conninfo.make_conninfo(good, dbname="flagmw_no_such_db")
    try:
        with psycopg.connect(store.conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
            assert row == (True,)
        deadline = time.monotonic() + 10
        while store.listener_pid is not None:
            assert time.monotonic() < deadline, "the listener did not notice"
            time.sleep(0.001)
        yield
    finally:
        store.listen_conninfo = good


#: name → a context manager during which the store's change notifications are cut (its
#: listener disconnected); on leaving it may reconnect. Kinds without one skip.
@contextmanager
def redis_disconnected(store: Store) -> Iterator[None]:
    """Kill the listener's connection (``CLIENT KILL ID``) and keep it from reconnecting
    until the block ends (its URL points at a closed port meanwhile)."""
    import redis

    from flagmw.stores.redis import RedisStore

    assert isinstance(store, RedisStore)
    client_id = store.listener_client_id
    assert client_id is not None, "the listener is not connected"
    good = store.listen_url
    store.listen_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        with redis.Redis.from_url(store.url) as r:
            assert r.client_kill_filter(_id=client_id) == 1
        deadline = time.monotonic() + 10
        while store.listener_client_id is not None:
            assert time.monotonic() < deadline, "the listener did not notice"
            time.sleep(0.001)
        yield
    finally:
        store.listen_url = good


DISCONNECTED: dict[str, Callable[[Store], AbstractContextManager[None]]] = {
    "postgres": _postgres_disconnected,
    "redis": redis_disconnected,
}
