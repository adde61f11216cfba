"""FlagClient: schema drift, store outages, the generation counter, hot re-resolution,
``FF_`` process variables, publish / rollback, and the helpers for code outside a graph."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FLAGS_YAML, T0, FixedClock, flags_data, snapshot_part

from flagmw import (
    ConflictError,
    EvaluationContext,
    FlagClient,
    FlagRegistry,
    Layer,
    MemoryStore,
    NotFoundError,
    OverrideError,
    Provenance,
    RunConfig,
    SQLiteStore,
    StoreUnavailableError,
    UnknownFlagError,
    ValidationError,
)
from flagmw.client import read_env_values

KILL_KEY = "tools.refund_api.enabled"
CAP = "loop.max_iterations"
ACME = EvaluationContext(tenant_id="acme", user_id="u-1", route="refund-assistant", plan="pro")


class Outage:
    """A store wrapper whose every call raises StoreUnavailableError while ``down``: the
    network between the client and its store, cut and restored at will."""

    def __init__(self, inner: SQLiteStore) -> None:
        self.inner = inner
        self.name = f"outage:{inner.name}"
        self.down = False
        self.calls_while_down = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.calls_while_down += 1
                raise StoreUnavailableError(self.name, "connection refused")
            return attr(*args, **kwargs)

        return call


# -- schema drift -------------------------------------------------------------------------


def _registry_b() -> FlagRegistry:
    """The application after a deploy: prompt.style removed, loop.max_iterations retyped."""
    data = flags_data()
    del data["flags"]["prompt.style"]
    data["flags"][CAP] = {"type": "string", "default": "eight"}
    return FlagRegistry.from_dict(data)


def test_schema_drift_keeps_the_last_good_snapshot(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = make_client(tmp_path)  # registry A (DESIGN §9)
    publisher.publish({"values": {"model.primary": "gpt-4o-mini"}}, author="a", message="ok")
    app = make_client(tmp_path, registry=_registry_b())
    assert app.snapshot_rev == 1, "rev 1 fits registry B (validated on load)"
    generation = app.poll()

    caplog.set_level(logging.ERROR, logger="flagmw")
    publisher.publish(
        {"values": {"model.primary": "gpt-4o", CAP: 4}, "rules": [_style_rule()]},
        author="a",
        message="uses flags B does not know",
    )
    assert app.poll() == generation, "a rejected rev changes nothing the client serves"
    status = app.status()
    assert status.snapshot_rev == 1
    assert status.head_rev == 2
    assert status.rejected_rev == 2
    assert status.stale is True
    assert status.healthy is True
    codes = sorted(p.code for p in status.rejected_problems)
    assert codes == ["unknown_key", "wrong_type"]
    paths = sorted(p.path for p in status.rejected_problems)
    assert paths == ["rules[0].set[prompt.style]", f"values[{CAP}]"]
    assert all(p.location.endswith("rev 2") for p in status.rejected_problems)
    assert "rev 2" in (status.last_error or "")
    assert app.resolve(ACME)["model.primary"] == "gpt-4o-mini"
    assert app.resolve(ACME).snapshot_rev == 1
    assert app.value("model.primary") == "gpt-4o-mini"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "rev 2" in errors[0].getMessage()
    assert "prompt.style" in errors[0].getMessage()

    app.poll()  # the rejected rev is not re-validated at every poll
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1

    publisher.publish({"values": {"model.primary": "gpt-4o"}}, author="a", message="fits")
    assert app.poll() == generation + 1
    status = app.status()
    assert (status.snapshot_rev, status.rejected_rev, status.stale) == (3, None, False)
    assert status.rejected_problems == ()
    assert app.value("model.primary") == "gpt-4o"


def _style_rule() -> dict[str, Any]:
    return {"name": "pro-v3", "when": {"plan": "pro"}, "set": {"prompt.style": "v3"}}


def test_schema_drift_with_no_good_snapshot_serves_defaults(
    make_client: Any, tmp_path: Path
) -> None:
    make_client(tmp_path, document={"values": {CAP: 4}})
    app = make_client(tmp_path, registry=_registry_b())
    status = app.status()
    assert (status.snapshot_rev, status.rejected_rev, status.stale) == (None, 1, True)
    rc = app.resolve(ACME)
    assert rc.snapshot_rev is None
    assert rc[CAP] == "eight"
    assert rc.provenance[CAP].layer is Layer.DEFAULT


def test_same_registry_snapshot_is_not_revalidated(make_client: Any, tmp_path: Path) -> None:
    make_client(tmp_path, document=_doc())
    app = make_client(tmp_path)
    assert app.status().rejected_rev is None
    assert app.snapshot_rev == 1


def _doc() -> dict[str, Any]:
    return snapshot_part()


# -- the store goes away --------------------------------------------------------------------


@pytest.fixture
def outage(tmp_path: Path) -> Outage:
    return Outage(SQLiteStore(tmp_path / "flagmw.db", create=True))


def test_store_outage_serves_the_last_good_snapshot(
    outage: Outage,
    registry: FlagRegistry,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FlagClient(registry, outage, clock=clock)  # type: ignore[arg-type]
    client.publish(_doc(), author="a", message="m")
    expected = client.resolve(ACME)
    generation = client.poll()

    caplog.set_level(logging.INFO, logger="flagmw")
    outage.down = True
    for _ in range(3):
        assert client.poll() == generation
        assert client.resolve(ACME) == expected
        assert client.explain("model.primary", ACME).value == "gpt-4o-mini"
    assert outage.calls_while_down > 0, "the outage was actually hit"
    status = client.status()
    assert status.healthy is False
    assert status.stale is True
    assert status.snapshot_rev == 1
    assert "connection refused" in (status.last_error or "")
    assert status.last_error_at == T0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "one warning per outage, not one per poll"
    assert "serving the last good snapshot" in warnings[0].getMessage()

    with pytest.raises(StoreUnavailableError):  # operations do say so
        client.kill(KILL_KEY, reason="r", actor="a")

    outage.down = False
    other = FlagClient(registry, outage.inner, clock=clock)
    other.kill(KILL_KEY, reason="webhook down", actor="oncall")
    clock.advance(2)  # past the retry back-off
    assert client.poll() == generation + 1
    status = client.status()
    assert (status.healthy, status.stale, status.snapshot_rev) == (True, False, 1)
    assert client.is_enabled(KILL_KEY, ACME) is False
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_client_recovers_when_the_store_comes_back_unchanged(
    outage: Outage, registry: FlagRegistry, clock: FixedClock
) -> None:
    client = FlagClient(registry, outage, clock=clock)  # type: ignore[arg-type]
    client.publish(_doc(), author="a", message="m")
    outage.down = True
    client.poll()
    assert client.status().healthy is False
    outage.down = False
    clock.advance(60)
    for _ in range(3):
        client.poll()
        client.resolve(ACME)
    assert client.status().healthy is True
    assert client.status().stale is False


def test_outage_seen_through_is_enabled_is_reported(
    outage: Outage,
    registry: FlagRegistry,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FlagClient(registry, outage, clock=clock)  # type: ignore[arg-type]
    client.publish(_doc(), author="a", message="m")
    caplog.set_level(logging.WARNING, logger="flagmw")
    outage.down = True
    for _ in range(5):
        assert client.is_enabled(KILL_KEY, ACME) is True
        assert client.value("model.primary", ACME) == "gpt-4o-mini"
    assert outage.calls_while_down > 0
    assert client.status().healthy is False
    assert caplog.records


# -- the generation counter ------------------------------------------------------------------


def test_generation_moves_on_changes_and_only_then(
    make_client: Any, tmp_path: Path, clock: FixedClock
) -> None:
    client = make_client(tmp_path, document=_doc())
    other = make_client(tmp_path)
    g = client.poll()

    def unchanged() -> None:
        for _ in range(3):
            assert client.poll() == g
        client.resolve(ACME)
        client.value(CAP, ACME)
        client.is_enabled(KILL_KEY, ACME)
        client.explain(CAP, ACME)
        client.status()
        assert client.poll() == g

    unchanged()
    assert client.publish(_doc(), author="a", message="same").published is False
    unchanged()
    with pytest.raises(ValidationError):
        client.publish({"values": {CAP: 99}}, author="a", message="bad")
    unchanged()
    with pytest.raises(ConflictError):
        other.publish({"values": {CAP: 5}}, author="a", message="stale", parent_rev=0)
    unchanged()

    other.publish({**_doc(), "values": {CAP: 5}}, author="a", message="by another client")
    assert client.poll() == g + 1
    g += 1
    unchanged()

    client.publish({**_doc(), "values": {CAP: 6}}, author="a", message="by this client")
    assert client.poll() == g + 1
    g += 1
    unchanged()

    ov = other.kill(KILL_KEY, reason="r", actor="a", ttl=60)
    assert client.poll() == g + 1
    g += 1
    unchanged()

    clock.advance(30)
    unchanged()
    other.renew(ov.id, actor="a", reason="r", ttl=60)  # now expires at T0 + 90
    assert client.poll() == g + 1
    g += 1

    clock.set(T0 + 89.999)
    unchanged()
    assert client.is_enabled(KILL_KEY, ACME) is False
    clock.set(T0 + 90)  # the expiry passes: nothing in the store changed
    assert client.poll() == g + 1
    g += 1
    assert client.is_enabled(KILL_KEY, ACME) is True
    clock.advance(3600)
    unchanged()

    short = other.kill(KILL_KEY, reason="r", actor="a", ttl=600)
    assert client.poll() == g + 1
    g += 1
    other.end_override(short.id, actor="a", reason="over")
    assert client.poll() == g + 1
    g += 1
    clock.advance(600)  # the ended override's expiry is not a change
    unchanged()


def test_expiries_of_several_overrides_each_move_the_generation(
    memory_client: Any, clock: FixedClock
) -> None:
    client = memory_client(document=_doc())
    client.kill(KILL_KEY, reason="r", actor="a", ttl=10)
    client.override(CAP, 3, reason="r", actor="a", ttl=20)
    g = client.poll()
    clock.set(T0 + 10)
    assert client.poll() == g + 1
    assert client.resolve(ACME)[CAP] == 3
    clock.set(T0 + 15)
    assert client.poll() == g + 1
    clock.set(T0 + 20)
    assert client.poll() == g + 2
    assert client.resolve(ACME)[CAP] == 4  # the route's value again


# -- hot re-resolution ---------------------------------------------------------------------


def test_resolve_hot_changes_only_hot_keys(memory_client: Any, clock: FixedClock) -> None:
    client = memory_client(document=_doc())
    rc = client.resolve(ACME)
    assert client.resolve_hot(rc) is rc, "nothing changed: the same object"
    assert (rc["model.primary"], rc[CAP], rc[KILL_KEY]) == ("gpt-4o-mini", 4, True)

    doc = _doc()
    doc["tenants"]["acme"]["values"]["model.primary"] = "gpt-4o"  # pinned
    doc["routes"]["refund-assistant"]["values"][CAP] = 6  # hot
    client.publish(doc, author="a", message="rev 2")
    clock.advance(5)
    kill = client.kill(KILL_KEY, reason="CRM down", actor="oncall")  # hot
    clock.advance(1)

    hot = client.resolve_hot(rc, step=3)
    assert hot is not rc
    assert hot["model.primary"] == "gpt-4o-mini", "a pinned key never changes inside a run"
    assert hot.provenance["model.primary"] == rc.provenance["model.primary"]
    assert hot[CAP] == 6
    assert hot.provenance[CAP] == Provenance(Layer.ROUTE, 2, "refund-assistant")
    assert hot[KILL_KEY] is False
    assert hot.provenance[KILL_KEY].override_id == kill.id
    assert hot.snapshot_rev == rc.snapshot_rev == 1
    assert hot.context == rc.context
    assert hot.resolved_at == rc.resolved_at
    assert hot.override_ids == (kill.id,)
    assert hot.config_hash != rc.config_hash
    changes = {c.key: c for c in hot.changes}
    assert set(changes) == {CAP, KILL_KEY}
    assert (changes[CAP].old, changes[CAP].new, changes[CAP].step) == (4, 6, 3)
    assert changes[CAP].at == T0 + 6
    assert changes[CAP].provenance == hot.provenance[CAP]
    assert (changes[KILL_KEY].old, changes[KILL_KEY].new) == (True, False)
    # unchanged keys and the original RunConfig are untouched
    assert rc[CAP] == 4
    assert rc.changes == ()
    assert client.resolve_hot(hot, step=4) is hot
    assert RunConfig.from_json(hot.to_json()) == hot

    client.end_override(kill.id, actor="oncall", reason="fixed")
    back = client.resolve_hot(hot, step=5)
    assert back[KILL_KEY] is True
    assert [c.key for c in back.changes] == [*[c.key for c in hot.changes], KILL_KEY]
    assert back.override_ids == ()


def test_resolve_hot_without_hot_flags_returns_the_run_config(clock: FixedClock) -> None:
    registry = FlagRegistry.from_dict({"flags": {"a.b": {"type": "int", "default": 1}}})
    client = FlagClient(registry, MemoryStore(), clock=clock)
    rc = client.resolve()
    client.publish({"values": {"a.b": 2}}, author="a", message="m")
    assert client.resolve_hot(rc) is rc
    assert client.resolve()["a.b"] == 2


# -- FF_ process variables -------------------------------------------------------------------

TYPED = FlagRegistry.from_dict(
    {
        "flags": {
            "t.bool": {"type": "bool", "default": False},
            "t.int": {"type": "int", "default": 1, "min": 0, "max": 10},
            "t.float": {"type": "float", "default": 0.5, "max": 1},
            "t.enum": {"type": "enum", "choices": ["a", "b"], "default": "a"},
            "t.string": {"type": "string", "default": ""},
            "t.json": {"type": "json", "default": {}, "schema": {"type": "object"}},
        }
    }
)


def test_ff_variables_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "FF_T_BOOL": "TRUE",
        "FF_T_INT": " 7 ",
        "FF_T_FLOAT": "0.25",
        "FF_T_ENUM": "b",
        "FF_T_STRING": "hello world",
        "FF_T_JSON": '{"k": [1, 2]}',
        "FF_NOT_A_FLAG": "ignored",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = FlagClient(TYPED, MemoryStore(), env_vars=True)
    rc = client.resolve()
    assert dict(rc) == {
        "t.bool": True,
        "t.int": 7,
        "t.float": 0.25,
        "t.enum": "b",
        "t.string": "hello world",
        "t.json": {"k": [1, 2]},
    }
    assert rc.provenance["t.int"] == Provenance(Layer.ENVIRONMENT, None, "FF_T_INT")
    assert client.value("t.bool") is True
    assert FlagClient(TYPED, MemoryStore()).resolve()["t.int"] == 1, "off unless env_vars=True"


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("FF_T_INT", "seven", "int flag"),
        ("FF_T_INT", "11", "above the maximum 10"),
        ("FF_T_INT", "7.0", "int flag"),
        ("FF_T_BOOL", "yes", "bool flag"),
        ("FF_T_BOOL", "flase", "bool flag"),
        ("FF_T_FLOAT", "lots", "float flag"),
        ("FF_T_FLOAT", "nan", "finite"),
        ("FF_T_ENUM", "c", "unknown choice"),
        ("FF_T_JSON", "[1]", "JSON schema"),
        ("FF_T_JSON", "{not json", "not valid JSON"),
    ],
)
def test_bad_ff_variable_is_a_validation_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, fragment: str
) -> None:
    monkeypatch.setenv(name, text)
    with pytest.raises(ValidationError) as info:
        FlagClient(TYPED, MemoryStore(), env_vars=True)
    (problem,) = info.value.errors
    assert problem.location == f"${name}"
    assert name in str(info.value)
    assert fragment in str(problem)  # message and hint


def test_ff_variable_of_a_json_flag_must_be_json() -> None:
    registry = FlagRegistry.from_dict({"flags": {"t.json": {"type": "json", "default": []}}})
    assert read_env_values(registry, {"FF_T_JSON": '["a", "b"]'}) == {"t.json": ["a", "b"]}
    assert read_env_values(registry, {"FF_T_JSON": '"quoted"'}) == {"t.json": "quoted"}
    with pytest.raises(ValidationError) as info:
        read_env_values(registry, {"FF_T_JSON": "[gpt-4o, gpt-4o-mini"})
    assert info.value.errors[0].location == "$FF_T_JSON"


def test_every_bad_ff_variable_is_reported_at_once() -> None:
    environ = {"FF_T_INT": "x", "FF_T_BOOL": "maybe", "FF_T_ENUM": "z", "FF_T_STRING": "fine"}
    with pytest.raises(ValidationError) as info:
        read_env_values(TYPED, environ)
    assert sorted(p.location for p in info.value.errors) == [
        "$FF_T_BOOL",
        "$FF_T_ENUM",
        "$FF_T_INT",
    ]
    assert read_env_values(TYPED, {"FF_T_STRING": "fine"}) == {"t.string": "fine"}


# -- publish and rollback ----------------------------------------------------------------------


def test_publishing_identical_content_is_a_no_op(make_client: Any, flags_file: Path) -> None:
    client = make_client()
    first = client.publish(flags_file, author="a", message="from the flags file")
    assert (first.rev, first.parent_rev, first.published) == (1, None, True)
    assert first.warnings == ()
    token = client.store.change_token()
    audit = client.audit()
    again = client.publish(_doc(), author="b", message="same content as a mapping")
    assert (again.rev, again.content_hash, again.published) == (1, first.content_hash, False)
    assert again.hash == first.content_hash
    assert client.store.change_token() == token
    assert client.audit() == audit
    assert len(client.history()) == 1


def test_publish_of_a_file_whose_flags_differ_warns(make_client: Any, tmp_path: Path) -> None:
    client = make_client()
    path = tmp_path / "other-flags.yaml"
    path.write_text(FLAGS_YAML.replace("default: 8", "default: 9"), encoding="utf-8")
    result = client.publish(path, author="a", message="m")
    assert result.published is True
    assert [w.code for w in result.warnings] == ["registry_mismatch"]


def test_publish_needs_author_and_message(make_client: Any) -> None:
    client = make_client()
    with pytest.raises(OverrideError, match="author"):
        client.publish(_doc(), author=" ", message="m")
    with pytest.raises(OverrideError, match="message"):
        client.publish(_doc(), author="a", message="")
    assert client.history() == []


def test_publish_with_a_stale_parent_conflicts(make_client: Any) -> None:
    client = make_client(document=_doc())
    client.publish({"values": {CAP: 5}}, author="a", message="rev 2", parent_rev=1)
    with pytest.raises(ConflictError) as info:
        client.publish({"values": {CAP: 6}}, author="b", message="stale", parent_rev=1)
    assert (info.value.expected_parent, info.value.actual_head) == (1, 2)
    assert client.value(CAP) == 5


def test_rollback_publishes_old_content_as_a_new_rev(make_client: Any, clock: FixedClock) -> None:
    client = make_client(document=_doc())
    one = client.history()[0]
    clock.advance(60)
    client.publish({"values": {CAP: 5}}, author="a", message="rev 2")
    assert client.value(CAP, ACME) == 5
    clock.advance(60)
    result = client.rollback(1, author="oncall", message="rev 2 broke refunds")
    assert (result.rev, result.parent_rev, result.published) == (3, 2, True)
    assert result.content_hash == one.content_hash
    head = client.history()[0]
    assert (head.rev, head.action, head.rollback_of, head.author) == (3, "rollback", 1, "oncall")
    assert head.created_at == T0 + 120
    assert client.get_snapshot(3).document == client.get_snapshot(1).document
    rc = client.resolve(ACME)
    assert rc.snapshot_rev == 3
    assert rc[CAP] == 4
    assert rc.provenance[CAP].rev == 3
    assert client.rollback(3, author="a", message="again").published is False
    with pytest.raises(NotFoundError):
        client.rollback(42, author="a", message="m")
    with pytest.raises(OverrideError):
        client.rollback(1, author="a", message=" ")


def test_rollback_to_a_rev_the_registry_no_longer_fits(make_client: Any, tmp_path: Path) -> None:
    make_client(tmp_path, document={"values": {"prompt.style": "v3"}})
    app = make_client(tmp_path, registry=_registry_b())
    app.publish({"values": {"model.primary": "gpt-4o"}}, author="b", message="rev 2")
    with pytest.raises(ValidationError) as info:
        app.rollback(1, author="b", message="m")
    assert [p.code for p in info.value.errors] == ["unknown_key"]
    assert len(app.history()) == 2


def test_diff_history_and_snapshots(make_client: Any) -> None:
    client = make_client(document=_doc())
    doc = _doc()
    doc["values"][CAP] = 5
    del doc["routes"]
    client.publish(doc, author="a", message="m")
    changes = {c.path: (c.kind, c.before, c.after) for c in client.diff(1, 2)}
    assert changes == {
        f"values[{CAP}]": ("added", None, 5),
        "routes.refund-assistant": ("removed", {"values": {CAP: 4}, "rules": []}, None),
    }
    assert client.diff(2, 2) == []
    assert [i.rev for i in client.history()] == [2, 1]
    assert [i.rev for i in client.history(limit=1)] == [2]
    with pytest.raises(NotFoundError):
        client.diff(1, 7)


# -- helpers for code outside a graph -------------------------------------------------------


def test_helpers_and_their_errors(memory_client: Any) -> None:
    client = memory_client(document=_doc())
    assert client.is_enabled(KILL_KEY, ACME) is True
    assert client.value("model.primary", ACME) == "gpt-4o-mini"
    assert client.value("model.primary") == "gpt-4o"
    with pytest.raises(TypeError, match="not a bool flag"):
        client.is_enabled(CAP, ACME)
    with pytest.raises(UnknownFlagError) as info:
        client.value("model.primray", ACME)
    assert "model.primary" in info.value.suggestions
    with pytest.raises(UnknownFlagError):
        client.is_enabled("nope.nope", ACME)
    with pytest.raises(UnknownFlagError):
        client.explain("nope.nope", ACME)
    variant = client.variant("style-v3-rollout", ACME)
    assert variant in ("control", "treatment")
    assert client.variant("style-v3-rollout", ACME._replace(plan="enterprise")) is None
    with pytest.raises(NotFoundError):
        client.variant("no-such-experiment", ACME)
    doc = _doc()
    doc["experiments"]["style-v3-rollout"]["enabled"] = False
    client.publish(doc, author="a", message="pause the experiment")
    assert client.variant("style-v3-rollout", ACME) is None
    assert client.resolve(ACME).variants == {}


def test_json_values_are_copies(memory_client: Any) -> None:
    client = memory_client(document=_doc())
    fallbacks = client.value("model.fallbacks")
    fallbacks.append("mutated")
    assert client.value("model.fallbacks") == ["gpt-4o-mini"]
    rc = client.resolve()
    rc["model.fallbacks"].append("mutated")
    dict(rc)["model.fallbacks"].append("mutated")
    assert rc["model.fallbacks"] == ["gpt-4o-mini"]
    assert client.resolve()["model.fallbacks"] == ["gpt-4o-mini"]


def test_a_client_without_a_store_or_snapshot_serves_defaults(registry: FlagRegistry) -> None:
    client = FlagClient(registry)
    rc = client.resolve(ACME)
    assert rc.snapshot_rev is None
    assert rc.snapshot_hash is None
    assert dict(rc) == {f.key: f.default for f in registry}
    assert {p.layer for p in rc.provenance.values()} == {Layer.DEFAULT}
    assert client.status().healthy is True
    assert client.status().store == "memory"


def test_status_and_lifecycle(make_client: Any, tmp_path: Path, clock: FixedClock) -> None:
    client = make_client(document=_doc())
    client.kill(KILL_KEY, reason="r", actor="a")
    status = client.status()
    assert status.to_dict() == {
        "store": f"sqlite:{tmp_path / 'flagmw.db'}",
        "environment": "production",
        "snapshot_rev": 1,
        "head_rev": 1,
        "healthy": True,
        "stale": False,
        "last_error": None,
        "last_error_at": None,
        "rejected_rev": None,
        "rejected_problems": [],
        "active_overrides": 1,
        "last_refresh_at": T0,
        "canary_rev": None,
    }
    assert "rev=1" in repr(client)
    with FlagClient(client.registry, SQLiteStore(tmp_path / "x.db", create=True)) as scoped:
        assert scoped.snapshot_rev is None


def test_default_ttl_above_max_is_refused(registry: FlagRegistry) -> None:
    with pytest.raises(OverrideError):
        FlagClient(registry, default_ttl="2d")


def test_concurrent_resolution_never_mixes_revs(make_client: Any, tmp_path: Path) -> None:
    """Threads resolving while another client publishes: every RunConfig comes from one
    rev (its provenance names no other), and no call fails."""
    reader = make_client(tmp_path, document=_doc())
    writer = make_client(tmp_path)
    stop = threading.Event()
    seen: list[RunConfig] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        ctx = EvaluationContext(tenant_id="acme", user_id=f"u-{i}", route="refund-assistant")
        try:
            while not stop.is_set():
                rc = reader.resolve(ctx)
                seen.append(rc)
                assert reader.value(CAP, ctx) in range(1, 51)
                time.sleep(0.0002)  # leave the writer some of the GIL
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for n in range(2, 12):
        doc = _doc()
        doc["routes"]["refund-assistant"]["values"][CAP] = n
        writer.publish(doc, author="w", message=f"rev {n}")
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len({rc.snapshot_rev for rc in seen}) > 1, "the readers saw the publishes"
    for rc in seen:
        revs = {p.rev for p in rc.provenance.values()} - {None}
        assert revs <= {rc.snapshot_rev}
        assert rc[CAP] == (4 if rc.snapshot_rev == 1 else rc.snapshot_rev)
    reader.poll()
    assert reader.snapshot_rev == 11
