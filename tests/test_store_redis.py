"""RedisStore specifics on a real server (``FLAGMW_TEST_REDIS_URL``): the protocol itself
runs in ``tests/test_stores.py`` and ``tests/test_store_contract.py``.

* never created by accident: a missing store is a clear error and writes no key; every
  key lives under the store's prefix, so applications and environments are isolated;
* concurrent publishers on separate connections: exactly one wins each parent rev;
* the change listener: messages carry only ids; a second instance learns of a kill made
  by another process without polling; a killed listener connection (``CLIENT KILL``)
  resyncs on reconnect and picks up what was written meanwhile; a lost listener is
  reported within half a second;
* a fault test on a private ``redis-server`` (AOF on) stopped mid-way: the client keeps
  its last good config and reports stale, a kill during the outage is refused (never
  reported as done), and after the restart the client recovers with nothing lost;
* the URL opener and the ``flagmw`` command with ``--store redis://…`` / ``FLAGMW_STORE``;
* after ``fork()`` the child opens its own listener and pool and leaves the parent's alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FLAGS_YAML, snapshot_part
from store_kinds import redis_cleanup, redis_disconnected

redis = pytest.importorskip("redis")

from flagmw import (  # noqa: E402
    ConflictError,
    FlagClient,
    FlagRegistry,
    StoreUnavailableError,
)
from flagmw.stores.redis import RedisStore, open_url  # noqa: E402
from flagmw.stores.url import open_store  # noqa: E402

FLAGMW_COMMAND = Path(sys.executable).parent / "flagmw"
KEY = "loop.max_iterations"
REFUND = "tools.refund_api.enabled"


@pytest.fixture
def url() -> str:
    value = os.environ.get("FLAGMW_TEST_REDIS_URL")
    if not value:
        pytest.skip("set FLAGMW_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    return value


@pytest.fixture
def app(url: str) -> Iterator[str]:
    """A private application name: its stores live under ``flagmw:<app>:``, deleted at
    teardown."""
    name = f"t{uuid.uuid4().hex[:16]}"
    yield name
    redis_cleanup(url, f"flagmw:{name}:")


def _keys(url: str, pattern: str) -> set[str]:
    with redis.Redis.from_url(url, decode_responses=True) as r:
        return set(r.scan_iter(match=pattern, count=1000))


def _publish(store: RedisStore, parent: int | None, value: int) -> Any:
    return store.publish(
        {"values": {KEY: value}},
        {"flags": {}},
        content_hash=f"sha256:{value}",
        registry_fingerprint="sha256:reg",
        parent_rev=parent,
        author="a",
        message=f"v{value}",
        at=1.0,
    )


def _doc(value: int) -> dict[str, Any]:
    doc = snapshot_part()
    doc["values"][KEY] = value
    return doc


def _wait(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


# -- never created by accident; namespaces ------------------------------------------------


def test_a_missing_store_is_an_error_and_nothing_is_created(url: str, app: str) -> None:
    with pytest.raises(StoreUnavailableError, match="no flagmw store under this prefix"):
        RedisStore(url, app=app, env="prod")
    with pytest.raises(StoreUnavailableError, match="flagmw init"):
        open_store(f"{url}?app={app}&env=prod")
    assert _keys(url, f"flagmw:{app}:*") == set()
    with RedisStore(url, app=app, env="prod", create=True) as store:
        assert store.head() is None
    with RedisStore(url, app=app, env="prod") as store:  # now it exists
        assert store.history() == []


def test_every_key_is_under_its_prefix_and_environments_are_isolated(url: str, app: str) -> None:
    with (
        RedisStore(url, app=app, env="prod", create=True) as prod,
        RedisStore(url, app=app, env="staging", create=True) as staging,
    ):
        _publish(prod, None, 3)
        prod.add_override(_kill())
        assert staging.head() is None
        assert staging.list_overrides() == []
        assert staging.change_token() == (0, 0)
        keys = _keys(url, f"flagmw:{app}:*")
        assert all(k.startswith((f"flagmw:{app}:prod:", f"flagmw:{app}:staging:")) for k in keys)
        assert {k.removeprefix(f"flagmw:{app}:prod:") for k in keys if ":prod:" in k} == {
            "store",
            "seq",
            "history",
            "snap:1",
            "reg:sha256:reg",
            "ov",
            "audit",
        }


@pytest.mark.parametrize("bad", ["", "a:b", "a b", "x" * 65, "ümlaut"])
def test_app_and_env_names_are_plain(url: str, bad: str) -> None:
    with pytest.raises(ValueError, match="bad Redis store"):
        RedisStore(url, app=bad, env="prod", create=True)
    with pytest.raises(ValueError, match="bad Redis store"):
        RedisStore(url, app="ok", env=bad, create=True)


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(StoreUnavailableError, match=r"redis://127\.0\.0\.1:1/0"):
        RedisStore("redis://127.0.0.1:1/0", app="x", env="y", connect_timeout=1)


def test_a_store_whose_keys_vanished_refuses_reads_and_writes(url: str, app: str) -> None:
    """A Redis restarted without persistence (or a FLUSHDB) loses the marker: reads and
    writes say so instead of serving or writing into an empty store."""
    with RedisStore(url, app=app, env="prod", create=True) as store:
        _publish(store, None, 1)
        redis_cleanup(url, f"flagmw:{app}:")
        with pytest.raises(StoreUnavailableError, match="marker is gone"):
            store.read_state(0)
        with pytest.raises(StoreUnavailableError, match="marker is gone"):
            _publish(store, 1, 2)
        assert _keys(url, f"flagmw:{app}:*") == set(), "nothing was written"


# -- concurrency ---------------------------------------------------------------------------


def _kill(key: str = REFUND) -> Any:
    from flagmw.core.overrides import Override, OverrideKind, ScopeKind

    return Override("", key, False, OverrideKind.KILL, ScopeKind.GLOBAL, None, "r", "a", 1.0, 9e9)


def test_concurrent_publishers_exactly_one_wins_each_round(url: str, app: str) -> None:
    stores = [RedisStore(url, app=app, env="prod", create=True) for _ in range(4)]
    try:
        _publish(stores[0], None, 1)
        for round_ in range(5):
            head = round_ + 1
            barrier = threading.Barrier(len(stores))
            outcomes: list[Any] = []

            def race(
                store: RedisStore,
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
        assert [i.rev for i in stores[1].history()] == list(range(6, 0, -1))
        assert [e.seq for e in stores[2].audit()] == list(range(6, 0, -1)), "gapless audit"
    finally:
        for s in stores:
            s.close()


def test_concurrent_kills_get_distinct_ids_and_audit_seqs(url: str, app: str) -> None:
    stores = [RedisStore(url, app=app, env="prod", create=True) for _ in range(4)]
    try:
        barrier = threading.Barrier(len(stores))

        def add(store: RedisStore) -> None:
            barrier.wait()
            for _ in range(10):
                store.add_override(_kill())

        threads = [threading.Thread(target=add, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [o.id for o in stores[0].list_overrides()]
        assert sorted(ids) == sorted(f"ov-{n}" for n in range(1, 41))
        assert [e.seq for e in stores[0].audit(limit=100)] == list(range(40, 0, -1))
        assert stores[0].change_token() == (0, 40)
    finally:
        for s in stores:
            s.close()


# -- the change listener -------------------------------------------------------------------


def test_notification_payload_carries_only_ids(url: str, app: str) -> None:
    with RedisStore(url, app=app, env="prod", create=True) as store:
        with redis.Redis.from_url(url) as r:
            sub = r.pubsub(ignore_subscribe_messages=True)
            sub.subscribe(f"flagmw:{app}:prod:changes")
            _publish(store, None, 5)
            ov = store.add_override(_kill())
            got = []
            deadline = time.monotonic() + 5
            while len(got) < 2 and time.monotonic() < deadline:
                msg = sub.get_message(timeout=0.5)
                if msg:
                    got.append(json.loads(msg["data"]))
            sub.close()
        assert got == [{"seq": [1, 0], "rev": 1}, {"seq": [1, 1], "ov": ov.id}]


def test_a_kill_from_another_process_reaches_a_second_instance_without_polling(
    url: str, app: str, registry: FlagRegistry, tmp_path: Path
) -> None:
    spec = f"{url}?app={app}&env=prod"
    flags = tmp_path / "flags.yaml"
    flags.write_text(FLAGS_YAML, encoding="utf-8")
    RedisStore(url, app=app, env="prod", create=True).close()
    with RedisStore(url, app=app, env="prod", poll_interval=3600) as store:
        client = FlagClient(registry, store)
        FlagClient(registry, open_url(spec, create=False)).publish(flags, author="a", message="m")
        _wait(lambda: client.poll() > 0 and client.snapshot_rev == 1, "the publish")
        token = store.change_token()
        done = subprocess.run(
            [str(FLAGMW_COMMAND), "kill", REFUND, "--reason", "r", "--actor", "a"],
            env={**os.environ, "FLAGMW_STORE": spec},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        # the other process has exited: its change reached us by pub/sub alone (no poll
        # within the hour)
        _wait(lambda: store.change_token() != token, "the kill's message")
        client.poll()
        assert client.is_enabled(REFUND) is False


def test_a_killed_listener_connection_resyncs_and_picks_up_what_it_missed(
    url: str, app: str
) -> None:
    with (
        RedisStore(url, app=app, env="prod", create=True) as writer,
        RedisStore(url, app=app, env="prod", poll_interval=3600) as reader,
    ):
        _publish(writer, None, 1)
        _wait(lambda: reader.change_token() == (1, 0), "the first publish")
        old_id = reader.listener_client_id
        with redis_disconnected(reader):  # CLIENT KILL ID <listener>, reconnect held off
            _publish(writer, 1, 2)
            writer.add_override(_kill())
            time.sleep(0.05)
            assert reader.change_token() == (1, 0), "its messages were lost"
        _wait(lambda: reader.change_token() == (2, 1), "the resync after reconnecting")
        assert reader.listener_client_id not in (None, old_id)
        assert reader.read_state(0).head.rev == 2  # type: ignore[union-attr]
        _publish(writer, 2, 3)  # and messages flow again
        _wait(lambda: reader.change_token() == (3, 1), "a message after reconnecting")


def test_a_lost_listener_is_reported_within_half_a_second_and_recovers(
    url: str, app: str, registry: FlagRegistry
) -> None:
    RedisStore(url, app=app, env="prod", create=True).close()
    with RedisStore(url, app=app, env="prod") as store:  # poll 1 s, stale_after 3 s
        client = FlagClient(registry, store)
        client.publish(snapshot_part(), author="a", message="m")
        assert client.status().healthy
        with redis_disconnected(store):
            lost = time.monotonic()
            while client.status().healthy:
                client.poll()
                assert time.monotonic() - lost < 1.0, "not reported within one poll interval"
                time.sleep(0.01)
            status = client.status()
            assert status.stale
            assert "no change notifications" in (status.last_error or "")
            assert client.snapshot_rev == 1, "keeps serving the last good snapshot"
        _wait(lambda: client.refresh(force=True) or client.status().healthy, "recovery", 10)


def test_the_slow_poll_catches_a_change_without_a_message(url: str, app: str) -> None:
    with (
        RedisStore(url, app=app, env="prod", create=True) as store,
        RedisStore(url, app=app, env="prod", poll_interval=0.2) as reader,
    ):
        token = reader.change_token()
        # a change whose message never comes (written behind the store's back)
        with redis.Redis.from_url(url) as r:
            r.hincrby(f"flagmw:{app}:prod:seq", "override", 1)
        _wait(lambda: reader.change_token() != token, "the slow poll")
        assert reader.change_token() == store.read_state(0).token


# -- URLs and the command line ---------------------------------------------------------------


def test_url_opener_reads_app_env_and_prefix(url: str, app: str) -> None:
    with open_url(f"{url}?app={app}&env=prod&socket_timeout=3", create=True) as store:
        assert store.prefix == f"flagmw:{app}:prod:"
        assert "app=" not in store.url
        assert "socket_timeout=3" in store.url
        assert store.change_token() == store.read_state(0).token == (0, 0)
    with open_store(f"{url}?prefix=flagmw:{app}:custom:", create=True) as store:  # type: ignore[attr-defined]
        assert isinstance(store, RedisStore)
        assert store.prefix == f"flagmw:{app}:custom:"
        assert "?prefix=flagmw:" in store.name
        assert "@" not in store.name


def test_the_command_line_with_a_redis_store(url: str, app: str, tmp_path: Path) -> None:
    flags = tmp_path / "flags.yaml"
    flags.write_text(FLAGS_YAML, encoding="utf-8")
    spec = f"{url}?app={app}&env=prod"
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
    assert _keys(url, f"flagmw:{app}:*") == set()
    refused = run("publish", str(flags), "--store", spec, "--author", "a", "--message", "m")
    assert refused.returncode == 2  # only init creates a store
    assert run("init", "--no-flags-file", "--store", spec).returncode == 0
    done = run("publish", str(flags), "--store", spec, "--author", "a", "--message", "m")
    assert done.returncode == 0, done.stderr
    killed = run("kill", REFUND, "--reason", "r", "--actor", "a", env=env)
    assert killed.returncode == 0, killed.stderr
    history = run("history", "--json", env=env)
    assert history.returncode == 0, history.stderr
    assert [i["rev"] for i in json.loads(history.stdout)["snapshots"]] == [1]
    with RedisStore(url, app=app, env="prod") as store:
        assert [e.action for e in store.audit()] == ["kill.set", "publish"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents(
    url: str, app: str
) -> None:
    with RedisStore(url, app=app, env="prod", create=True) as store:
        _publish(store, None, 1)
        token = store.change_token()  # the listener runs, the pool holds a connection
        parent_listener = store.listener_client_id
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                out = {
                    "token": list(store.change_token()),
                    "head": store.head().rev,  # type: ignore[union-attr]
                    "listener": store.listener_client_id,
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
        assert (child["head"], child["rev"]) == (1, 2)
        assert child["listener"] not in (None, parent_listener), "its own listener"
        # the parent's connections survived the child: its listener hears the publish
        _wait(lambda: store.change_token() != token, "the child's publish")
        assert store.listener_client_id == parent_listener
        assert store.head().rev == 2  # type: ignore[union-attr]
