"""The console's API tokens (:mod:`flagmw.stores.tokens`) on every store backend of
``tests/store_kinds.py`` — part of the store contract: hashed, audited in the store's
audit log, revoked once, never moving the change token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import T0
from store_kinds import STORE_KINDS

from flagmw import Store


@pytest.fixture(params=sorted(STORE_KINDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s, cleanup = STORE_KINDS[request.param](tmp_path)
    yield s
    cleanup()


def test_tokens_are_stored_hashed_audited_and_revoked_once(store: Store) -> None:
    from flagmw import NotFoundError
    from flagmw.stores.tokens import TokenError, hash_secret, new_secret, token_store

    tokens = token_store(store)
    secret = new_secret()
    digest = hash_secret(secret)
    assert digest is not None
    assert secret not in digest
    assert len(digest) == 64
    token = tokens.add_token(digest, "alice", "operator", actor="root", at=T0)
    assert (token.id, token.name, token.role, token.active) == ("tok-1", "alice", "operator", True)
    assert tokens.token_by_hash(digest) == token
    assert tokens.token_by_hash(hash_secret(new_secret()) or "") is None
    with pytest.raises(TokenError, match="already named 'alice'"):
        tokens.add_token(hash_secret(new_secret()) or "", "alice", "viewer", actor="root", at=T0)
    bob = tokens.add_token(hash_secret(new_secret()) or "", "bob", "viewer", actor="root", at=T0)
    assert [t.name for t in tokens.list_tokens()] == ["alice", "bob"]

    revoked = tokens.revoke_token(token.id, actor="root", reason="left the team", at=T0 + 5)
    assert (revoked.active, revoked.revoked_by, revoked.revoke_reason) == (
        False,
        "root",
        "left the team",
    )
    assert tokens.token_by_hash(digest) == revoked  # still found, so it is refused as revoked
    with pytest.raises(TokenError, match="revoked"):
        tokens.revoke_token(token.id, actor="root", reason="again", at=T0 + 6)
    with pytest.raises(NotFoundError):
        tokens.revoke_token("tok-99", actor="root", reason="x", at=T0 + 6)
    # a new token may take a revoked token's name
    tokens.add_token(hash_secret(new_secret()) or "", "alice", "admin", actor="root", at=T0 + 7)
    actions = [(a.action, a.actor, a.target) for a in store.audit(10, action="token")]
    assert actions == [
        ("token.create", "root", "tok-3 alice (admin)"),
        ("token.revoke", "root", "tok-1 alice (operator)"),
        ("token.create", "root", f"{bob.id} bob (viewer)"),
        ("token.create", "root", "tok-1 alice (operator)"),
    ]


def test_token_writes_do_not_move_the_change_token(store: Store) -> None:
    from flagmw.stores.tokens import hash_secret, new_secret, token_store

    before = store.change_token()
    token_store(store).add_token(
        hash_secret(new_secret()) or "", "ci", "viewer", actor="root", at=T0
    )
    assert store.change_token() == before


def test_hash_secret_refuses_what_is_not_a_token() -> None:
    from flagmw.stores.tokens import hash_secret, new_secret

    assert hash_secret("") is None
    assert hash_secret("fmw_short") is None
    assert hash_secret(new_secret() + "x") is None
    assert hash_secret(new_secret()) is not None
