"""The store contract through the client, on every backend of ``tests/store_kinds.py``.

``tests/test_stores.py`` holds the protocol itself (publish, conflict, history, overrides,
audit, change counter); this module adds what an operator does through
:class:`~flagmw.FlagClient` and what a fleet relies on:

* diff and rollback (a rollback republishes an old rev's content as a new rev, with its
  audit entry, and a stale rollback is a conflict);
* overrides with a TTL expire exactly at ``created_at + ttl``, to the second;
* protected flags: a tenant kill needs ``force`` and is audited as ``kill.forced``;
* notification: a second instance on the same store learns of a publish and of a kill
  through the change notification alone (its safety-net poll disabled);
* reconnect: a change made while the listener is disconnected is picked up by the
  resync when it reconnects.

Backend hooks (a second instance, a way to cut notifications) live in
``tests/store_kinds.py``; a backend without one skips that test with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, FixedClock, snapshot_part
from store_kinds import DISCONNECTED, SECOND_INSTANCE, STORE_KINDS

from flagmw import ConflictError, FlagClient, FlagRegistry, OverrideError, Store
from flagmw.core.context import EvaluationContext

KEY = "loop.max_iterations"
REFUND = "tools.refund_api.enabled"
PII = "compliance.pii_redaction"


@pytest.fixture(params=sorted(STORE_KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[Store]:
    s, cleanup = STORE_KINDS[kind](tmp_path)
    yield s
    cleanup()


@pytest.fixture
def client(store: Store, registry: FlagRegistry, clock: FixedClock) -> FlagClient:
    return FlagClient(registry, store, clock=clock)


def _doc(value: int) -> dict[str, Any]:
    doc = snapshot_part()
    doc["values"][KEY] = value
    return doc


def _wait(check: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    """Spin until ``check()``; the seconds it took."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.0005)
    return time.monotonic() - start


# -- diff and rollback -------------------------------------------------------------------


def test_diff_between_revs(client: FlagClient) -> None:
    client.publish(_doc(4), author="a", message="one")
    client.publish(_doc(9), author="a", message="two")
    changes = client.diff(1, 2)
    assert [(c.path, c.before, c.after, c.kind) for c in changes if KEY in c.path] == [
        (f"values[{KEY}]", 4, 9, "changed")
    ]
    assert client.diff(2, 2) == []


def test_rollback_republishes_an_old_rev_as_a_new_one(client: FlagClient) -> None:
    first = client.publish(_doc(4), author="a", message="one")
    client.publish(_doc(9), author="a", message="two")
    assert client.value(KEY) == 9
    back = client.rollback(1, author="b", message="back to one")
    assert (back.rev, back.parent_rev, back.content_hash) == (3, 2, first.content_hash)
    head = client.history()[0]
    assert (head.rev, head.action, head.rollback_of, head.author) == (3, "rollback", 1, "b")
    assert client.get_snapshot(3).document == client.get_snapshot(1).document
    assert client.snapshot_rev == 3
    assert client.value(KEY) == 4
    entry = client.audit(limit=1)[0]
    assert (entry.action, entry.before, entry.after) == ("rollback", 2, 3)
    assert entry.details["rollback_of"] == 1
    with pytest.raises(ConflictError):
        client.rollback(2, author="b", message="stale", parent_rev=2)
    assert [i.rev for i in client.history()] == [3, 2, 1]


# -- overrides with a TTL ----------------------------------------------------------------


def test_override_expires_to_the_second(client: FlagClient, clock: FixedClock) -> None:
    client.publish(_doc(4), author="a", message="m")
    ov = client.override(KEY, 2, reason="incident", actor="oncall", ttl="90s")
    assert ov.expires_at == T0 + 90
    assert client.value(KEY) == 2
    clock.set(T0 + 89)
    client.poll()
    assert client.value(KEY) == 2
    clock.set(T0 + 89.999)
    client.poll()
    assert client.value(KEY) == 2
    clock.set(T0 + 90)
    client.poll()
    assert client.value(KEY) == 4, "expired at created_at + ttl exactly"
    # a second client that reads the store only after expiry never sees it
    late = FlagClient(client.registry, client.store, clock=FixedClock(T0 + 90))
    assert late.value(KEY) == 4
    assert client.overrides() == []
    assert [o.id for o in client.overrides(include_expired=True)] == [ov.id], "kept for explain"


