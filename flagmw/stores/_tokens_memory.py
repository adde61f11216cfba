"""API tokens of a :class:`~flagmw.stores.memory.MemoryStore` (kept with the store
object, gone with the process)."""

from __future__ import annotations

from dataclasses import replace

from flagmw.errors import NotFoundError
from flagmw.stores.memory import MemoryStore
from flagmw.stores.tokens import ApiToken, TokenError, revoke_checks, token_target

__all__ = ["MemoryTokens"]


class MemoryTokens:
    """The token store of one MemoryStore (hash → token, in the store's ``__dict__``)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self._tokens: dict[str, ApiToken] = store.__dict__.setdefault("_api_tokens", {})

    def add_token(
        self, token_hash: str, name: str, role: str, *, actor: str, at: float
    ) -> ApiToken:
        s = self.store
        with s._lock:
            if any(t.name == name and t.active for t in self._tokens.values()):
                raise TokenError(f"an active token is already named {name!r}; revoke it first")
            token = ApiToken(f"tok-{len(self._tokens) + 1}", name, role, at, actor)
            self._tokens[token_hash] = token
            s._append_audit(
                s.clock(),
                "token.create",
                actor,
                f"role {role}",
                token_target(token),
                None,
                role,
                {},
            )
            return token

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        return self._tokens.get(token_hash)

    def list_tokens(self) -> list[ApiToken]:
        return sorted(self._tokens.values(), key=lambda t: int(t.id[4:]))

    def revoke_token(self, token_id: str, *, actor: str, reason: str, at: float) -> ApiToken:
        s = self.store
        with s._lock:
            found = [(h, t) for h, t in self._tokens.items() if t.id == token_id]
            old = revoke_checks(found[0][1] if found else None, token_id, NotFoundError)
            new = replace(old, revoked_at=at, revoked_by=actor, revoke_reason=reason)
            self._tokens[found[0][0]] = new
            s._append_audit(
                s.clock(), "token.revoke", actor, reason, token_target(new), old.role, None, {}
            )
            return new
