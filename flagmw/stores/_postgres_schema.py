"""The PostgreSQL store's schema: versioned migrations it owns, and the check at open.

Everything lives in one PostgreSQL schema (``flagmw`` unless told otherwise), so one
database can hold several stores side by side:

* ``schema_migrations`` — one row per applied migration (version, name, applied_at);
* ``changes`` — one row: the two change sequences (``snapshot_seq``, ``override_seq``),
  bumped in the same transaction as every change; its row lock serialises writers;
* ``registries`` — the registries snapshots were validated against, by fingerprint;
* ``snapshots`` — one row per rev (its base document and overlay digest), immutable;
* ``overlays`` — the tenant and route overlays of every rev, one row per overlay changed
  at that rev (schema version 3; :mod:`flagmw.stores._postgres_overlays`), immutable;
* ``overrides`` — the emergency layer;
* ``audit`` — the append-only log;
* ``api_tokens`` — the console's API tokens, hashed (migration 4,
  :mod:`flagmw.stores.tokens`).

Snapshots and audit rows are immutable *in the database*: triggers raise on UPDATE,
DELETE and TRUNCATE, whoever connects. (``DROP SCHEMA … CASCADE`` by the owner is still
possible; that is an administrator's act, not the store's.)

Migrations are ordered SQL steps (:data:`MIGRATIONS`), some followed by a data step
in Python (:data:`DATA_STEPS`); pending ones are applied in one transaction together with
their ``schema_migrations`` rows, under a transaction-scoped advisory lock, so two
processes opening a new store at once apply them once. Add a step by appending
``(version, name, sql)``; never edit a released one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import psycopg

from flagmw.errors import StoreUnavailableError
from flagmw.stores._postgres_overlays import OVERLAYS_SQL, migrate_to_overlays

__all__ = ["DATA_STEPS", "MIGRATIONS", "SCHEMA_VERSION", "check_schema_name", "ensure_schema"]

#: ``(version, name, SQL)``; ``{s}`` is the quoted schema name.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "initial: changes, registries, snapshots, overrides, audit",
        """
CREATE TABLE {s}.changes (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    snapshot_seq bigint NOT NULL,
    override_seq bigint NOT NULL
);
INSERT INTO {s}.changes(id, snapshot_seq, override_seq) VALUES (true, 0, 0);
CREATE TABLE {s}.registries (
    fingerprint text PRIMARY KEY,
    document text NOT NULL
);
CREATE TABLE {s}.snapshots (
    rev integer PRIMARY KEY CHECK (rev >= 1),
    parent_rev integer,
    content_hash text NOT NULL,
    author text NOT NULL,
    message text NOT NULL,
    created_at double precision NOT NULL,
    registry_fingerprint text NOT NULL REFERENCES {s}.registries(fingerprint),
    action text NOT NULL,
    rollback_of integer,
    document text NOT NULL
);
CREATE TABLE {s}.overrides (
    seq bigint PRIMARY KEY,
    id text UNIQUE NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    kind text NOT NULL,
    scope text NOT NULL,
    target text,
    reason text NOT NULL,
    actor text NOT NULL,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    force boolean NOT NULL DEFAULT false,
    environment text,
    ended_at double precision,
    ended_by text,
    end_reason text
);
CREATE INDEX overrides_live ON {s}.overrides(ended_at, expires_at);
CREATE INDEX overrides_key ON {s}.overrides(key);
CREATE TABLE {s}.audit (
    seq bigint PRIMARY KEY,
    at double precision NOT NULL,
    action text NOT NULL,
    actor text NOT NULL,
    reason text NOT NULL,
    target text NOT NULL,
    before text,
    after text,
    details text NOT NULL DEFAULT '{{}}'
);
CREATE FUNCTION {s}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'flagmw %: % refused (%)', TG_TABLE_NAME, TG_OP, TG_ARGV[0]
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER snapshots_immutable BEFORE UPDATE OR DELETE ON {s}.snapshots
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change('snapshots are immutable');
CREATE TRIGGER snapshots_immutable_truncate BEFORE TRUNCATE ON {s}.snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change('snapshots are immutable');
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON {s}.audit
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change('the audit log is append-only');
CREATE TRIGGER audit_append_only_truncate BEFORE TRUNCATE ON {s}.audit
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change('the audit log is append-only');
""",
    ),
    (
        2,
        "overrides append-only: only a renewal or one end change an override",
        """