def test_renewed_kill_lasts_to_its_new_expiry(client: FlagClient, clock: FixedClock) -> None:
    kill = client.kill(REFUND, reason="refunds broken", actor="oncall", ttl="60s")
    assert client.is_enabled(REFUND) is False
    client.renew(kill.id, ttl="120s", actor="oncall", reason="still broken")
    assert client.store.get_override(kill.id).expires_at == T0 + 120
    clock.set(T0 + 119)
    client.poll()
    assert client.is_enabled(REFUND) is False
    clock.set(T0 + 120)
    client.poll()
    assert client.is_enabled(REFUND) is True
    assert [e.action for e in client.audit(action="kill")] == ["kill.renew", "kill.set"]


# -- protected flags ---------------------------------------------------------------------


def test_protected_flag_needs_force_for_a_requiring_tenant(client: FlagClient) -> None:
    client.publish(snapshot_part(), author="a", message="m")
    acme = EvaluationContext(tenant_id="acme")
    audit = client.audit()
    with pytest.raises(OverrideError, match="requires"):
        client.kill(PII, reason="r", actor="a", tenant="acme")
    assert client.audit() == audit, "a refused kill leaves no trace in the store"
    assert client.overrides() == []
    forced = client.kill(PII, reason="legal hold", actor="ciso", tenant="acme", force=True)
    assert forced.force is True
    assert client.is_enabled(PII, acme) is False
    entry = client.audit(limit=1)[0]
    assert (entry.action, entry.actor, entry.reason) == ("kill.forced", "ciso", "legal hold")
    assert entry.details["force"] is True


# -- notification and reconnect ----------------------------------------------------------


# (a MemoryStore has one instance per store; SQLite and memory have no connection to cut)
@pytest.mark.parametrize("kind", sorted(SECOND_INSTANCE), indirect=True)
def test_a_second_instance_learns_of_changes_by_notification(
    kind: str, store: Store, registry: FlagRegistry
) -> None:
    writer = FlagClient(registry, store)
    other = SECOND_INSTANCE[kind](store)
    try:
        reader = FlagClient(registry, other)
        token = other.change_token()
        writer.publish(_doc(6), author="a", message="m")
        _wait(lambda: other.change_token() != token, "the publish's notification")
        assert reader.poll() > 0
        assert (reader.snapshot_rev, reader.value(KEY)) == (1, 6)
        token = other.change_token()
        writer.kill(REFUND, reason="r", actor="a")
        _wait(lambda: other.change_token() != token, "the kill's notification")
        reader.poll()
        assert reader.is_enabled(REFUND) is False
        assert reader.status().healthy
    finally:
        other.close()


@pytest.mark.parametrize(
    "kind", sorted(DISCONNECTED.keys() & SECOND_INSTANCE.keys()), indirect=True
)
def test_a_change_made_while_disconnected_is_picked_up_on_reconnect(
    kind: str, store: Store, registry: FlagRegistry
) -> None:
    writer = FlagClient(registry, store)
    writer.publish(_doc(6), author="a", message="before")
    other = SECOND_INSTANCE[kind](store)
    try:
        reader = FlagClient(registry, other)
        assert reader.snapshot_rev == 1
        token = other.change_token()
        with DISCONNECTED[kind](other):
            writer.publish(_doc(7), author="a", message="while disconnected")
            writer.kill(REFUND, reason="r", actor="a")
            time.sleep(0.05)
            assert other.change_token() == token, "its notifications were lost"
        _wait(lambda: other.change_token() != token, "the resync after reconnecting")
        reader.poll()
        assert (reader.snapshot_rev, reader.value(KEY)) == (2, 7)
        assert reader.is_enabled(REFUND) is False
        assert reader.status().healthy
        # and notifications flow again afterwards
        token = other.change_token()
        writer.publish(_doc(8), author="a", message="after")
        _wait(lambda: other.change_token() != token, "a notification after reconnecting")
    finally:
        other.close()


# -- API tokens of the console (flagmw.stores.tokens), on every backend ----------------------


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
