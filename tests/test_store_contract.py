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

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, FixedClock, snapshot_part
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_kinds import DISCONNECTED, SECOND_INSTANCE, STORE_KINDS

from flagmw import ConflictError, FlagClient, FlagRegistry, NotFoundError, OverrideError, Store
from flagmw.core.context import EvaluationContext
from flagmw.core.snapshot_hash import document_hash, hash_and_texts

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


def test_a_config_canary_is_served_as_its_baseline_until_it_ends(
    kind: str, store: Store, registry: FlagRegistry, clock: FixedClock
) -> None:
    """Issue 12 §3, on every backend: a canary head serves its baseline by default and
    the canary rev only to a context assigned it; the controller's abort publishes the
    baseline's content as a plain rev (read by another instance too); a publish during
    the canary is refused."""
    from flagmw.client.canary import CONFIG_REV_ATTR, CanaryInProgressError
    from flagmw.rollout.canary import start_canary
    from flagmw.rollout.controller import RolloutController
    from flagmw.rollout.store import open_rollout_store

    client = FlagClient(registry, store, clock=clock)
    client.publish(_doc(4), author="a", message="baseline")
    rs = open_rollout_store(store)
    other = SECOND_INSTANCE[kind](store) if kind in SECOND_INSTANCE else store
    try:
        ctl = RolloutController(rs, clock=clock, flags=store)
        s = start_canary(client, _doc(9), stages="5,100", author="a", message="m", controller=ctl)
        assert (s.publish.rev, s.rollout.name) == (2, "config-rev-2")
        reader = FlagClient(registry, other, clock=clock)
        for c in (client, reader):
            st = c.status()
            assert (st.head_rev, st.snapshot_rev, st.canary_rev, st.stale) == (2, 1, 2, False)
            assert c.value(KEY, EvaluationContext(tenant_id="acme")) == 4
            assigned = EvaluationContext(tenant_id="acme", attributes={CONFIG_REV_ATTR: 2})
            assert (c.resolve(assigned).snapshot_rev, c.value(KEY, assigned)) == (2, 9)
        with pytest.raises(CanaryInProgressError):
            client.publish(_doc(5), author="a", message="m")
        ctl.abort("config-rev-2", actor="oncall", reason="numbers")
        head = store.head()
        assert head is not None
        assert (head.rev, head.action, head.rollback_of) == (3, "rollback", 1)
        _wait(lambda: reader.poll() > 0 and reader.snapshot_rev == 3, "the ending publish")
        assert (reader.value(KEY), reader.status().canary_rev) == (4, None)
        assert client.publish(_doc(5), author="a", message="m").rev == 4
    finally:
        rs.close()
        if other is not store:
            other.close()


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


# -- tenant and route overlays stored one by one (contract item 4) -----------------------

REG = {"flags": {KEY: {"type": "int", "default": 8}}}
REG_FP = "sha256:reg"


def _fleet_doc() -> dict[str, Any]:
    return {
        "values": {KEY: 5},
        "tenants": {
            "acme": {"values": {KEY: 3}},
            "globex": {"values": {KEY: 4}, "requires": [REFUND]},
            "initech": {"values": {KEY: 6}},
        },
        "routes": {"billing": {"values": {KEY: 2}}},
    }


def _publish_whole(store: Store, doc: dict[str, Any], parent: int | None) -> Any:
    return store.publish(
        doc,
        REG,
        content_hash=document_hash(doc),
        registry_fingerprint=REG_FP,
        parent_rev=parent,
        author="alice",
        message="whole",
        at=T0,
    )


def _patch(store: Store, changes: dict[tuple[str, str], Any], parent: int) -> Any:
    return store.publish_overlays(
        changes,
        REG,
        registry_fingerprint=REG_FP,
        parent_rev=parent,
        author="bob",
        message="one tenant",
        at=T0 + 1,
    )


def test_publish_overlays_writes_one_overlay_and_keeps_the_others(store: Store) -> None:
    _publish_whole(store, _fleet_doc(), None)
    info = _patch(store, {("tenants", "globex"): {"values": {KEY: 9}}}, 1)
    expected = _fleet_doc()
    expected["tenants"]["globex"] = {"values": {KEY: 9}}
    assert (info.rev, info.parent_rev, info.author) == (2, 1, "bob")
    assert store.get_snapshot(2).document == expected
    assert store.get_snapshot().document == expected
    assert store.get_snapshot(1).document == _fleet_doc()  # the old rev is untouched
    # the composable hash: the same as hashing the whole assembled document
    assert info.content_hash == document_hash(expected)
    assert store.head() == info
    assert store.changed_overlays(1, 2) == {("tenants", "globex")}
    entry = store.audit(limit=1)[0]
    assert (entry.action, entry.before, entry.after) == ("publish", 1, 2)
    assert entry.details["overlays_changed"] == 1
    assert entry.details["content_hash"] == info.content_hash


