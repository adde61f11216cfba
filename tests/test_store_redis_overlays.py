"""RedisStore's overlay keys on a real server (``FLAGMW_TEST_REDIS_URL``): the protocol
of tenant and route overlays runs in ``tests/test_store_contract.py``.

* key format 1 → 2: a store written by the format-1 layout, holding revs with their
  tenants and routes inline, is migrated at open: each rev keeps its document and its
  recorded content hash; overlay keys are written only for the overlays that changed at
  each rev; the digests let the next one-tenant publish hash like the whole document;
* the overlay keys of a publish, under the store's prefix.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from store_kinds import redis_cleanup

redis = pytest.importorskip("redis")

from flagmw.core.snapshot_hash import document_hash  # noqa: E402
from flagmw.errors import StoreUnavailableError  # noqa: E402
from flagmw.stores._redis_keys import FORMAT  # noqa: E402
from flagmw.stores.redis import RedisStore  # noqa: E402

KEY = "loop.max_iterations"


@pytest.fixture
def url() -> str:
    value = os.environ.get("FLAGMW_TEST_REDIS_URL")
    if not value:
        pytest.skip("set FLAGMW_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    return value


@pytest.fixture
def prefix(url: str) -> Iterator[str]:
    """A private key prefix, deleted at teardown."""
    name = f"flagmw-test:{uuid.uuid4().hex[:16]}:"
    yield name
    redis_cleanup(url, name)


#: the documents of revs 1-3 as a format-1 store holds them (overlays inline)
OLD_REVS: list[dict[str, Any]] = [
    {
        "values": {KEY: 5},
        "tenants": {"acme": {"values": {KEY: 3}}, "globex": {"values": {KEY: 4}}},
        "routes": {"billing": {"values": {KEY: 2}}},
    },
    {
        "values": {KEY: 5},
        "tenants": {
            "acme": {"values": {KEY: 30}},
            "globex": {"values": {KEY: 4}},
            "initech": {"values": {}},
        },
        "routes": {"billing": {"values": {KEY: 2}}},
    },
    {
        "values": {KEY: 6},
        "tenants": {"acme": {"values": {KEY: 30}}, "initech": {"values": {}}},
        "routes": {},
    },
]


def _format_1_store(url: str, prefix: str) -> None:
    """A store as flagmw wrote it with key format 1, with three revs."""
    with redis.Redis.from_url(url) as r:
        r.hset(f"{prefix}store", mapping={"format": 1, "created_at": "1.0"})
        r.hset(f"{prefix}seq", mapping={"snapshot": 3, "override": 0})
        r.set(f"{prefix}reg:sha256:reg", '{"flags":{}}')
        for rev, doc in enumerate(OLD_REVS, 1):
            info = {
                "rev": rev,
                "parent_rev": rev - 1 or None,
                "content_hash": f"sha256:old-{rev}",
                "author": "a",
                "message": "m",
                "created_at": 1.0,
                "registry_fingerprint": "sha256:reg",
                "action": "publish",
                "rollback_of": None,
            }
            r.rpush(f"{prefix}history", json.dumps(info))
            r.set(f"{prefix}snap:{rev}", json.dumps(doc))


def test_a_format_1_store_is_migrated_at_open(url: str, prefix: str) -> None:
    _format_1_store(url, prefix)
    with RedisStore(url, prefix=prefix) as store:
        for rev, doc in enumerate(OLD_REVS, 1):
            record = store.get_snapshot(rev)
            assert record.document == doc
            assert record.info.content_hash == f"sha256:old-{rev}"  # kept as recorded
            base = store.get_snapshot(rev, overlays=False).document
            assert base == {**doc, "tenants": {}, "routes": {}}
        assert store.changed_overlays(0, 1) == {
            ("tenants", "acme"),
            ("tenants", "globex"),
            ("routes", "billing"),
        }
        assert store.changed_overlays(1, 2) == {("tenants", "acme"), ("tenants", "initech")}
        assert store.changed_overlays(2, 3) == {("tenants", "globex"), ("routes", "billing")}
        assert store.overlay_names(3) == [("tenants", "acme"), ("tenants", "initech")]
        assert store.change_token() == (3, 0)  # the content did not change
        info = store.publish_overlays(
            {("tenants", "hooli"): {"values": {KEY: 1}}},
            {"flags": {}},
            registry_fingerprint="sha256:reg",
            parent_rev=3,
            author="b",
            message="one tenant",
            at=2.0,
        )
        expected = {**OLD_REVS[2], "tenants": {**OLD_REVS[2]["tenants"]}}
        expected["tenants"]["hooli"] = {"values": {KEY: 1}}
        assert store.get_snapshot(4).document == expected
        assert info.content_hash == document_hash(expected)
    with RedisStore(url, prefix=prefix) as again:  # a second open changes nothing
        assert again.get_snapshot(1).document == OLD_REVS[0]
    with redis.Redis.from_url(url, decode_responses=True) as r:
        assert r.hget(f"{prefix}store", "format") == str(FORMAT) == "2"
        assert json.loads(r.get(f"{prefix}snap:1"))["tenants"] == {}
        assert r.hgetall(f"{prefix}overlay:tenants:acme") == {
            "1": '{"values":{"loop.max_iterations":3}}',
            "2": '{"values":{"loop.max_iterations":30}}',
        }
        assert r.hgetall(f"{prefix}overlay:tenants:globex")["3"] == ""  # removed at 3


def test_a_newer_key_format_is_refused(url: str, prefix: str) -> None:
    with redis.Redis.from_url(url) as r:
        r.hset(f"{prefix}store", mapping={"format": FORMAT + 1, "created_at": "1.0"})
    with pytest.raises(StoreUnavailableError, match=f"format {FORMAT + 1} is newer"):
        RedisStore(url, prefix=prefix)


def test_the_overlay_keys_of_a_publish(url: str, prefix: str) -> None:
    with RedisStore(url, prefix=prefix, create=True) as store:
        doc = {"values": {}, "tenants": {"a:b": {"values": {KEY: 1}}}, "routes": {}}
        store.publish(
            doc,
            {"flags": {}},
            content_hash=document_hash(doc),
            registry_fingerprint="sha256:reg",
            parent_rev=None,
            author="a",
            message="m",
            at=1.0,
        )
        assert store.get_snapshot().document == doc
        assert store.overlay_names(1) == [("tenants", "a:b")]  # a name may hold ':'
    with redis.Redis.from_url(url, decode_responses=True) as r:
        keys = {k.removeprefix(prefix) for k in r.scan_iter(match=prefix + "*")}
        history = json.loads(r.lindex(f"{prefix}history", 0))
    assert {"overlay:tenants:a:b", "overlays", "changed:1", "snap:1"} <= keys
    assert len(history["overlay_digest"]) == 512


def test_a_history_entry_without_a_digest_is_summarised_once(url: str, prefix: str) -> None:
    doc = {"values": {}, "tenants": {"acme": {"values": {KEY: 1}}}, "routes": {}}
    with RedisStore(url, prefix=prefix, create=True) as store:
        store.publish(
            doc,
            {"flags": {}},
            content_hash=document_hash(doc),
            registry_fingerprint="sha256:reg",
            parent_rev=None,
            author="a",
            message="m",
            at=1.0,
        )
        with redis.Redis.from_url(url, decode_responses=True) as r:
            entry = json.loads(r.lindex(f"{prefix}history", 0))
            del entry["overlay_digest"]
            r.lset(f"{prefix}history", 0, json.dumps(entry))
        info = store.publish_overlays(
            {("tenants", "hooli"): {"values": {}}},
            {"flags": {}},
            registry_fingerprint="sha256:reg",
            parent_rev=1,
            author="b",
            message="one tenant",
            at=2.0,
        )
        expected = {**doc, "tenants": {**doc["tenants"], "hooli": {"values": {}}}}
        assert store.get_snapshot(2).document == expected
        assert info.content_hash == document_hash(expected)
