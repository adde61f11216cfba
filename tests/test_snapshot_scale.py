"""Snapshots that scale (issue 8 §3): overlays stored one by one, one-tenant publishes,
overlays loaded on first use, the composable content hash, and the SQLite schema-3
migration — on real stores (memory, a SQLite file; PostgreSQL and Redis run the same
protocol through tests/test_store_contract.py)."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, FixedClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flagmw import EvaluationContext, FlagClient, FlagRegistry
from flagmw.cli import app
from flagmw.client import overlays as lazy
from flagmw.core.snapshot import validate_document
from flagmw.core.snapshot_hash import document_hash
from flagmw.errors import ConflictError, StoreUnavailableError, ValidationError
from flagmw.stores import MemoryStore, SQLiteStore
from flagmw.stores.base import Store

REGISTRY = FlagRegistry.from_dict(
    {
        "flags": {
            "model.primary": {
                "type": "enum",
                "choices": ["gpt-4o", "gpt-4o-mini", "llama"],
                "default": "gpt-4o",
                "owner": "t",
            },
            "loop.max_iterations": {"type": "int", "min": 1, "max": 50, "default": 8, "owner": "t"},
            "compliance.pii_redaction": {
                "type": "bool",
                "default": True,
                "protected": True,
                "owner": "t",
            },
        }
    }
)


def _fleet(n: int, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "values": {"loop.max_iterations": 10},
        "segments": {"vip": {"plan": "enterprise"}},
        "tenants": {
            f"t-{i:05d}": {"values": {"model.primary": model, "loop.max_iterations": 1 + i % 40}}
            for i in range(n)
        },
        "routes": {"refund": {"values": {"loop.max_iterations": 3}}},
    }


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store = (
        MemoryStore()
        if request.param == "memory"
        else SQLiteStore(tmp_path / "flagmw.db", create=True)
    )
    yield s
    s.close()


def _client(store: Store, clock: FixedClock | None = None) -> FlagClient:
    return FlagClient(REGISTRY, store, clock=clock or FixedClock(T0))


def _overlay_rows(path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT section, name, rev FROM overlays ORDER BY rev, name").fetchall()


# -- publishing -------------------------------------------------------------------------


def test_a_one_tenant_publish_changes_that_tenant_only(store: Store) -> None:
    client = _client(store)
    client.publish(_fleet(50), author="a", message="fleet")
    result = client.publish_tenant(
        "t-00007", {"values": {"model.primary": "llama"}}, author="cs", message="acme wants llama"
    )
    assert (result.rev, result.published) == (2, True)
    record = store.get_snapshot(2)
    expected = validate_document(_fleet(50), REGISTRY).document
    expected = dict(expected, tenants=dict(expected["tenants"]))
    expected["tenants"]["t-00007"] = {
        "values": {"model.primary": "llama"},
        "rules": [],
        "requires": [],
    }
    assert record.document == expected
    # the hash a whole-document publish of the same content would record
    assert result.content_hash == record.info.content_hash == document_hash(expected)
    assert store.audit(1)[0].details["overlays_changed"] == 1
    assert store.changed_overlays(1, 2) == {("tenants", "t-00007")}
    assert client.value("model.primary", EvaluationContext(tenant_id="t-00007")) == "llama"
    assert client.value("model.primary", EvaluationContext(tenant_id="t-00008")) == "gpt-4o-mini"
    # diff and rollback work on patch revs as on whole revs
    changes = client.diff(1, 2)
    assert [(c.path, c.kind) for c in changes] == [
        ("tenants.t-00007.values[loop.max_iterations]", "removed"),  # a whole new overlay
        ("tenants.t-00007.values[model.primary]", "changed"),
    ]
    back = client.rollback(1, author="a", message="undo")
    assert back.content_hash == store.get_snapshot(1).info.content_hash
    assert client.value("model.primary", EvaluationContext(tenant_id="t-00007")) == "gpt-4o-mini"


def test_a_whole_publish_writes_only_the_overlays_that_changed(tmp_path: Path) -> None:
    path = tmp_path / "flagmw.db"
    with SQLiteStore(path, create=True) as store:
        client = _client(store)
        client.publish(_fleet(30), author="a", message="fleet")
        assert len(_overlay_rows(path)) == 31  # 30 tenants + 1 route
        doc = _fleet(30)
        doc["values"]["loop.max_iterations"] = 12  # a global change only
        client.publish(doc, author="a", message="global")
        assert len(_overlay_rows(path)) == 31
        del doc["tenants"]["t-00003"]
        doc["tenants"]["t-00004"]["values"]["model.primary"] = "llama"
        client.publish(doc, author="a", message="two tenants")
        assert [r for r in _overlay_rows(path) if r[2] == 3] == [
            ("tenants", "t-00003", 3),
            ("tenants", "t-00004", 3),
        ]
        assert "t-00003" not in store.get_snapshot(3).document["tenants"]
        assert store.get_snapshot(1).document["tenants"]["t-00003"]  # history unchanged
        assert store.overlay_names(3) == sorted(
            [("routes", "refund")] + [("tenants", t) for t in doc["tenants"]]
        )


def test_removing_an_overlay_and_publishing_nothing_new(store: Store) -> None:
    client = _client(store)
    client.publish(_fleet(5), author="a", message="fleet")
    gone = client.publish_overlays(
        {"tenants": {"t-00001": None}, "routes": {"refund": None}}, author="a", message="rm"
    )
    assert gone.published
    doc = store.get_snapshot().document
    assert "t-00001" not in doc["tenants"]
    assert doc["routes"] == {}
    assert gone.content_hash == document_hash(doc)
    again = client.publish_overlays({"tenants": {"t-00001": None}}, author="a", message="rm")
    assert (again.published, again.rev) == (False, 2)


def test_an_overlay_patch_is_validated_and_refused_whole(store: Store) -> None:
    client = _client(store)
    with pytest.raises(ValidationError, match="nothing is published"):
        client.publish_tenant("acme", {"values": {}}, author="a", message="m")
    client.publish(_fleet(3), author="a", message="fleet")
    with pytest.raises(ValidationError) as bad:
        client.publish_overlays(
            {
                "values": {"loop.max_iterations": 3},
                "tenants": {"acme": {"values": {"loop.max_iterations": 99}}},
            },
            author="a",
            message="m",
        )
    paths = {p.path for p in bad.value.problems}
    assert paths == {"values", "tenants.acme.values[loop.max_iterations]"}
    # a rule may use the head's segments; an unknown one is located
    with pytest.raises(ValidationError) as seg:
        client.publish_tenant(
            "acme",
            {
                "rules": [
                    {"name": "r", "when": {"segment": "nope"}, "set": {"loop.max_iterations": 2}}
                ]
            },
            author="a",
            message="m",
        )
    assert "nope" in str(seg.value)
    ok = client.publish_tenant(
        "acme",
        {"rules": [{"name": "r", "when": {"segment": "vip"}, "set": {"loop.max_iterations": 2}}]},
        author="a",
        message="m",
    )
    assert ok.rev == 2
    assert store.head().rev == 2  # type: ignore[union-attr]
    with pytest.raises(ConflictError):
        client.publish_tenant("b", {"values": {}}, author="a", message="m", parent_rev=1)


def test_validating_an_overlay_patch_publishes_nothing(store: Store) -> None:
    client = _client(store)
    client.publish(_fleet(3), author="a", message="fleet")
    checked = client.validate_overlays(
        {"tenants": {"acme": {"values": {"loop.max_iterations": 4}}}}
    )
    assert checked.document["tenants"]["acme"]["values"] == {"loop.max_iterations": 4}
    with pytest.raises(ValidationError) as bad:
        client.validate_overlays({"tenants": {"acme": {"values": {"loop.max_iterations": 99}}}})
    assert {p.path for p in bad.value.problems} == {"tenants.acme.values[loop.max_iterations]"}
    assert store.head().rev == 1  # type: ignore[union-attr]


def test_a_patch_on_a_head_of_another_registry_is_refused(store: Store) -> None:
    _client(store).publish(_fleet(2), author="a", message="fleet")
    other = FlagRegistry.from_dict(
        {"flags": {**REGISTRY.to_dict()["flags"], "x.y": {"type": "bool", "default": False}}}
    )
    with pytest.raises(ValidationError, match="another registry"):
        FlagClient(other, store).publish_tenant("a", {"values": {}}, author="a", message="m")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["t1", "t2", "t3", "t4"]),
            st.one_of(st.none(), st.sampled_from(["gpt-4o", "gpt-4o-mini", "llama"])),
            st.booleans(),  # a whole publish (True) or a patch
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_sequence_of_publishes_keeps_documents_and_hashes(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, str | None, bool]]
) -> None:
    """For every sequence of whole and patch publishes: each rev reads back as the
    document a whole publish of it would store, with that document's content hash,
    in the SQLite file and in memory alike."""
    path = tmp_path_factory.mktemp("prop") / "flagmw.db"
    for store in (MemoryStore(), SQLiteStore(path, create=True)):
        client = _client(store)
        model: dict[str, Any] = {"values": {}, "tenants": {"t0": {"values": {}}}}
        client.publish(model, author="a", message="0")
        expected = [validate_document(model, REGISTRY).document]
        for tenant, value, whole in steps:
            overlay = None if value is None else {"values": {"model.primary": value}}
            tenants = dict(model["tenants"])
            if overlay is None:
                tenants.pop(tenant, None)
            else:
                tenants[tenant] = overlay
            model = dict(model, tenants=tenants)
            if whole:
                client.publish(model, author="a", message="w")
            else:
                client.publish_tenant(tenant, overlay, author="a", message="p")
            doc = validate_document(model, REGISTRY).document
            if doc != expected[-1]:
                expected.append(doc)
        for rev, doc in enumerate(expected, 1):
            record = store.get_snapshot(rev)
            assert record.document == doc
            assert record.info.content_hash == document_hash(doc)
        store.close()


# -- loading ----------------------------------------------------------------------------


class CountingStore(SQLiteStore):
    """A real SQLite store that counts the overlays it is asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, str]] = []
        self.calls = 0
        self.down = False

    def get_overlays(
        self, rev: int, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], Mapping[str, Any]]:
        keys = list(keys)
        if self.down:
            raise StoreUnavailableError(self.name, "connection refused")
        self.asked.extend(keys)
        self.calls += 1
        return super().get_overlays(rev, keys)