def test_the_base_and_the_overlays_one_by_one(store: Store) -> None:
    _publish_whole(store, _fleet_doc(), None)
    _patch(store, {("routes", "billing"): {"values": {KEY: 1}}}, 1)
    base = store.get_snapshot(2, overlays=False)
    assert base.document == {**_fleet_doc(), "tenants": {}, "routes": {}}
    assert base.info == store.get_snapshot(2).info
    assert base.registry == REG
    assert store.overlay_names(2) == [
        ("routes", "billing"),
        ("tenants", "acme"),
        ("tenants", "globex"),
        ("tenants", "initech"),
    ]
    keys = [("tenants", "acme"), ("routes", "billing"), ("tenants", "nobody")]
    assert store.get_overlays(2, keys) == {
        ("tenants", "acme"): {"values": {KEY: 3}},
        ("routes", "billing"): {"values": {KEY: 1}},
    }
    assert store.get_overlays(1, [("routes", "billing")]) == {
        ("routes", "billing"): {"values": {KEY: 2}}
    }
    assert store.get_overlays(2, []) == {}
    for bad in (lambda: store.get_overlays(3, keys), lambda: store.overlay_names(3)):
        with pytest.raises(NotFoundError):
            bad()
    with pytest.raises(NotFoundError):
        store.get_snapshot(3, overlays=False)


def test_a_removed_overlay_is_gone_from_that_rev_on(store: Store) -> None:
    _publish_whole(store, _fleet_doc(), None)
    info = _patch(store, {("tenants", "acme"): None, ("tenants", "hooli"): {"values": {}}}, 1)
    expected = _fleet_doc()
    del expected["tenants"]["acme"]
    expected["tenants"]["hooli"] = {"values": {}}
    assert store.get_snapshot(2).document == expected
    assert info.content_hash == document_hash(expected)
    assert ("tenants", "acme") not in store.overlay_names(2)
    assert store.get_overlays(2, [("tenants", "acme")]) == {}
    assert store.get_overlays(1, [("tenants", "acme")]) == {
        ("tenants", "acme"): {"values": {KEY: 3}}
    }
    assert store.changed_overlays(1, 2) == {("tenants", "acme"), ("tenants", "hooli")}
    assert store.changed_overlays(2, 2) == set()
    # removing what is absent, or writing what is there, changes nothing
    again = _patch(
        store, {("tenants", "acme"): None, ("routes", "billing"): {"values": {KEY: 2}}}, 2
    )
    assert again.content_hash == info.content_hash
    assert store.changed_overlays(2, 3) == set()
    assert store.audit(limit=1)[0].details["overlays_changed"] == 0


def test_a_whole_publish_writes_only_the_overlays_that_changed(store: Store) -> None:
    _publish_whole(store, _fleet_doc(), None)
    assert store.changed_overlays(0, 1) == {
        ("tenants", "acme"),
        ("tenants", "globex"),
        ("tenants", "initech"),
        ("routes", "billing"),
    }
    doc = _fleet_doc()
    doc["values"][KEY] = 7  # a global change: no overlay written
    info = _publish_whole(store, doc, 1)
    assert store.changed_overlays(1, 2) == set()
    assert store.audit(limit=1)[0].details["overlays_changed"] == 0
    doc["tenants"]["acme"] = {"values": {KEY: 30}}
    doc["tenants"].pop("initech")
    doc["routes"]["search"] = {"values": {}}
    third = store.publish(
        doc,
        REG,
        content_hash="sha256:as-given",  # recorded as the caller gives it
        registry_fingerprint=REG_FP,
        parent_rev=2,
        author="alice",
        message="three",
        at=T0,
    )
    assert third.content_hash == "sha256:as-given"
    assert store.get_snapshot(3).document == doc
    assert store.get_snapshot(2).document["values"][KEY] == 7
    assert info.content_hash == document_hash(store.get_snapshot(2).document)
    assert store.changed_overlays(2, 3) == {
        ("tenants", "acme"),
        ("tenants", "initech"),
        ("routes", "search"),
    }
    assert store.changed_overlays(1, 3) == store.changed_overlays(2, 3)
    assert store.audit(limit=1)[0].details["overlays_changed"] == 3


def test_publish_overlays_on_a_stale_parent_or_a_bad_key_changes_nothing(store: Store) -> None:
    with pytest.raises(ConflictError):  # nothing to patch yet
        _patch(store, {("tenants", "acme"): {"values": {}}}, 1)
    assert store.head() is None
    _publish_whole(store, _fleet_doc(), None)
    _patch(store, {("tenants", "acme"): {"values": {KEY: 1}}}, 1)
    before = (store.change_token(), store.get_snapshot(), store.audit())
    with pytest.raises(ConflictError):
        _patch(store, {("tenants", "acme"): {"values": {KEY: 2}}}, 1)
    for bad in [("values", KEY), ("tenants",), ("tenants", ""), "tenants"]:
        with pytest.raises(ValueError, match="overlay change"):
            _patch(store, {bad: {"values": {}}}, 2)  # type: ignore[dict-item]
    assert (store.change_token(), store.get_snapshot(), store.audit()) == before


