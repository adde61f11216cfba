"""API tokens of a :class:`~flagmw.stores.redis.RedisStore`: hash ``tokens`` (token id →
JSON with its hash) and hash ``token-hash`` (hash → id), under the store's prefix.

A write watches the store marker and the ``seq`` hash and bumps its ``tokens`` field
(never ``snapshot`` or ``override``, so no client refreshes), which makes a concurrent
write of the store retry: audit seqs stay gapless and unique.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from flagmw.errors import NotFoundError, StoreUnavailableError
from flagmw.stores._redis_keys import audit_json
from flagmw.stores._sqlite_rows import dumps
from flagmw.stores.tokens import ApiToken, TokenError, revoke_checks, token_target

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.stores.redis import RedisStore

__all__ = ["RedisTokens"]


class RedisTokens:
    """The token store of one RedisStore."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        prefix = store._keys.prefix
        self._tokens = prefix + "tokens"
        self._by_hash = prefix + "token-hash"

    def _write(self, work: Callable[[Any], tuple[ApiToken, dict[str, Any], Any]]) -> ApiToken:
        k = self.store._keys
        try:
            with self.store._redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(k.store, k.seq, self._tokens)  # type: ignore[no-untyped-call]
                        if not pipe.exists(k.store):
                            raise self.store._gone()
                        audit_seq = int(pipe.llen(k.audit)) + 1
                        token, entry, writes = work(pipe)
                        pipe.multi()
                        writes(pipe)
                        pipe.rpush(k.audit, dumps(audit_json(audit_seq, **entry)))
                        pipe.hincrby(k.seq, "tokens", 1)
                        pipe.execute()
                    except redis.WatchError:
                        continue
                    return token
        except redis.RedisError as exc:
            raise StoreUnavailableError(self.store.name, str(exc)) from None

    def add_token(
        self, token_hash: str, name: str, role: str, *, actor: str, at: float
    ) -> ApiToken:
        def work(pipe: Any) -> tuple[ApiToken, dict[str, Any], Any]:
            existing = [_load(v) for v in pipe.hvals(self._tokens)]
            if any(t.name == name and t.active for t in existing):
                raise TokenError(f"an active token is already named {name!r}; revoke it first")
            token = ApiToken(f"tok-{len(existing) + 1}", name, role, at, actor)
            entry = _entry(
                self.store.clock(), "token.create", actor, f"role {role}", token, None, role
            )

            def writes(p: Any) -> None:
                p.hset(self._tokens, token.id, dumps({**token.to_dict(), "hash": token_hash}))
                p.hset(self._by_hash, token_hash, token.id)

            return token, entry, writes

        return self._write(work)

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        try:
            token_id = self.store._redis.hget(self._by_hash, token_hash)
            if token_id is None:
                return None
            raw = self.store._redis.hget(self._tokens, token_id)
        except redis.RedisError as exc:
            raise StoreUnavailableError(self.store.name, str(exc)) from None
        return None if raw is None else _load(raw)

    def list_tokens(self) -> list[ApiToken]:
        try:
            values = self.store._redis.hvals(self._tokens)
        except redis.RedisError as exc:
            raise StoreUnavailableError(self.store.name, str(exc)) from None
        return sorted((_load(v) for v in values), key=lambda t: int(t.id[4:]))

    def revoke_token(self, token_id: str, *, actor: str, reason: str, at: float) -> ApiToken:
        def work(pipe: Any) -> tuple[ApiToken, dict[str, Any], Any]:
            raw = pipe.hget(self._tokens, token_id)
            old = revoke_checks(None if raw is None else _load(raw), token_id, NotFoundError)
            token_hash = json.loads(raw)["hash"]
            new = ApiToken(
                old.id, old.name, old.role, old.created_at, old.created_by, at, actor, reason
            )
            entry = _entry(self.store.clock(), "token.revoke", actor, reason, new, old.role, None)

            def writes(p: Any) -> None:
                p.hset(self._tokens, token_id, dumps({**new.to_dict(), "hash": token_hash}))

            return new, entry, writes

        return self._write(work)


def _load(raw: Any) -> ApiToken:
    d = json.loads(raw)
    d.pop("hash", None)
    return ApiToken.from_dict(d)


def _entry(
    at: float, action: str, actor: str, reason: str, token: ApiToken, before: Any, after: Any
) -> dict[str, Any]:
    return {
        "at": at,
        "action": action,
        "actor": actor,
        "reason": reason,
        "target": token_target(token),
        "before": before,
        "after": after,
        "details": {},
    }