def test_a_large_fleet_loads_each_overlay_on_first_use_and_only_changed_ones_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lazy, "EAGER_OVERLAYS", 100)
    writer = _client(SQLiteStore(tmp_path / "flagmw.db", create=True))
    writer.publish(_fleet(500), author="a", message="fleet")
    store = CountingStore(tmp_path / "flagmw.db")  # another connection, as in a worker
    worker = _client(store)
    assert store.asked == []  # names only: no overlay read at start
    ctx = [EvaluationContext(tenant_id=f"t-{i:05d}") for i in range(10)]
    assert [worker.value("loop.max_iterations", c) for c in ctx] == [1 + i for i in range(10)]
    assert sorted(store.asked) == [("tenants", f"t-{i:05d}") for i in range(10)]
    for c in ctx:  # kept
        worker.value("loop.max_iterations", c)
    assert len(store.asked) == 10
    # an unknown tenant costs no read and is not remembered
    assert worker.value("loop.max_iterations", EvaluationContext(tenant_id="nobody")) == 10
    assert len(store.asked) == 10
    store.asked.clear()
    writer.publish_tenant(
        "t-00003", {"values": {"loop.max_iterations": 33}}, author="a", message="m"
    )
    worker.poll()
    assert worker.snapshot_rev == 2
    assert store.asked == [("tenants", "t-00003")]  # the changed one, read with the publish
    assert [worker.value("loop.max_iterations", c) for c in ctx] == [
        33 if i == 3 else 1 + i for i in range(10)
    ]
    assert store.asked == [("tenants", "t-00003")]  # the other nine kept
    store.close()


