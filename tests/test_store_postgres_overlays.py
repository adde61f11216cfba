"""PostgresStore's overlay rows on a real server (``FLAGMW_TEST_POSTGRES_URL``): the
protocol of tenant and route overlays runs in ``tests/test_store_contract.py``.

* schema 2 → 3: a store built by the earlier migrations only, holding revs with their
  tenants and routes inline, is migrated at open: each rev keeps its document, its
  recorded content hash and its immutability; overlay rows are written only for the
  overlays that changed at each rev; the digests let the next one-tenant publish hash
  like the whole document;
* overlay rows are immutable in the database (triggers), like the snapshots.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")

from flagmw.core.snapshot_hash import document_hash  # noqa: E402
from flagmw.stores._postgres_schema import MIGRATIONS  # noqa: E402
from flagmw.stores.postgres import SCHEMA_VERSION, PostgresStore  # noqa: E402

KEY = "loop.max_iterations"


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


#: the documents of revs 1-3 as a schema-2 store holds them (overlays inline)
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


def _schema_2_store(url: str, schema: str) -> None:
    """A store as flagmw wrote it at schema version 2, with three revs."""
    s = f'"{schema}"'
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE SCHEMA {s}")
        conn.execute(
            f"CREATE TABLE {s}.schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for number, title, sql in MIGRATIONS[:2]:
            conn.execute(sql.format(s=s).encode())
            conn.execute(
                f"INSERT INTO {s}.schema_migrations(version, name) VALUES (%s, %s)",
                (number, title),
            )
        conn.execute(f"INSERT INTO {s}.registries VALUES ('sha256:reg', '{{\"flags\":{{}}}}')")
        for rev, doc in enumerate(OLD_REVS, 1):
            conn.execute(
                f"INSERT INTO {s}.snapshots(rev, parent_rev, content_hash, author, message, "
                "created_at, registry_fingerprint, action, rollback_of, document) "
                "VALUES (%s, %s, %s, 'a', 'm', 1.0, 'sha256:reg', 'publish', NULL, %s)",
                (rev, rev - 1 or None, f"sha256:old-{rev}", json.dumps(doc)),
            )


def test_a_schema_2_store_is_migrated_to_overlay_rows(url: str, schema: str) -> None:
    _schema_2_store(url, schema)
    with PostgresStore(url, schema=schema) as store:
        assert store.schema_version == SCHEMA_VERSION >= 3
        for rev, doc in enumerate(OLD_REVS, 1):
            record = store.get_snapshot(rev)
            assert record.document == doc
            assert record.info.content_hash == f"sha256:old-{rev}"  # kept as recorded
            assert store.get_snapshot(rev, overlays=False).document == {
                **doc,
                "tenants": {},
                "routes": {},
            }
        assert store.changed_overlays(0, 1) == {
            ("tenants", "acme"),
            ("tenants", "globex"),
            ("routes", "billing"),
        }
        assert store.changed_overlays(1, 2) == {("tenants", "acme"), ("tenants", "initech")}
        assert store.changed_overlays(2, 3) == {("tenants", "globex"), ("routes", "billing")}
        assert store.overlay_names(3) == [("tenants", "acme"), ("tenants", "initech")]
        # the digests are right: a one-tenant publish hashes like the whole document
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
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT rev, count(*) FROM "{schema}".overlays GROUP BY rev ORDER BY rev'
        ).fetchall()
        stored = conn.execute(f'SELECT document FROM "{schema}".snapshots WHERE rev=1').fetchone()
        versions = conn.execute(
            f'SELECT version FROM "{schema}".schema_migrations ORDER BY version'
        ).fetchall()
        # immutability is back in force after the migration
        for statement in (
            "UPDATE {s}.snapshots SET message='x' WHERE rev=1",
            "UPDATE {s}.overlays SET body=NULL",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.format(s=f'"{schema}"'))
    assert rows == [(1, 3), (2, 2), (3, 2), (4, 1)]
    assert stored is not None
    assert json.loads(stored[0])["tenants"] == {}
    assert [v[0] for v in versions] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {s}.overlays SET body='{{}}'",
        "DELETE FROM {s}.overlays WHERE rev=1",
        "TRUNCATE {s}.overlays",
    ],
)
def test_overlay_rows_are_immutable(url: str, schema: str, statement: str) -> None:
    with PostgresStore(url, schema=schema, create=True) as store:
        doc = {"values": {}, "tenants": {"acme": {"values": {KEY: 3}}}}
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
        with (
            psycopg.connect(url, autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="immutable"),
        ):
            conn.execute(statement.format(s=f'"{schema}"'))
        assert store.get_snapshot(1).document == doc
