"""Overrides and kill switches (layer 7): TTL to the second, renew, end, protected flags,
the rules for reason / actor / scope, and the audit log."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import T0, FixedClock

from flagmw import (
    EvaluationContext,
    FlagClient,
    Layer,
    NotFoundError,
    OverrideError,
    UnknownFlagError,
    ValidationError,
)
from flagmw.core.overrides import Override, OverrideKind, ScopeKind, format_duration, parse_duration

KILL_KEY = "tools.refund_api.enabled"
PII = "compliance.pii_redaction"
ACME = EvaluationContext(tenant_id="acme", user_id="u-1", route="refund-assistant")
GLOBEX = EvaluationContext(tenant_id="globex", user_id="u-2", route="refund-assistant")
FOUR_HOURS = 4 * 3600


@pytest.fixture
def client(make_client: Any, snapshot_document: dict[str, Any]) -> FlagClient:
    c: FlagClient = make_client(document=snapshot_document)
    return c


def _explained_status(client: FlagClient, key: str, ctx: EvaluationContext, ov_id: str) -> str:
    explanation = client.explain(key, ctx)
    (status,) = [c.status for c in explanation.candidates if c.provenance.override_id == ov_id]
    return status


# -- TTL ---------------------------------------------------------------------------------


def test_kill_ttl_is_exact_to_the_boundary_second(client: FlagClient, clock: FixedClock) -> None:
    ov = client.kill(KILL_KEY, reason="CRM webhook returns 500", actor="oncall", tenant="acme")
    assert ov.created_at == T0
    assert ov.expires_at == T0 + FOUR_HOURS, "the default TTL is 4 h"

    clock.set(T0 + FOUR_HOURS - 0.001)
    rc = client.resolve(ACME)
    assert rc[KILL_KEY] is False
    assert rc.provenance[KILL_KEY].layer is Layer.OVERRIDE
    assert rc.provenance[KILL_KEY].override_id == ov.id
    assert rc.provenance[KILL_KEY].reason == "CRM webhook returns 500"
    assert rc.override_ids == (ov.id,)
    assert client.value(KILL_KEY, ACME) is False
    assert client.is_enabled(KILL_KEY, ACME) is False
    assert client.explain(KILL_KEY, ACME).provenance.override_id == ov.id
    assert _explained_status(client, KILL_KEY, ACME, ov.id) == "won"

    clock.set(T0 + FOUR_HOURS)  # expired at exactly created_at + TTL
    rc = client.resolve(ACME)
    assert rc[KILL_KEY] is True
    assert rc.provenance[KILL_KEY].layer is Layer.DEFAULT
    assert rc.override_ids == ()
    assert client.value(KILL_KEY, ACME) is True
    assert client.is_enabled(KILL_KEY, ACME) is True
    explanation = client.explain(KILL_KEY, ACME)
    assert explanation.value is True
    (entry,) = [c for c in explanation.candidates if c.provenance.override_id == ov.id]
    assert (entry.status, entry.note) == ("expired", "expired")

    assert client.overrides() == []
    assert [o.id for o in client.overrides(include_expired=True)] == [ov.id]


def test_resolve_at_an_explicit_time_respects_the_boundary(client: FlagClient) -> None:
    ov = client.kill(KILL_KEY, reason="r", actor="a", ttl="1h")
    assert client.resolve(ACME, at=T0 + 3599.999)[KILL_KEY] is False
    assert client.resolve(ACME, at=T0 + 3600)[KILL_KEY] is True
    assert client.explain(KILL_KEY, ACME, at=T0 + 3600).provenance.layer is Layer.DEFAULT
    assert _explained_status(client, KILL_KEY, ACME, ov.id) == "won"  # now = T0


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [("4h", 14400), ("90m", 5400), ("1h30m", 5400), ("45s", 45), (600, 600), ("1d", 86400)],
)
def test_ttl_forms(client: FlagClient, ttl: str | int, seconds: float) -> None:
    ov = client.kill(KILL_KEY, reason="r", actor="a", ttl=ttl)
    assert ov.expires_at - ov.created_at == seconds


@pytest.mark.parametrize("ttl", ["25h", "2d", 86401, "1w"])
def test_ttl_above_the_maximum_is_refused(client: FlagClient, ttl: str | int) -> None:
    with pytest.raises(OverrideError, match="above the maximum 1d"):
        client.kill(KILL_KEY, reason="r", actor="a", ttl=ttl)
    assert client.overrides(include_ended=True, include_expired=True) == []


@pytest.mark.parametrize("ttl", ["soon", "", "0", 0, -5, "4 hours", "h4"])
def test_invalid_ttl_is_refused(client: FlagClient, ttl: str | int) -> None:
    with pytest.raises(OverrideError):
        client.kill(KILL_KEY, reason="r", actor="a", ttl=ttl)


def test_the_maximum_and_default_ttl_are_configurable(make_client: Any) -> None:
    client = make_client(default_ttl="30m", max_ttl="2d")
    ov = client.kill(KILL_KEY, reason="r", actor="a")
    assert ov.expires_at - ov.created_at == 1800
    assert client.kill(KILL_KEY, reason="r", actor="a", ttl="2d").expires_at == T0 + 2 * 86400
    with pytest.raises(OverrideError):
        make_client(default_ttl="5h", max_ttl="4h")


def test_renew_moves_the_expiry(client: FlagClient, clock: FixedClock) -> None:
    ov = client.kill(KILL_KEY, reason="incident", actor="oncall")
    clock.set(T0 + 3 * 3600)
    renewed = client.renew(ov.id, actor="oncall-2", reason="still broken", ttl="2h")
    assert renewed.id == ov.id
    assert renewed.expires_at == T0 + 5 * 3600
    clock.set(T0 + FOUR_HOURS + 1)  # past the original expiry
    assert client.resolve(ACME)[KILL_KEY] is False
    clock.set(T0 + 5 * 3600 - 0.001)
    assert client.is_enabled(KILL_KEY, ACME) is False
    clock.set(T0 + 5 * 3600)
    assert client.is_enabled(KILL_KEY, ACME) is True

    (entry,) = client.audit(action="kill.renew")
    assert (entry.actor, entry.reason) == ("oncall-2", "still broken")
    assert entry.before == {"expires_at": T0 + FOUR_HOURS}
    assert entry.after == {"expires_at": T0 + 5 * 3600}
    assert ov.id in entry.target


def test_renew_default_ttl_and_refusals(client: FlagClient, clock: FixedClock) -> None:
    ov = client.kill(KILL_KEY, reason="r", actor="a", ttl="1h")
    clock.advance(600)
    assert client.renew(ov.id, actor="a", reason="r").expires_at == T0 + 600 + FOUR_HOURS
    with pytest.raises(OverrideError):
        client.renew(ov.id, actor="a", reason="r", ttl="48h")
    with pytest.raises(OverrideError):
        client.renew(ov.id, actor="a", reason=" ")
    with pytest.raises(NotFoundError):
        client.renew("ov-999", actor="a", reason="r")
    clock.advance(FOUR_HOURS)
    with pytest.raises(OverrideError, match="no longer active"):
        client.renew(ov.id, actor="a", reason="too late")


def test_end_early_with_a_reason(client: FlagClient, clock: FixedClock) -> None:
    ov = client.kill(KILL_KEY, reason="incident", actor="oncall", tenant="acme")
    clock.advance(3600)
    ended = client.end_override(ov.id, actor="oncall", reason="CRM fixed")
    assert (ended.ended_at, ended.ended_by, ended.end_reason) == (
        T0 + 3600,
        "oncall",
        "CRM fixed",
    )
    assert client.resolve(ACME)[KILL_KEY] is True
    assert client.is_enabled(KILL_KEY, ACME) is True
    explanation = client.explain(KILL_KEY, ACME)
    (entry,) = [c for c in explanation.candidates if c.provenance.override_id == ov.id]
    assert entry.status == "ended"
    assert "oncall" in entry.note
    assert "CRM fixed" in entry.note
    assert client.overrides() == []
    assert [o.id for o in client.overrides(include_ended=True)] == [ov.id]

    with pytest.raises(OverrideError, match="already ended"):
        client.unkill(ov.id, actor="oncall", reason="again")
    with pytest.raises(OverrideError):
        client.end_override(ov.id, actor="oncall", reason="")
    with pytest.raises(NotFoundError):
        client.end_override("ov-404", actor="oncall", reason="r")

    (entry_end,) = client.audit(action="kill.end")
    assert (entry_end.actor, entry_end.reason) == ("oncall", "CRM fixed")
    assert (entry_end.before, entry_end.after) == (False, None)


# -- what a kill needs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "actor"),
    [("", "oncall"), ("   ", "oncall"), ("\t\n", "oncall"), ("why", ""), ("why", "  ")],
)
def test_kill_needs_a_reason_and_an_actor(client: FlagClient, reason: str, actor: str) -> None:
    before = client.audit()
    with pytest.raises(OverrideError, match="required"):
        client.kill(KILL_KEY, reason=reason, actor=actor)
    with pytest.raises(OverrideError, match="required"):
        client.override("loop.max_iterations", 3, reason=reason, actor=actor)
    assert client.overrides(include_ended=True, include_expired=True) == []
    assert client.audit() == before


def test_reason_and_actor_are_stored_trimmed(client: FlagClient) -> None:
    ov = client.kill(KILL_KEY, reason="  webhook 500 ", actor=" oncall ")
    assert (ov.reason, ov.actor) == ("webhook 500", "oncall")


def test_kill_of_a_non_bool_flag_is_refused(client: FlagClient) -> None:
    with pytest.raises(OverrideError, match="bool"):
        client.kill("loop.max_iterations", reason="r", actor="a")
    with pytest.raises(OverrideError):
        client.kill("model.primary", reason="r", actor="a")


def test_kill_of_an_unknown_flag_names_the_close_key(client: FlagClient) -> None:
    with pytest.raises(UnknownFlagError) as info:
        client.kill("tools.refund_api.enabeld", reason="r", actor="a")
    assert info.value.suggestions == (KILL_KEY,)


def test_tenant_and_route_together_are_refused(client: FlagClient) -> None:
    with pytest.raises(OverrideError, match="not both"):
        client.kill(KILL_KEY, reason="r", actor="a", tenant="acme", route="refund-assistant")


def test_override_values_are_typed(client: FlagClient) -> None:
    with pytest.raises(ValidationError):
        client.override("loop.max_iterations", "5", reason="r", actor="a")
    with pytest.raises(ValidationError):
        client.override("loop.max_iterations", 99, reason="r", actor="a")
    with pytest.raises(ValidationError):
        client.override("model.primary", "gpt-5", reason="r", actor="a")
    ov = client.override("model.primary", "gpt-4o-mini", reason="cost", actor="a")
    assert ov.kind is OverrideKind.OVERRIDE
    assert client.value("model.primary", GLOBEX) == "gpt-4o-mini"


def test_kills_do_not_create_snapshot_revs(client: FlagClient) -> None:
    history = client.history()
    client.kill(KILL_KEY, reason="r", actor="a")
    assert client.history() == history
    assert client.resolve(ACME).snapshot_rev == history[0].rev


def test_environment_scoped_kill(make_client: Any, snapshot_document: dict[str, Any]) -> None:
    production = make_client(document=snapshot_document)
    staging = make_client(environment="staging")
    ov = staging.kill(KILL_KEY, reason="staging only", actor="a", environment="staging")
    assert staging.is_enabled(KILL_KEY, ACME) is False
    assert production.is_enabled(KILL_KEY, ACME) is True
    assert production.resolve(ACME)[KILL_KEY] is True
    assert ov.environment == "staging"
    assert ov.scope_label == "global"


def test_a_context_of_another_environment_gets_that_environments_overrides(
    make_client: Any, snapshot_document: dict[str, Any]
) -> None:
    production = make_client(document=snapshot_document)
    production.kill(KILL_KEY, reason="staging only", actor="a", environment="staging")
    production.kill(PII, reason="production only", actor="a", environment="production")
    staging_ctx = GLOBEX._replace(environment="staging")
    # the staging slice applies to that context (model.primary comes from it) ...
    assert production.resolve(staging_ctx)["model.primary"] == "gpt-4o-mini"
    # ... and so must the staging overrides, and not the production ones
    assert production.resolve(staging_ctx)[KILL_KEY] is False
    assert production.is_enabled(KILL_KEY, staging_ctx) is False
    assert production.resolve(staging_ctx)[PII] is True
    assert production.is_enabled(PII, staging_ctx) is True


# -- protected flags ---------------------------------------------------------------------


def test_global_kill_spares_a_tenant_that_requires_a_protected_flag(client: FlagClient) -> None:
    assert client.exempt_tenants(PII) == ["acme"]
    ov = client.kill(PII, reason="redaction service down", actor="oncall")
    assert client.resolve(ACME)[PII] is True
    assert client.resolve(ACME).provenance[PII].layer is Layer.DEFAULT
    assert client.is_enabled(PII, ACME) is True
    assert _explained_status(client, PII, ACME, ov.id) == "exempt"
    assert client.resolve(GLOBEX)[PII] is False
    assert client.is_enabled(PII, GLOBEX) is False
    assert client.is_enabled(PII, EvaluationContext()) is False
    (entry,) = client.audit(action="kill")
    assert entry.action == "kill.set"


def test_forced_global_kill_reaches_every_tenant_and_is_audited(client: FlagClient) -> None:
    ov = client.kill(PII, reason="data leak in redactor", actor="ciso", force=True)
    assert ov.force is True
    assert client.resolve(ACME)[PII] is False
    assert client.resolve(ACME).provenance[PII].override_id == ov.id
    assert client.is_enabled(PII, ACME) is False
    assert client.is_enabled(PII, GLOBEX) is False
    (entry,) = client.audit(action="kill.forced")
    assert (entry.actor, entry.reason, entry.after) == ("ciso", "data leak in redactor", False)
    assert entry.details["force"] is True


def test_tenant_kill_of_a_required_protected_flag_needs_force(client: FlagClient) -> None:
    with pytest.raises(OverrideError, match="force"):
        client.kill(PII, reason="r", actor="a", tenant="acme")
    with pytest.raises(OverrideError, match="force"):
        client.override(PII, False, reason="r", actor="a", tenant="acme")
    assert client.overrides() == []
    client.kill(PII, reason="r", actor="a", tenant="globex")  # globex does not require it
    assert client.is_enabled(PII, GLOBEX) is False
    forced = client.kill(PII, reason="r", actor="a", tenant="acme", force=True)
    assert client.is_enabled(PII, ACME) is False
    assert client.resolve(ACME).provenance[PII].override_id == forced.id


def test_route_kill_and_false_override_also_spare_the_requiring_tenant(
    client: FlagClient, clock: FixedClock
) -> None:
    route_kill = client.kill(PII, reason="r", actor="a", route="refund-assistant")
    assert client.is_enabled(PII, ACME) is True
    assert client.is_enabled(PII, GLOBEX) is False
    assert _explained_status(client, PII, ACME, route_kill.id) == "exempt"
    client.end_override(route_kill.id, actor="a", reason="done")
    clock.advance(1)
    client.override(PII, False, reason="r", actor="a")
    assert client.is_enabled(PII, ACME) is True
    assert client.is_enabled(PII, GLOBEX) is False


def test_exemption_follows_the_served_snapshot(
    client: FlagClient, snapshot_document: dict[str, Any]
) -> None:
    client.kill(PII, reason="r", actor="a")
    assert client.is_enabled(PII, ACME) is True
    snapshot_document["tenants"]["acme"]["requires"] = []
    client.publish(snapshot_document, author="t", message="acme no longer requires redaction")
    assert client.is_enabled(PII, ACME) is False


# -- the audit log -----------------------------------------------------------------------


def test_audit_records_every_operation_with_actor_reason_before_after(
    client: FlagClient, clock: FixedClock, snapshot_document: dict[str, Any]
) -> None:
    clock.advance(10)
    snapshot_document["values"]["loop.max_iterations"] = 5
    client.publish(snapshot_document, author="alice", message="lower the cap")
    clock.advance(10)
    ov = client.override("loop.max_iterations", 3, reason="runaway loops", actor="bob")
    clock.advance(10)
    client.renew(ov.id, actor="carol", reason="still looping", ttl="1h")
    clock.advance(10)
    client.end_override(ov.id, actor="dave", reason="fixed")
    clock.advance(10)
    client.rollback(1, author="erin", message="back to rev 1")

    entries = client.audit()
    assert [e.action for e in entries] == [
        "rollback",
        "override.end",
        "override.renew",
        "override.set",
        "publish",
        "publish",
    ]
    assert [e.seq for e in entries] == [6, 5, 4, 3, 2, 1]
    rollback, end, renew, set_, publish, first = entries
    assert (rollback.actor, rollback.reason, rollback.before, rollback.after) == (
        "erin",
        "back to rev 1",
        2,
        3,
    )
    assert rollback.details["rollback_of"] == 1
    assert rollback.target == "rev 3"
    assert (end.actor, end.reason, end.before, end.after) == ("dave", "fixed", 3, None)
    assert (renew.actor, renew.reason) == ("carol", "still looping")
    assert renew.before == {"expires_at": T0 + 20 + FOUR_HOURS}
    assert renew.after == {"expires_at": T0 + 30 + 3600}
    assert (set_.actor, set_.reason, set_.before, set_.after) == ("bob", "runaway loops", None, 3)
    assert set_.details["expires_at"] == T0 + 20 + FOUR_HOURS
    assert "loop.max_iterations" in set_.target
    assert ov.id in set_.target
    assert (publish.actor, publish.reason, publish.before, publish.after) == (
        "alice",
        "lower the cap",
        1,
        2,
    )
    assert publish.details["content_hash"] == client.history()[1].content_hash
    assert (first.before, first.after) == (None, 1)
    assert [e.at for e in entries] == [T0 + 50, T0 + 40, T0 + 30, T0 + 20, T0 + 10, T0]
    assert client.audit(limit=2) == entries[:2]
    assert [e.action for e in client.audit(action="override")] == [
        "override.end",
        "override.renew",
        "override.set",
    ]


# -- the override value object and durations ----------------------------------------------


def test_override_round_trips_through_its_dict() -> None:
    ov = Override(
        id="ov-3",
        key=KILL_KEY,
        value=False,
        kind=OverrideKind.KILL,
        scope=ScopeKind.TENANT,
        target="acme",
        reason="r",
        actor="a",
        created_at=T0,
        expires_at=T0 + 60,
        force=True,
        environment="production",
    )
    assert Override.from_dict(ov.to_dict()) == ov
    assert ov.scope_label == "tenant:acme"
    assert ov.active_at(T0)
    assert ov.active_at(T0 + 59.999)
    assert not ov.active_at(T0 + 60)
    assert not ov.active_at(T0 - 0.001)
    ended = ov.with_changes(ended_at=T0 + 30)
    assert ended.active_at(T0 + 29.999)
    assert not ended.active_at(T0 + 30)
    assert ov.applies_to("production")
    assert not ov.applies_to("staging")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4h", 14400),
        ("90m", 5400),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("45s", 45),
        ("1.5h", 5400),
        ("4H", 14400),
        (" 1h 30m ", 5400),
        ("120", 120),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "4x", "4h-", "-4h", "0", "0s", True, -1, "four"])
def test_parse_duration_refuses(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(14400, "4h"), (5400, "1h30m"), (59, "59s"), (90061, "1d1h1m1s"), (0, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