def test_an_overlay_that_cannot_be_read_is_served_without_and_reported_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(lazy, "EAGER_OVERLAYS", 10)
    store = CountingStore(tmp_path / "flagmw.db", create=True)
    clock = FixedClock(T0)
    _client(store, clock).publish(_fleet(50), author="a", message="fleet")
    worker = _client(store, clock)
    seen = EvaluationContext(tenant_id="t-00001")
    assert worker.value("loop.max_iterations", seen) == 2
    store.down = True
    caplog.set_level(logging.ERROR, logger="flagmw")
    never = EvaluationContext(tenant_id="t-00002")
    assert worker.value("loop.max_iterations", never) == 10  # the global value, not a crash
    assert worker.status().stale
    assert not worker.status().healthy
    assert "t-00002" in caplog.text
    assert worker.value("loop.max_iterations", seen) == 2  # read before: still served
    store.down = False
    clock.advance(2.0)
    worker.poll()
    assert worker.value("loop.max_iterations", never) == 3
    assert worker.status().healthy
    store.close()


def test_runs_of_a_tenant_whose_overlay_could_not_be_read_get_it_once_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audience memo of ``resolve`` does not keep what a run got without its
    tenant's overlay (the store was down): the next run reads it again. And a tenant
    overlay read on first use that names a run id turns the memo off for the rev."""
    monkeypatch.setattr(lazy, "EAGER_OVERLAYS", 10)
    store = CountingStore(tmp_path / "flagmw.db", create=True)
    clock = FixedClock(T0)
    writer = _client(store, clock)
    fleet = _fleet(50)
    fleet["tenants"]["t-00007"]["rules"] = [
        {"name": "one", "when": {"run_id": "r-1"}, "set": {"loop.max_iterations": 49}}
    ]
    writer.publish(fleet, author="a", message="fleet")
    worker = _client(store, clock)
    store.down = True
    run = EvaluationContext(tenant_id="t-00002", thread_id="a", run_id="r-a")
    assert worker.resolve(run)["loop.max_iterations"] == 10  # served without, twice
    assert worker.resolve(run._replace(run_id="r-b"))["loop.max_iterations"] == 10
    store.down = False
    clock.advance(2.0)
    worker.poll()
    assert worker.resolve(run._replace(run_id="r-c"))["loop.max_iterations"] == 3
    assert worker.resolve(run._replace(run_id="r-d"))["loop.max_iterations"] == 3
    view = worker._scope(None)[0]
    assert view.audiences is not None
    seven = EvaluationContext(tenant_id="t-00007", run_id="r-2")
    assert worker.resolve(seven)["loop.max_iterations"] == 8
    assert view.audiences is None  # its overlay reads a run id
    assert worker.resolve(seven._replace(run_id="r-1"))["loop.max_iterations"] == 49
    store.close()


def test_a_small_fleet_is_loaded_whole_so_an_outage_changes_nothing(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "flagmw.db", create=True)
    _client(store).publish(_fleet(20), author="a", message="fleet")
    worker = _client(store)
    store.down = True
    assert worker.value("loop.max_iterations", EvaluationContext(tenant_id="t-00019")) == 20
    store.close()


def test_the_last_good_file_keeps_the_overlays_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lazy, "EAGER_OVERLAYS", 10)
    store = SQLiteStore(tmp_path / "flagmw.db", create=True)
    _client(store).publish(_fleet(50), author="a", message="fleet")
    saved = tmp_path / "last-good.json"
    worker = FlagClient(REGISTRY, store, clock=FixedClock(T0), last_good_file=saved)
    worker.value("loop.max_iterations", EvaluationContext(tenant_id="t-00004"))
    data = json.loads(saved.read_text())
    assert data["document"]["values"] == {"loop.max_iterations": 10}
    assert set(data["document"]["tenants"]) <= {f"t-{i:05d}" for i in range(50)}
    store.close()


# -- the CLI ----------------------------------------------------------------------------


def test_flagmw_publish_overlays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flags.yaml").write_text(
        "flags:\n"
        "  loop.max_iterations: {type: int, min: 1, max: 50, default: 8, owner: t}\n"
        "tenants:\n  acme: {values: {loop.max_iterations: 4}}\n  beta: {values: {}}\n"
    )
    (tmp_path / "acme.yaml").write_text("tenants:\n  acme:\n    values: {loop.max_iterations: 5}\n")
    (tmp_path / "bad.yaml").write_text(
        "tenants:\n  acme:\n    values: {loop.max_iterations: 500}\nvalues: {}\n"
    )
    env = {"FLAGMW_STORE": str(tmp_path / "flagmw.db"), "FLAGMW_ACTOR": "cs"}
    runner = CliRunner()
    assert runner.invoke(app, ["init"], env=env).exit_code == 0
    r = runner.invoke(app, ["publish", "flags.yaml", "-m", "fleet"], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["publish", "--overlays", "acme.yaml", "-m", "acme"], env=env)
    assert r.exit_code == 0, r.output
    assert "published rev 2" in r.output
    r = runner.invoke(app, ["publish", "--overlays", "bad.yaml", "-m", "bad"], env=env)
    assert r.exit_code == 1
    assert "bad.yaml:3" in r.output
    assert "bad.yaml:4" in r.output
    r = runner.invoke(
        app, ["--json", "explain", "loop.max_iterations", "--tenant", "acme"], env=env
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["value"] == 5
    with SQLiteStore(tmp_path / "flagmw.db") as store:
        assert store.head().rev == 2  # type: ignore[union-attr]


# -- migration --------------------------------------------------------------------------

_V2_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta(key, value) VALUES ('schema_version', 2), ('snapshot_seq', 2),
    ('override_seq', 0);
CREATE TABLE registries (fingerprint TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE snapshots (
    rev INTEGER PRIMARY KEY, parent_rev INTEGER, content_hash TEXT NOT NULL,
    author TEXT NOT NULL, message TEXT NOT NULL, created_at REAL NOT NULL,
    registry_fingerprint TEXT NOT NULL REFERENCES registries(fingerprint),
    action TEXT NOT NULL, rollback_of INTEGER, document TEXT NOT NULL);
CREATE TRIGGER snapshots_immutable_update BEFORE UPDATE ON snapshots
BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END;
CREATE TRIGGER snapshots_immutable_delete BEFORE DELETE ON snapshots
BEGIN SELECT RAISE(ABORT, 'flagmw snapshots are immutable'); END;
CREATE TABLE overrides (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, key TEXT NOT NULL,
    value TEXT NOT NULL, kind TEXT NOT NULL, scope TEXT NOT NULL, target TEXT,
    reason TEXT NOT NULL, actor TEXT NOT NULL, created_at REAL NOT NULL,
    expires_at REAL NOT NULL, force INTEGER NOT NULL DEFAULT 0, environment TEXT,
    ended_at REAL, ended_by TEXT, end_reason TEXT);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, action TEXT NOT NULL,
    actor TEXT NOT NULL, reason TEXT NOT NULL, target TEXT NOT NULL, before TEXT,
    after TEXT, details TEXT NOT NULL DEFAULT '{}');
"""