CREATE FUNCTION {s}.overrides_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'flagmw overrides: DELETE refused (end an override early instead)'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.seq, NEW.id, NEW.key, NEW.value, NEW.kind, NEW.scope, NEW.target, NEW.reason,
        NEW.actor, NEW.created_at, NEW.force, NEW.environment)
       IS DISTINCT FROM
       (OLD.seq, OLD.id, OLD.key, OLD.value, OLD.kind, OLD.scope, OLD.target, OLD.reason,
        OLD.actor, OLD.created_at, OLD.force, OLD.environment)
       OR (OLD.ended_at IS NOT NULL
           AND (NEW.ended_at, NEW.ended_by, NEW.end_reason, NEW.expires_at)
               IS DISTINCT FROM (OLD.ended_at, OLD.ended_by, OLD.end_reason, OLD.expires_at))
    THEN
        RAISE EXCEPTION 'flagmw overrides: only a renewal or one end change an override'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER overrides_append_only BEFORE UPDATE OR DELETE ON {s}.overrides
    FOR EACH ROW EXECUTE FUNCTION {s}.overrides_guard();
CREATE TRIGGER overrides_append_only_truncate BEFORE TRUNCATE ON {s}.overrides
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change('overrides are append-only');
""",
    ),
    (3, "tenant and route overlays stored one by one, with an overlay digest", OVERLAYS_SQL),
    (
        4,
        "api_tokens: the console's API tokens, hashed, revoked never deleted",
        """
CREATE TABLE {s}.api_tokens (
    seq bigint PRIMARY KEY,
    id text UNIQUE NOT NULL,
    hash text UNIQUE NOT NULL,
    name text NOT NULL,
    role text NOT NULL,
    created_at double precision NOT NULL,
    created_by text NOT NULL,
    revoked_at double precision,
    revoked_by text,
    revoke_reason text
);
CREATE TRIGGER api_tokens_no_delete BEFORE DELETE ON {s}.api_tokens
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change('API tokens are revoked, never deleted');
CREATE TRIGGER api_tokens_no_truncate BEFORE TRUNCATE ON {s}.api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change('API tokens are never deleted');
""",
    ),
)

#: version → a data step run right after that version's SQL, in the same transaction,
#: with the connection and the quoted schema name.
DATA_STEPS: dict[int, Callable[[psycopg.Connection[Any], str], None]] = {
    3: migrate_to_overlays,
}

#: The schema version this flagmw reads and writes (the last migration's).
SCHEMA_VERSION = MIGRATIONS[-1][0]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


def check_schema_name(schema: str) -> str:
    """``schema`` quoted for SQL, after checking it is a plain lower-case name of at most
    48 characters (letters, digits, ``_``), so it fits in a LISTEN channel name too.

    Raises:
        ValueError: another name.
    """
    if not _NAME.match(schema):
        raise ValueError(
            f"schema name {schema!r}: use lower-case letters, digits and _ (at most 48, "
            "not starting with a digit), e.g. flagmw"
        )
    return f'"{schema}"'


def _version(conn: psycopg.Connection[Any], schema: str) -> int | None:
    """The applied version, or None when the schema has no migrations table."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".schema_migrations',)
    ).fetchone()
    if row is None or not row[0]:
        return None
    row = conn.execute(f'SELECT max(version) FROM "{schema}".schema_migrations').fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def ensure_schema(
    conn: psycopg.Connection[Any], schema: str, *, create: bool, migrate: bool, name: str
) -> int:
    """Check the store's schema on an autocommit connection; create it (``create``) and
    apply pending migrations (``create`` or ``migrate``). Returns the version in place.

    Raises:
        StoreUnavailableError: no such store and ``create`` is False; a version newer
            than this flagmw knows; an older one with ``migrate`` False.
    """
    s = check_schema_name(schema)
    version = _version(conn, schema)
    if version is None and not create:
        raise StoreUnavailableError(
            name,
            f"no flagmw store in schema {schema!r} of this database (create it "
            "explicitly: PostgresStore(..., create=True), or "
            "`flagmw init --store URL`)",
        )
    if version is not None and version > SCHEMA_VERSION:
        raise StoreUnavailableError(
            name, f"schema version {version}; this flagmw reads version {SCHEMA_VERSION}"
        )
    if version == SCHEMA_VERSION:
        return version
    if version is not None and not (create or migrate):
        raise StoreUnavailableError(
            name,
            f"schema version {version} needs migrating to {SCHEMA_VERSION} "
            "(open it once with migrate=True)",
        )
    with conn.transaction():
        # one migrator at a time per schema; the lock ends with the transaction
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"flagmw:{schema}",))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = _version(conn, schema) or 0
        for number, title, sql in MIGRATIONS:
            if number <= current:
                continue
            conn.execute(sql.format(s=s).encode())
            if number in DATA_STEPS:
                DATA_STEPS[number](conn, s)
            conn.execute(
                f"INSERT INTO {s}.schema_migrations(version, name) VALUES (%s, %s)",
                (number, title),
            )
    return SCHEMA_VERSION
