"""RedisStore: the store of a fleet, under one key prefix of a Redis database.

The store is split by concept: this module holds :class:`RedisStore` (connections,
transactions, the :class:`~flagmw.stores.base.Store` operations) and the URL opener;
:mod:`flagmw.stores._redis_keys` the key layout and the JSON records;
:mod:`flagmw.stores._redis_snapshots` the snapshot revs (a base per rev and its changed
tenant and route overlays, :mod:`flagmw.stores._redis_overlays`);
:mod:`flagmw.stores._redis_changes` the pub/sub listener behind
:meth:`RedisStore.change_token`.

Transactions: every write WATCHes the store's ``seq`` hash and marker, checks its
precondition (the expected parent rev, the override exists) with plain reads, then
writes its keys, its audit entry, the bumped sequence and the PUBLISH of the change in
one MULTI/EXEC; a concurrent writer bumps ``seq`` first, EXEC is refused and the write
starts over (re-reading the head, so a stale publisher gets
:class:`~flagmw.errors.ConflictError`). Reads run as one MULTI/EXEC, so ``read_state``
sees the sequences and the data of one instant. See docs/stores-redis.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from flagmw.core.overrides import Override
from flagmw.errors import NotFoundError, StoreUnavailableError
from flagmw.stores._redis_changes import ChangeListener
from flagmw.stores._redis_keys import (
    FORMAT,
    Keys,
    audit_from_json,
    audit_json,
    check_part,
    info_from_json,
    payload,
)
from flagmw.stores._redis_overlays import OverlayReader, migrate_to_overlays
from flagmw.stores._redis_snapshots import RedisSnapshots, Work
from flagmw.stores._sqlite_rows import dumps
from flagmw.stores.base import (
    AuditEntry,
    StoreState,
    override_audit_action,
    override_target,
)

__all__ = ["RedisStore", "open_url"]

R = TypeVar("R")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ov_num(ov: Override) -> int:
    return int(ov.id.rsplit("-", 1)[-1])


class RedisStore(ChangeListener, RedisSnapshots):
    """A store under one key prefix of a Redis database, shared by a fleet of processes.

    Args:
        url: a redis-py URL (``redis://[user:password@]host:6379/0``, ``rediss://…``,
            ``unix:///path?db=0``) without flagmw's own query parameters.
        app: the application, part of the default prefix (1-64 of ``A-Za-z0-9_.-``).
        env: the environment, part of the default prefix (same characters).
        prefix: every key's prefix; default ``flagmw:<app>:<env>:``.
        create: write the store marker when missing; with False (the default) a missing
            store raises :class:`~flagmw.errors.StoreUnavailableError`, so a typo never
            yields a new, empty store.
        connect_timeout: seconds to wait for the server (connect and each reply), and
            for the first listener connection.
        poll_interval: seconds between the listener's safety-net reads of the change
            sequences (messages normally arrive within a millisecond).
        stale_after: seconds without any sign of a live listener connection after which
            :meth:`change_token` raises (default ``3 * poll_interval``, at least 2 s).
        listen_url: the listener's URL when it must differ from ``url``; read at every
            reconnect.

    Raises:
        ValueError: a bad application or environment name, or an empty prefix.
        StoreUnavailableError: the server cannot be reached; no store under the prefix
            (and ``create`` is False); a key layout newer than this flagmw reads.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        app: str = "default",
        env: str = "default",
        prefix: str | None = None,
        create: bool = False,
        connect_timeout: float = 5.0,
        poll_interval: float = 1.0,
        stale_after: float | None = None,
        listen_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock  #: the store's clock: the time of every audit entry
        if prefix is None:
            prefix = f"flagmw:{check_part('app', app)}:{check_part('env', env)}:"
        if not prefix:
            raise ValueError("a Redis store's key prefix must not be empty")
        self.url = url
        self.prefix = prefix
        self.listen_url = listen_url or url
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.stale_after = max(3 * poll_interval, 2.0) if stale_after is None else stale_after
        self._keys = Keys(prefix)
        self._redis: redis.Redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=connect_timeout,
            socket_timeout=connect_timeout,
            socket_keepalive=True,
            # never resend a command on a broken connection: a resent EXEC could apply a
            # write twice; a failure is reported, and the caller decides
            retry=Retry(NoBackoff(), 0),
        )
        kw = self._redis.connection_pool.connection_kwargs
        where = kw.get("path") or f"{kw.get('host', '')}:{kw.get('port', 6379)}"
        scheme = url.split(":", 1)[0].lower()
        self.name = f"{scheme}://{where}/{kw.get('db', 0)}?prefix={prefix}"
        self._overlays = OverlayReader(self._redis, self._keys)
        self._init_listener()
        self._open(create)
        ref = weakref.ref(self)

        def _child() -> None:
            store = ref()
            if store is not None:
                store._init_listener()  # threads do not cross fork(); redis-py's pool
                # notices the new pid and opens its own connections

        os.register_at_fork(after_in_child=_child)

    def _open(self, create: bool) -> None:
        k = self._keys
        try:
            if create:
                with self._redis.pipeline(transaction=True) as pipe:
                    pipe.hsetnx(k.store, "format", FORMAT)
                    pipe.hsetnx(k.store, "created_at", repr(time.time()))
                    pipe.hsetnx(k.seq, "snapshot", 0)
                    pipe.hsetnx(k.seq, "override", 0)
                    pipe.execute()
            fmt = self._redis.hget(k.store, "format")
        except redis.RedisError as exc:
            raise StoreUnavailableError(self.name, _reason(exc)) from None
        if fmt is None:
            raise StoreUnavailableError(
                self.name,
                "no flagmw store under this prefix (create it once with `flagmw init --store "
                "URL` or RedisStore(..., create=True), or check the app, env or prefix)",
            )
        if not str(fmt).isdigit() or int(fmt) > FORMAT:
            raise StoreUnavailableError(
                self.name, f"key layout format {fmt!s} is newer than this flagmw reads ({FORMAT})"
            )
        if int(fmt) < FORMAT:  # 1 → 2: tenant and route overlays stored one by one
            try:
                migrate_to_overlays(self._redis, k)
            except redis.RedisError as exc:
                raise StoreUnavailableError(self.name, _reason(exc)) from None

    # -- transactions --------------------------------------------------------------------

    def _gone(self) -> StoreUnavailableError:
        return StoreUnavailableError(
            self.name,
            "the store marker is gone (keys deleted, or Redis restarted without persistence;"
            " see docs/stores-redis.md)",
        )

    def _read(self, build: Callable[[Pipeline], object]) -> list[Any]:
        """Run the queued reads in one MULTI/EXEC (after an EXISTS of the marker); their
        results, in order."""
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.exists(self._keys.store)
                build(pipe)
                res: list[Any] = pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailableError(self.name, _reason(exc)) from None
        if not res[0]:
            raise self._gone()
        return res[1:]

    def _read_seqs(self) -> tuple[int, int]:
        (seq,) = self._read(lambda p: p.hmget(self._keys.seq, "snapshot", "override"))
        return (int(seq[0] or 0), int(seq[1] or 0))

    def _write(self, kind: int, work: Callable[[Pipeline], Work[R]]) -> R:
        """One write: WATCH, ``work`` (reads and checks, then returns what to write), then
        MULTI with its writes, its audit entry, sequence ``kind`` (0 snapshot, 1
        override) bumped and the notification; retried when another writer came first."""
        k = self._keys
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(k.store, k.seq)  # type: ignore[no-untyped-call]
                        if not pipe.exists(k.store):
                            raise self._gone()
                        raw = pipe.hmget(k.seq, "snapshot", "override")
                        seqs = [int(raw[0] or 0), int(raw[1] or 0)]
                        audit_seq = int(pipe.llen(k.audit)) + 1
                        result, writes, entry, ids = work(pipe)
                        seqs[kind] += 1
                        new = (seqs[0], seqs[1])
                        pipe.multi()
                        writes(pipe)
                        pipe.rpush(k.audit, dumps(audit_json(audit_seq, **entry)))
                        pipe.hset(k.seq, mapping={"snapshot": new[0], "override": new[1]})
                        pipe.publish(k.channel, payload(new, **ids))
                        pipe.execute()
                    except redis.WatchError:
                        continue  # another writer committed first: check again
                    self._advance(new)
                    return result
        except redis.RedisError as exc:
            raise StoreUnavailableError(self.name, _reason(exc)) from None

    # -- state (change_token and the listener: flagmw.stores._redis_changes) -------------

    def read_state(self, now: float) -> StoreState:
        k = self._keys
        seq, head, ovs = self._read(
            lambda p: (
                p.hmget(k.seq, "snapshot", "override"),
                p.lindex(k.history, -1),
                p.hvals(k.ov),
            )
        )
        token = (int(seq[0] or 0), int(seq[1] or 0))
        live = [
            o
            for o in (Override.from_dict(json.loads(v)) for v in ovs)
            if o.ended_at is None and o.expires_at > now
        ]
        live.sort(key=_ov_num, reverse=True)
        self._advance(token)
        return StoreState(token, info_from_json(head) if head else None, live)

    # -- overrides -----------------------------------------------------------------------

    def add_override(self, override: Override) -> Override:
        k = self._keys

        def work(pipe: Pipeline) -> Work[Override]:
            ov = override.with_changes(id=f"ov-{int(pipe.hlen(k.ov)) + 1}")
            entry = {
                "at": self.clock(),
                "action": override_audit_action(ov),
                "actor": ov.actor,
                "reason": ov.reason,
                "target": override_target(ov),
                "before": None,
                "after": ov.value,
                "details": {
                    "expires_at": ov.expires_at,
                    "force": ov.force,
                    "environment": ov.environment,
                },
            }
            return ov, self._put(ov), entry, {"ov": ov.id}

        return self._write(1, work)

    def _put(self, ov: Override) -> Callable[[Pipeline], None]:
        text = dumps(ov.to_dict())

        def writes(p: Pipeline) -> None:
            p.hset(self._keys.ov, ov.id, text)

        return writes

    def renew_override(
        self, override_id: str, expires_at: float, *, actor: str, reason: str, at: float
    ) -> Override:
        def work(pipe: Pipeline) -> Work[Override]:
            old = self._get_override(pipe, override_id)
            new = old.with_changes(expires_at=expires_at)
            entry = {
                "at": self.clock(),
                "action": f"{old.kind.value}.renew",
                "actor": actor,
                "reason": reason,
                "target": override_target(new),
                "before": {"expires_at": old.expires_at},
                "after": {"expires_at": expires_at},
                "details": {},
            }
            return new, self._put(new), entry, {"ov": override_id}

        return self._write(1, work)

    def end_override(self, override_id: str, *, actor: str, reason: str, at: float) -> Override:
        def work(pipe: Pipeline) -> Work[Override]:
            old = self._get_override(pipe, override_id)
            new = old.with_changes(ended_at=at, ended_by=actor, end_reason=reason)
            entry = {
                "at": self.clock(),
                "action": f"{old.kind.value}.end",
                "actor": actor,
                "reason": reason,
                "target": override_target(new),
                "before": old.value,
                "after": None,
                "details": {},
            }
            return new, self._put(new), entry, {"ov": override_id}

        return self._write(1, work)

    def get_override(self, override_id: str) -> Override:
        (text,) = self._read(lambda p: p.hget(self._keys.ov, override_id))
        return self._override(text, override_id)

    def _get_override(self, pipe: Pipeline, override_id: str) -> Override:
        return self._override(pipe.hget(self._keys.ov, override_id), override_id)

    def _override(self, text: Any, override_id: str) -> Override:
        if text is None:
            raise NotFoundError(
                f"no override {override_id!r} in {self.name} (see `flagmw overrides`)"
            )
        return Override.from_dict(json.loads(text))

    def list_overrides(
        self, *, include_ended: bool = False, key: str | None = None
    ) -> list[Override]:
        (values,) = self._read(lambda p: p.hvals(self._keys.ov))
        out = [
            o
            for o in (Override.from_dict(json.loads(v)) for v in values)
            if (include_ended or o.ended_at is None) and (key is None or o.key == key)
        ]
        return sorted(out, key=lambda o: (o.created_at, _ov_num(o)), reverse=True)

    # -- audit ---------------------------------------------------------------------------

    def audit(self, limit: int = 100, *, action: str | None = None) -> list[AuditEntry]:
        """The most recent audit entries, newest first (the ``audit`` list read from its
        end, 500 entries at a time when filtering by ``action``)."""
        if limit <= 0:
            return []
        k = self._keys
        if action is None:
            (rows,) = self._read(lambda p: p.lrange(k.audit, -limit, -1))
            return [audit_from_json(r) for r in reversed(rows)]
        out: list[AuditEntry] = []
        end = -1
        while len(out) < limit:
            (rows,) = self._read(lambda p, e=end: p.lrange(k.audit, e - 499, e))  # type: ignore[misc]
            for r in reversed(rows):
                a = audit_from_json(r)
                if a.action == action or a.action.startswith(action + "."):
                    out.append(a)
            if len(rows) < 500:
                break
            end -= 500
        return out[:limit]

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the listener and close the pool's connections; a later call opens them
        again."""
        self._stop_listener()
        self._redis.connection_pool.disconnect()

    def _wake_listener(self) -> None:
        # on failure the listener notices the stop within a second anyway
        with contextlib.suppress(redis.RedisError):
            self._redis.publish(self._keys.channel, "wake")

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisStore({self.name!r})"


_OWN_PARAMS = ("app", "env", "prefix")


def open_url(spec: str, *, create: bool) -> RedisStore:
    """The opener of ``redis://…`` and ``rediss://…`` (see :mod:`flagmw.stores.url`).

    The URL is redis-py's (``redis://[[user]:password@]host[:port][/db]``), plus flagmw's
    own query parameters ``app`` and ``env`` (the default prefix
    ``flagmw:<app>:<env>:``) or ``prefix`` (any prefix); every other parameter goes to
    redis-py. Example: ``redis://cache:6379/0?app=support-bot&env=prod``.

    Raises:
        ValueError: a bad app or env name.
        StoreUnavailableError: see :class:`RedisStore`.
    """
    parts = urlsplit(spec)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in _OWN_PARAMS}
    rest = [(k, v) for k, v in query if k not in _OWN_PARAMS]
    url = urlunsplit(parts._replace(query=urlencode(rest)))
    return RedisStore(
        url,
        app=own.get("app") or "default",
        env=own.get("env") or "default",
        prefix=own.get("prefix") or None,
        create=create,
    )