def test_a_schema_2_store_is_migrated_with_its_history_and_hashes(tmp_path: Path) -> None:
    """A store written by flagmw before schema 3 (whole documents per rev) is migrated
    in place: every rev reads back the same, recorded hashes are kept, and a one-tenant
    publish works on top."""
    path = tmp_path / "flagmw.db"
    docs = [validate_document(_fleet(4), REGISTRY).document]
    second = _fleet(4)
    second["tenants"]["t-00002"] = {"values": {"model.primary": "llama"}}
    docs.append(validate_document(second, REGISTRY).document)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(_V2_SCHEMA)
    conn.execute(
        "INSERT INTO registries VALUES (?, ?)",
        (REGISTRY.fingerprint, json.dumps(REGISTRY.to_dict())),
    )
    for rev, doc in enumerate(docs, 1):
        conn.execute(
            "INSERT INTO snapshots VALUES (?, ?, ?, 'a', 'm', ?, ?, 'publish', NULL, ?)",
            (rev, rev - 1 or None, f"sha256:old-{rev}", T0, REGISTRY.fingerprint, json.dumps(doc)),
        )
    conn.close()
    with SQLiteStore(path) as store:
        for rev, doc in enumerate(docs, 1):
            record = store.get_snapshot(rev)
            assert record.document == doc
            assert record.info.content_hash == f"sha256:old-{rev}"
        assert store.changed_overlays(1, 2) == {("tenants", "t-00002")}
        client = _client(store)
        result = client.publish_tenant("t-00003", None, author="a", message="rm")
        expected = dict(
            docs[1], tenants={k: v for k, v in docs[1]["tenants"].items() if k != "t-00003"}
        )
        assert store.get_snapshot(3).document == expected
        assert result.content_hash == document_hash(expected)
    with sqlite3.connect(path) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="immutable"):
            conn.execute("UPDATE snapshots SET message='x' WHERE rev=1")
        with pytest.raises(sqlite3.DatabaseError, match="immutable"):
            conn.execute("DELETE FROM overlays")