_names = st.sampled_from(["a", "b", "c", "d", "ü:x", "e f"])
_overlays = st.one_of(
    st.none(),
    st.fixed_dictionaries({"values": st.dictionaries(st.just(KEY), st.integers(0, 9))}),
)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(
        st.tuples(st.sampled_from(["tenants", "routes"]), _names), _overlays, max_size=5
    )
)
def test_any_patch_assembles_and_hashes_like_the_whole_document(
    store: Store, changes: dict[tuple[str, str], Any]
) -> None:
    head = store.head()
    if head is None:
        head = _publish_whole(store, _fleet_doc(), None)
    expected = dict(store.get_snapshot().document)
    expected = {k: dict(v) if k in ("tenants", "routes") else v for k, v in expected.items()}
    for (section, name), overlay in changes.items():
        if overlay is None:
            expected[section].pop(name, None)
        else:
            expected[section][name] = overlay
    before = store.overlay_names(head.rev)
    info = _patch(store, changes, head.rev)
    assert store.get_snapshot(info.rev).document == expected
    assert store.overlay_names(info.rev) == sorted(
        (section, name) for section in ("routes", "tenants") for name in expected[section]
    )
    assert store.overlay_names(head.rev) == before  # an old rev keeps its overlays
    assert info.content_hash == document_hash(expected)
    assert store.changed_overlays(head.rev, info.rev) <= set(changes)


def test_concurrent_one_tenant_publishes_on_one_parent_exactly_one_wins(store: Store) -> None:
    _publish_whole(store, _fleet_doc(), None)
    barrier = threading.Barrier(4)
    outcomes: dict[str, Any] = {}

    def publish(name: str) -> None:
        barrier.wait()
        try:
            outcomes[name] = _patch(store, {("tenants", name): {"values": {KEY: 1}}}, 1)
        except ConflictError as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=publish, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [n for n, o in outcomes.items() if not isinstance(o, ConflictError)]
    assert len(outcomes) == 4
    assert len(winners) == 1
    head = store.head()
    assert head is not None
    assert head.rev == 2
    assert store.changed_overlays(1, 2) == {("tenants", winners[0])}
    expected = _fleet_doc()
    expected["tenants"][winners[0]] = {"values": {KEY: 1}}
    assert store.get_snapshot().document == expected


def test_a_publish_with_the_callers_overlay_texts(store: Store) -> None:
    doc = _fleet_doc()
    content_hash, texts = hash_and_texts(doc)
    info = store.publish(
        doc,
        REG,
        content_hash=content_hash,
        registry_fingerprint=REG_FP,
        parent_rev=None,
        author="alice",
        message="whole",
        at=T0,
        overlay_texts=texts,
    )
    assert store.get_snapshot(1).document == doc
    assert store.get_overlays(1, list(texts)) == {key: doc[key[0]][key[1]] for key in texts}
    # the digest kept from those texts: a patch on top hashes like the whole document
    patched = _patch(store, {("tenants", "acme"): None}, info.rev)
    del doc["tenants"]["acme"]
    assert patched.content_hash == document_hash(doc)


def test_overlay_texts_are_the_canonical_texts_of_a_revs_overlays(store: Store) -> None:
    """What a whole-document publish compares with (validating only what changed)."""
    from flagmw.core.snapshot_hash import overlay_text

    _publish_whole(store, _fleet_doc(), None)
    _patch(store, {("tenants", "acme"): None, ("routes", "billing"): {"values": {KEY: 7}}}, 1)
    for rev in (1, 2):
        doc = store.get_snapshot(rev).document
        expected = {
            (section, name): overlay_text(overlay)
            for section in ("tenants", "routes")
            for name, overlay in doc[section].items()
        }
        assert store.overlay_texts(rev) == expected
    assert ("tenants", "acme") not in store.overlay_texts(2)
    with pytest.raises(NotFoundError):
        store.overlay_texts(3)


def test_whole_publishes_through_a_client_record_the_documents_hash(store: Store) -> None:
    """A client's whole-document publish derives the hash from the head's digest and
    the overlays that changed (and the store reuses the texts it handed out): every rev
    records the hash of the document it reads back as."""
    flags = {**REG["flags"], REFUND: {"type": "bool", "default": True, "protected": True}}
    client = FlagClient(FlagRegistry.from_dict({"flags": flags}), store, clock=FixedClock(T0))
    doc = _fleet_doc()
    client.publish(doc, author="a", message="1")
    doc["tenants"]["acme"] = {"values": {KEY: 30}}  # changed
    del doc["tenants"]["initech"]  # removed
    doc["tenants"]["hooli"] = {"values": {KEY: 31}}  # added
    doc["values"] = {KEY: 12}  # the base
    client.publish(doc, author="a", message="2")
    client.publish_tenant("globex", {"values": {KEY: 5}}, author="a", message="3")
    client.publish(doc, author="a", message="4: globex back")
    for rev in (1, 2, 3, 4):
        record = store.get_snapshot(rev)
        assert record.info.content_hash == document_hash(record.document)
    assert store.get_snapshot(4).document == store.get_snapshot(2).document
    assert store.changed_overlays(3, 4) == {("tenants", "globex")}
