"""The PostgreSQL store's overlay rows: a base per rev in ``snapshots`` and one row in
``overlays`` per tenant or route changed at that rev (:mod:`flagmw.stores._overlays`),
and the schema-3 data step that moves the overlays of revs written before it out of
their documents.

``overlays(section, name, rev, body)``: the overlay of ``name`` at rev R is its row
with the greatest ``rev`` ≤ R; ``body`` NULL marks it removed at that rev. Rows are
immutable (triggers refuse UPDATE, DELETE and TRUNCATE), like the revs they belong to.
Many rows are written with ``COPY`` (100k rows in a fraction of a second).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from flagmw.core.snapshot_hash import digest_from_hex, digest_hex, texts_digest
from flagmw.stores._overlays import OverlayKey, OverlayRow, plan_document
from flagmw.stores._sqlite_rows import dumps

__all__ = [
    "OVERLAYS_SQL",
    "changed_between",
    "copy_rows",
    "head_digest",
    "migrate_to_overlays",
    "names_at",
    "texts_at",
    "texts_of",
]

Cursor = psycopg.Cursor[Any]

#: schema version 3: the overlays table and the snapshots' digest column (``{s}``: the
#: quoted schema name).
OVERLAYS_SQL = """
ALTER TABLE {s}.snapshots ADD COLUMN overlay_digest text;
CREATE TABLE {s}.overlays (
    section text NOT NULL,
    name text NOT NULL,
    rev integer NOT NULL CHECK (rev >= 1),
    body text,
    PRIMARY KEY (section, name, rev)
);
CREATE INDEX overlays_rev ON {s}.overlays(rev);
CREATE TRIGGER overlays_immutable BEFORE UPDATE OR DELETE ON {s}.overlays
    FOR EACH ROW EXECUTE FUNCTION {s}.refuse_change('snapshots are immutable');
CREATE TRIGGER overlays_immutable_truncate BEFORE TRUNCATE ON {s}.overlays
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.refuse_change('snapshots are immutable');
"""


def texts_at(cur: Cursor, s: str, rev: int | None) -> dict[OverlayKey, str]:
    """Every overlay in force at ``rev`` (key → text), in one query; empty for None."""
    if rev is None:
        return {}
    cur.execute(
        f"SELECT DISTINCT ON (section, name) section, name, body FROM {s}.overlays "
        "WHERE rev <= %s ORDER BY section, name, rev DESC",
        (rev,),
    )
    return {(sec, name): body for sec, name, body in cur.fetchall() if body is not None}


def names_at(cur: Cursor, s: str, rev: int) -> list[OverlayKey]:
    """The keys of every overlay in force at ``rev``, sorted."""
    cur.execute(
        f"SELECT section, name FROM (SELECT DISTINCT ON (section, name) section, name, body "
        f"FROM {s}.overlays WHERE rev <= %s ORDER BY section, name, rev DESC) AS latest "
        "WHERE body IS NOT NULL ORDER BY section, name",
        (rev,),
    )
    return [(sec, name) for sec, name in cur.fetchall()]


def texts_of(
    cur: Cursor, s: str, rev: int | None, keys: Iterable[OverlayKey]
) -> dict[OverlayKey, str | None]:
    """The texts of ``keys`` at ``rev`` (None: no such overlay), in one query."""
    wanted = list(dict.fromkeys((str(sec), str(name)) for sec, name in keys))
    out: dict[OverlayKey, str | None] = dict.fromkeys(wanted)
    if rev is None or not wanted:
        return out
    cur.execute(
        f"SELECT DISTINCT ON (o.section, o.name) o.section, o.name, o.body "
        f"FROM {s}.overlays AS o JOIN unnest(%s::text[], %s::text[]) AS k(section, name) "
        "ON o.section = k.section AND o.name = k.name WHERE o.rev <= %s "
        "ORDER BY o.section, o.name, o.rev DESC",
        ([k[0] for k in wanted], [k[1] for k in wanted], rev),
    )
    for sec, name, body in cur.fetchall():
        out[(sec, name)] = body
    return out


def changed_between(cur: Cursor, s: str, since: int, rev: int) -> set[OverlayKey]:
    """The keys of the overlays written by the revs after ``since`` up to ``rev``."""
    cur.execute(
        f"SELECT DISTINCT section, name FROM {s}.overlays WHERE rev > %s AND rev <= %s",
        (since, rev),
    )
    return {(sec, name) for sec, name in cur.fetchall()}


def head_digest(cur: Cursor, s: str, rev: int | None) -> int:
    """The overlay digest of ``rev`` (0 before the first rev; summed from the rev's
    overlays when none is recorded)."""
    if rev is None:
        return 0
    row = cur.execute(f"SELECT overlay_digest FROM {s}.snapshots WHERE rev=%s", (rev,)).fetchone()
    if row and row[0]:
        return digest_from_hex(row[0])
    return texts_digest(texts_at(cur, s, rev))


def copy_rows(cur: Cursor, s: str, rev: int, rows: Sequence[OverlayRow]) -> None:
    """Write the overlay rows of ``rev``: one ``COPY`` for many, a pipelined
    ``executemany`` for a few (a one-tenant publish: one round trip)."""
    if len(rows) <= 64:
        cur.executemany(
            f"INSERT INTO {s}.overlays (section, name, rev, body) VALUES (%s, %s, %s, %s)",
            [(section, name, rev, text) for section, name, text in rows],
        )
        return
    with cur.copy(f"COPY {s}.overlays (section, name, rev, body) FROM STDIN") as copy:
        for section, name, text in rows:
            copy.write_row((section, name, rev, text))


def migrate_to_overlays(conn: psycopg.Connection[Any], s: str) -> None:
    """Schema 2 → 3, data step (inside the migration's transaction, after
    :data:`OVERLAYS_SQL`): move every rev's tenant and route overlays out of its
    document into overlay rows (only the changed ones per rev) and record its overlay
    digest. The snapshots' immutability trigger is disabled for the rewrite and enabled
    again before the transaction commits. Content hashes already recorded are kept (they
    name what was published then); revs published from now on use the composable hash."""
    with conn.cursor() as cur:
        cur.execute(f"ALTER TABLE {s}.snapshots DISABLE TRIGGER snapshots_immutable")
        head: dict[OverlayKey, str] = {}
        revs = cur.execute(f"SELECT rev, document FROM {s}.snapshots ORDER BY rev").fetchall()
        for rev, text in revs:
            plan = plan_document(json.loads(text), head, "-")
            copy_rows(cur, s, rev, plan.rows)
            cur.execute(
                f"UPDATE {s}.snapshots SET document=%s, overlay_digest=%s WHERE rev=%s",
                (dumps(plan.base), digest_hex(plan.digest), rev),
            )
            for sec, name, body in plan.rows:
                if body is None:
                    head.pop((sec, name), None)
                else:
                    head[(sec, name)] = body
        cur.execute(f"ALTER TABLE {s}.snapshots ENABLE TRIGGER snapshots_immutable")
