"""The rollout store under a flag store's Redis key prefix: a hash per document kind
(``<prefix>rollout:doc:<kind>``, compare-and-set by a Lua script) and a sorted set per
log (``<prefix>rollout:log:<kind>``, scored by time)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis

from flagmw.errors import StoreUnavailableError
from flagmw.rollout.store import RolloutStore, dumps

__all__ = ["RedisRolloutStore"]

# KEYS[1] = hash, ARGV = id, doc, expected seq: write when the stored seq matches
_CAS = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local seq = 0
if old then seq = tonumber(cjson.decode(old)['seq'] or 0) end
if seq ~= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class RedisRolloutStore(RolloutStore):
    """Args: url: the flag store's URL; prefix: its key prefix.

    Raises:
        StoreUnavailableError: the server cannot be reached.
    """

    def __init__(self, url: str, prefix: str, *, name: str = "") -> None:
        self.name = name or f"redis prefix {prefix}"
        self.prefix = prefix
        self._r: redis.Redis = redis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=5, socket_timeout=5
        )
        self._cas_script = self._r.register_script(_CAS)
        try:
            self._r.ping()
        except redis.RedisError as exc:
            raise StoreUnavailableError(self.name, str(exc)) from None

    def _doc_key(self, kind: str) -> str:
        return f"{self.prefix}rollout:doc:{kind}"

    def _log_key(self, kind: str) -> str:
        return f"{self.prefix}rollout:log:{kind}"

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise StoreUnavailableError(self.name, str(exc)) from None

    def _insert(self, kind: str, id: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        if self._call(self._r.hsetnx, self._doc_key(kind), id, dumps(doc)):
            return None
        return self._get(kind, id)

    def _cas(self, kind: str, id: str, doc: dict[str, Any], expected: int) -> bool:
        return bool(
            self._call(
                lambda: self._cas_script(
                    keys=[self._doc_key(kind)], args=[id, dumps(doc), expected]
                )
            )
        )

    def _get(self, kind: str, id: str) -> dict[str, Any] | None:
        raw = self._call(self._r.hget, self._doc_key(kind), id)
        return None if raw is None else dict(json.loads(raw))

    def _list(self, kind: str) -> list[dict[str, Any]]:
        raw = self._call(self._r.hgetall, self._doc_key(kind))
        return [dict(json.loads(raw[k])) for k in sorted(raw)]

    def _append(self, kind: str, at: float, docs: list[dict[str, Any]]) -> None:
        # a unique member per entry: two equal outcomes are two entries
        members = {f"{uuid.uuid4().hex}|{dumps(d)}": float(d.get("at", at)) for d in docs}
        self._call(self._r.zadd, self._log_key(kind), members)

    def _read_log(self, kind: str, since: float, limit: int) -> list[dict[str, Any]]:
        raw = self._call(
            lambda: self._r.zrevrangebyscore(self._log_key(kind), "+inf", since, 0, limit)
        )
        return [dict(json.loads(m.split("|", 1)[1])) for m in reversed(raw)]

    def _prune(self, kind: str, before: float) -> int:
        return int(self._call(self._r.zremrangebyscore, self._log_key(kind), "-inf", f"({before}"))

    def close(self) -> None:
        self._r.close()