@given(
    start=st.sets(st.text(max_size=8)),
    ops=st.lists(st.tuples(st.booleans(), st.sets(st.text(max_size=8), max_size=80))),
    probes=st.lists(st.text(max_size=8)),
)
def test_the_name_index_answers_as_a_set_would(
    start: set[str], ops: list[tuple[bool, set[str]]], probes: list[str]
) -> None:
    """The hashed index of overlay names (8 bytes a name) keeps set semantics through
    any sequence of later revs' additions (one by one or in bulk) and removals."""
    index, model = lazy.NameIndex(start), set(start)
    for add, names in ops:
        if add:
            index.add_many(names)
            model |= names
        else:
            for name in names:
                index.discard(name)
            model -= names
    for name in [*probes, *start, *model]:
        assert (name in index) == (name in model)


def test_a_whole_publish_validates_what_changed_and_what_it_depends_on(store: Store) -> None:
    """Overlays written exactly as the head stores them are not validated again — but
    a changed one is, a wrongly typed value never passes as a stored one, and a change
    of the segments the rules name validates every overlay."""
    client = _client(store)
    doc: dict[str, Any] = {
        "segments": {"vip": {"plan": "enterprise"}},
        "tenants": {
            "a": {
                "values": {"compliance.pii_redaction": True},
                "rules": [
                    {"name": "r", "when": {"segment": "vip"}, "set": {"loop.max_iterations": 2}}
                ],
            },
            "b": {"values": {"loop.max_iterations": 3}},
        },
    }
    client.publish(doc, author="a", message="1")
    stored = store.get_snapshot().document
    # the stored form published again: nothing to validate, nothing changed
    assert client.publish(dict(stored), author="a", message="same").published is False
    sneaky = json.loads(json.dumps(stored))
    sneaky["tenants"]["a"]["values"]["compliance.pii_redaction"] = 1  # 1 is not true
    with pytest.raises(ValidationError, match="bool"):
        client.publish(sneaky, author="a", message="2")
    no_segment = json.loads(json.dumps(stored))
    no_segment["segments"] = {}
    with pytest.raises(ValidationError, match="vip"):
        client.publish(no_segment, author="a", message="3")
    assert store.head().rev == 1  # type: ignore[union-attr]


def test_reading_every_overlay_of_a_lazy_section_is_one_bulk_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Operator paths that walk every tenant (the tenants a protected flag spares from a
    kill) read the section in one call, not one read per tenant."""
    monkeypatch.setattr(lazy, "EAGER_OVERLAYS", 10)
    writer = _client(SQLiteStore(tmp_path / "flagmw.db", create=True))
    fleet = _fleet(300)
    for name in ("t-00010", "t-00200"):
        fleet["tenants"][name]["requires"] = ["compliance.pii_redaction"]
    writer.publish(fleet, author="a", message="fleet")
    store = CountingStore(tmp_path / "flagmw.db")
    worker = _client(store)
    assert worker.exempt_tenants("compliance.pii_redaction") == ["t-00010", "t-00200"]
    assert store.calls == 1
    assert len(store.asked) == 300
    store.close()
