"""The Redis store's overlay rows: a base per rev in ``snap:<rev>`` and, per tenant or
route, a hash of the revs that changed it (:mod:`flagmw.stores._overlays`), and the
format 1 → 2 migration that moves the overlays of revs written before it out of their
documents.

Keys (after the store's prefix; :mod:`flagmw.stores._redis_keys`):

* ``overlay:<section>:<name>`` — hash: rev → the overlay's canonical JSON text, or
  ``""`` when it was removed at that rev; the overlay at rev R is the field with the
  greatest rev ≤ R (looked up server-side by :data:`AT_REV`, a Lua script);
* ``overlays`` — sorted set: ``<section>:<name>`` of every overlay ever written, scored
  by the rev that first wrote it (the candidates at rev R are those scored ≤ R);
* ``removed`` — set of ``<section>:<name>`` of every overlay ever removed (the only
  candidates whose presence at R needs a lookup);
* ``changed:<rev>`` — set of ``<section>:<name>`` written at that rev;
* the rev's overlay digest is in its ``history`` entry (``overlay_digest``).

Rows at revs ≤ R never change once written, so reading "the overlays at R" needs no
transaction: a later publish only adds fields > R. Lookups run in chunks of
:data:`CHUNK` keys, so no single script holds the server for long.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import redis
from redis.client import Pipeline

from flagmw.core.snapshot_hash import digest_hex
from flagmw.stores._overlays import OverlayKey, OverlayRow, plan_document
from flagmw.stores._redis_keys import FORMAT, Keys, member_key, overlay_member
from flagmw.stores._sqlite_rows import dumps

__all__ = [
    "AT_REV",
    "CHUNK",
    "MEMBERS",
    "TEXTS_AT",
    "WRITE_ROWS",
    "OverlayReader",
    "migrate_to_overlays",
    "queue_rows",
]

#: keys per script call or command when reading or writing many overlays
CHUNK = 2000

#: Lua: for each hash in KEYS, the body at the greatest rev field ≤ ARGV[1] (false when
#: there is none or it is the removal marker ""); with ARGV[2] == "1", 1 instead of the
#: body (names only). The replies come back as one JSON array (``cjson``): one bulk
#: string to parse instead of one reply per key.
AT_REV = """
local rev = tonumber(ARGV[1])
local names = ARGV[2] == '1'
local out = {}
for i, key in ipairs(KEYS) do
    local kv = redis.call('HGETALL', key)
    local best, body = -1, ''
    for j = 1, #kv, 2 do
        local r = tonumber(kv[j])
        if r <= rev and r > best then best, body = r, kv[j + 1] end
    end
    out[i] = false
    if body ~= '' then
        if names then out[i] = 1 else out[i] = body end
    end
