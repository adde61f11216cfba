"""The Redis store's change signal: pub/sub on a dedicated connection.

Every write bumps the store's change sequences (the ``seq`` hash) and, in the same
MULTI/EXEC transaction, PUBLISHes ``{"seq":[S,O],"rev":R}`` (or ``"ov":"ov-N"``) on the
store's channel (``<prefix>changes``): only ids. Redis delivers it to every subscriber
when the transaction executes, in order.

A background thread per store keeps one connection of its own (not from the pool)
SUBSCRIBEd to the channel and folds every message into :attr:`ChangeListener._seqs`, so
:meth:`ChangeListener.change_token` is one attribute read and one clock read — no I/O at
the step boundary. The thread also

* **resyncs** on every (re)connect: it SUBSCRIBEs first, then reads the sequences, so a
  change made while it was disconnected (whose message Redis dropped: pub/sub keeps
  nothing for absent subscribers) is seen;
* **polls slowly**: every ``poll_interval`` seconds it reads the sequences again and
  PINGs the subscribed connection (a dead connection fails the PING), as a safety net;
* reconnects with a growing pause (0.05 s … 2 s) when the connection fails.

Fail safe: when the listener's connection fails and is not back (and resynced) within
0.5 s (or ``poll_interval`` when shorter), or when the thread has shown no sign of a
live connection for ``stale_after`` seconds, :meth:`change_token` raises
:class:`~flagmw.errors.StoreUnavailableError`, so the client reports the store
unreachable (and stale) instead of trusting a token nobody updates.

The design and its figures: docs/stores-redis.md.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flagmw.errors import StoreUnavailableError
from flagmw.stores._pushed_token import MAX_BACKOFF, MAX_WAIT, PushedToken

if TYPE_CHECKING:  # pragma: no cover
    from redis.connection import AbstractConnection

__all__ = ["ChangeListener"]

_monotonic = time.monotonic


class ChangeListener(PushedToken):
    """The change-signal half of :class:`~flagmw.stores.redis.RedisStore` (a mixin over
    :class:`~flagmw.stores._pushed_token.PushedToken`): pub/sub.

    The store supplies ``name``, ``listen_url``, ``connect_timeout``, ``poll_interval``,
    ``stale_after``, ``_keys`` and ``_read_seqs()`` (the two sequences, read through the
    store's pool).
    """

    if TYPE_CHECKING:
        from flagmw.stores._redis_keys import Keys

        listen_url: str
        _keys: Keys

        def _read_seqs(self) -> tuple[int, int]: ...

    #: the Redis client id (``CLIENT ID``) of the listener's connection while it is
    #: subscribed, else None
    listener_client_id: int | None

    def _init_listener(self) -> None:
        super()._init_listener()
        self.listener_client_id = None

    def _channel_name(self) -> str:
        return self._keys.channel

    def _connect_listener(self) -> AbstractConnection:
        pool = redis.ConnectionPool.from_url(
            self.listen_url,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.connect_timeout,
            socket_keepalive=True,  # a dead peer (no RST) is noticed, not waited on
            retry=Retry(NoBackoff(), 0),  # a reconnect is ours to make (and resync)
            health_check_interval=0,
            client_name="flagmw-listen",
            protocol=2,  # RESP2: messages are plain replies, read in _serve
        )
        conn = cast("AbstractConnection", pool.make_connection())
        conn.connect()  # type: ignore[no-untyped-call]
        return conn

    def _listen_loop(self, stop: threading.Event, ready: threading.Event) -> None:
        backoff = 0.05
        while not stop.is_set():
            conn: AbstractConnection | None = None
            try:
                conn = self._connect_listener()
                conn.send_command("CLIENT", "ID")  # type: ignore[no-untyped-call]
                client_id = int(conn.read_response())
                conn.send_command("SUBSCRIBE", self._keys.channel)  # type: ignore[no-untyped-call]
                conn.read_response()  # the confirmation: subscribed from here on
                self._advance(self._read_seqs())  # after SUBSCRIBE: nothing later is missed
                self._connected()
                self.listener_client_id = client_id
                ready.set()
                backoff = 0.05
                try:
                    self._serve(conn, stop)
                finally:
                    self.listener_client_id = None
            except (redis.RedisError, OSError, ValueError, StoreUnavailableError) as exc:
                self.listener_client_id = None
                if stop.is_set():
                    break
                self._lost(exc)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                if conn is not None:
                    conn.disconnect()  # type: ignore[no-untyped-call]

    def _serve(self, conn: AbstractConnection, stop: threading.Event) -> None:
        next_poll = _monotonic() + self.poll_interval
        pinged = False
        while not stop.is_set():
            # at most MAX_WAIT at a time, so a stop is noticed soon
            wait = max(0.0, min(next_poll - _monotonic(), MAX_WAIT))
            if conn.can_read(timeout=wait):
                msg = conn.read_response()
                self._on_message(msg)
                if isinstance(msg, list) and msg and msg[0] in (b"pong", "pong"):
                    pinged = False
                continue
            if _monotonic() >= next_poll:
                if pinged:  # the last poll's PING had a whole interval to come back
                    raise redis.ConnectionError("the subscribed connection does not answer")
                conn.send_command("PING")  # type: ignore[no-untyped-call]  # a dead connection fails here or next poll
                pinged = True
                self._advance(self._read_seqs())  # the slow poll
                self._last_ok = _monotonic()
                next_poll = _monotonic() + self.poll_interval

    def _on_message(self, msg: Any) -> None:
        self._last_ok = _monotonic()  # any reply proves the connection alive
        try:
            kind = msg[0].decode() if isinstance(msg[0], bytes) else msg[0]
            if kind != "message":
                return
            seq = json.loads(msg[2])["seq"]
            seqs = (int(seq[0]), int(seq[1]))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return  # a foreign message on our channel: only proves liveness
        self._advance(seqs)