end
return cjson.encode(out)
"""

#: Lua: every overlay in force at rev ARGV[3] among the members of rank ARGV[1] to
#: ARGV[2] of the ``overlays`` sorted set KEYS[1], as one JSON array of member, text,
#: member, text … ; ARGV[4] is the prefix of the overlay hashes, which the script names
#: itself (same store prefix, so the same slot under a hash-tagged prefix): the client
#: sends a few numbers instead of 100k key names.
TEXTS_AT = """
local rev = tonumber(ARGV[3])
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])) do
    local kv = redis.call('HGETALL', ARGV[4] .. m)
    local best, body = -1, ''
    for i = 1, #kv, 2 do
        local r = tonumber(kv[i])
        if r <= rev and r > best then best, body = r, kv[i + 1] end
    end
    if body ~= '' then
        out[#out + 1] = m
        out[#out + 1] = body
    end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
"""

#: Lua: the members of rank ARGV[1] to ARGV[2] of the sorted set KEYS[1] (or of the set
#: KEYS[1] when ARGV[1] is "set") as one JSON array.
MEMBERS = """
local m
if ARGV[1] == 'set' then
    m = redis.call('SMEMBERS', KEYS[1])
else
    m = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
end
if #m == 0 then return '[]' end
return cjson.encode(m)
"""

#: Lua: write overlay rows of rev ARGV[1]: KEYS[1] the ``overlays`` sorted set, KEYS[2]
#: the rev's ``changed:<rev>`` set, KEYS[3] the ``removed`` set, KEYS[4..] the overlay
#: hashes; ARGV[2..] pairs of (member, text) in the order of the hashes.
WRITE_ROWS = """
local rev = ARGV[1]
for i = 4, #KEYS do
    local j = 2 * (i - 4) + 2
    redis.call('HSET', KEYS[i], rev, ARGV[j + 1])
    redis.call('ZADD', KEYS[1], 'NX', rev, ARGV[j])
    redis.call('SADD', KEYS[2], ARGV[j])
    if ARGV[j + 1] == '' then redis.call('SADD', KEYS[3], ARGV[j]) end
end
return #KEYS - 3
"""


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class OverlayReader:
    """Reads overlays at a rev through ``client`` (its own connections; rows ≤ a rev
    are immutable, so no transaction is needed)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._at_rev = client.register_script(AT_REV)
        self._members = client.register_script(MEMBERS)
        self._texts_at = client.register_script(TEXTS_AT)

    def _lookup(self, rev: int, keys: Sequence[OverlayKey], names: bool) -> list[Any]:
        if not keys:
            return []
        k = self._keys
        with self._client.pipeline(transaction=False) as pipe:
            for chunk in _chunks(keys):
                self._at_rev(
                    keys=[k.overlay(s, n) for s, n in chunk],
                    args=[rev, "1" if names else "0"],
                    client=pipe,
                )
            replies = pipe.execute()
        return [v for reply in replies for v in json.loads(reply)]

    def candidates(self, rev: int) -> list[OverlayKey]:
        """The keys of every overlay first written at a rev ≤ ``rev`` (ranks of the
        ``overlays`` sorted set read in chunks: a concurrent publish only adds members
        scored above ``rev``, after them)."""
        k = self._keys
        count = int(self._client.zcount(k.overlays, "-inf", rev))
        if not count:
            return []
        with self._client.pipeline(transaction=False) as pipe:
            for start in range(0, count, 10 * CHUNK):
                end = min(start + 10 * CHUNK, count) - 1
                self._members(keys=[k.overlays], args=[start, end], client=pipe)
            replies = pipe.execute()
        return [member_key(m) for reply in replies for m in json.loads(reply)]

    def texts_at(self, rev: int | None) -> dict[OverlayKey, str]:
        """Every overlay in force at ``rev`` (key → text); empty for None."""
        if rev is None:
            return {}
        k = self._keys
        count = int(self._client.zcount(k.overlays, "-inf", rev))
        if not count:
            return {}
        with self._client.pipeline(transaction=False) as pipe:
            for start in range(0, count, CHUNK):
                end = min(start + CHUNK, count) - 1
                args: list[str | int] = [start, end, rev, k.overlay_prefix]
                self._texts_at(keys=[k.overlays], args=args, client=pipe)
            replies = pipe.execute()
        out: dict[OverlayKey, str] = {}
        for reply in replies:
            flat = json.loads(reply)
            for i in range(0, len(flat), 2):
                out[member_key(flat[i])] = flat[i + 1]
        return out

    def names_at(self, rev: int) -> list[OverlayKey]:
        """The keys of every overlay in force at ``rev``, sorted: the candidates, less
        those ever removed whose row at ``rev`` is a removal (only they are looked up)."""
        names = set(self.candidates(rev))
        removed = json.loads(self._members(keys=[self._keys.removed], args=["set", ""]))
        check = [key for key in map(member_key, removed) if key in names]
        hits = self._lookup(rev, check, True)
        names.difference_update(key for key, hit in zip(check, hits, strict=True) if not hit)
        return sorted(names)

    def texts_of(self, rev: int | None, keys: Iterable[OverlayKey]) -> dict[OverlayKey, str | None]:
        """The texts of ``keys`` at ``rev`` (None: no such overlay)."""
        wanted = list(dict.fromkeys((str(s), str(n)) for s, n in keys))
        if rev is None:
            return dict.fromkeys(wanted)
        texts = self._lookup(rev, wanted, False)
        return {key: text or None for key, text in zip(wanted, texts, strict=True)}

    def changed_between(self, since: int, rev: int) -> set[OverlayKey]:
        """The keys of the overlays written by the revs after ``since`` up to ``rev``."""
        revs = list(range(max(since, 0) + 1, rev + 1))
        out: set[OverlayKey] = set()
        for chunk in _chunks(revs, 500):
            with self._client.pipeline(transaction=False) as pipe:
                for r in chunk:
                    pipe.smembers(self._keys.changed(r))
                for members in pipe.execute():
                    out.update(member_key(m) for m in members)
        return out


def queue_rows(pipe: Pipeline, keys: Keys, rev: int, rows: Sequence[OverlayRow]) -> None:
    """Queue the writes of the overlay rows of ``rev`` (inside the caller's MULTI): one
    :data:`WRITE_ROWS` script call per :data:`CHUNK` rows."""
    for chunk in _chunks(rows):
        args: list[str] = [str(rev)]
        for section, name, text in chunk:
            args += (overlay_member(section, name), "" if text is None else text)
        hashes = [keys.overlay(s, n) for s, n, _ in chunk]
        fixed = (keys.overlays, keys.changed(rev), keys.removed)
        pipe.eval(WRITE_ROWS, len(fixed) + len(hashes), *fixed, *hashes, *args)


def migrate_to_overlays(client: redis.Redis, keys: Keys) -> None:
    """Format 1 → 2: move every rev's tenant and route overlays out of its document
    (``snap:<rev>``) into overlay rows (only the changed ones per rev), add each rev's
    overlay digest to its ``history`` entry, and set ``format`` 2 — in one MULTI/EXEC
    under WATCH of the marker and ``seq`` (a concurrent writer makes it start over;
    another process that migrated first makes it a no-op). Content hashes already
    recorded are kept."""
    k = keys
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(k.store, k.seq)  # type: ignore[no-untyped-call]
                fmt = pipe.hget(k.store, "format")
                if fmt is None or int(str(fmt)) >= FORMAT:
                    return
                infos = pipe.lrange(k.history, 0, -1)
                docs = [pipe.get(k.snap(rev)) for rev in range(1, len(infos) + 1)]
                pipe.multi()
                head: dict[OverlayKey, str] = {}
                for rev, (info, doc) in enumerate(zip(infos, docs, strict=True), 1):
                    plan = plan_document(json.loads(doc or "{}"), head, "-")
                    queue_rows(pipe, k, rev, plan.rows)
                    pipe.set(k.snap(rev), dumps(plan.base))
                    entry = {**json.loads(info), "overlay_digest": digest_hex(plan.digest)}
                    pipe.lset(k.history, rev - 1, dumps(entry))
                    for s, n, body in plan.rows:
                        if body is None:
                            head.pop((s, n), None)
                        else:
                            head[(s, n)] = body
                pipe.hset(k.store, "format", FORMAT)
                pipe.execute()
                return
            except redis.WatchError:
                continue
