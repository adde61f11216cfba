"""The resolver as a pure function: conditions, rollouts, experiments, overrides, explain.

These tests call :func:`flagmw.resolver.resolve`, :func:`~flagmw.resolver.resolve_key` and
:func:`~flagmw.resolver.explain` directly on a :class:`~flagmw.resolver.CompiledSnapshot`,
with no store and no clock, and check that the three agree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from conftest import T0, snapshot_part

from flagmw import (
    EvaluationContext,
    FlagRegistry,
    Layer,
    Provenance,
    RunConfig,
    UnknownFlagError,
)
from flagmw.core.bucketing import bucket
from flagmw.core.compiled import CompiledSnapshot, View
from flagmw.core.explain import explain
from flagmw.core.override_index import OverrideIndex
from flagmw.core.overrides import Override, OverrideKind, ScopeKind
from flagmw.core.resolve import resolve, resolve_key
from flagmw.core.snapshot import validate_document

KEY = "prompt.style"
CTX = EvaluationContext


def view_of(
    registry: FlagRegistry,
    document: dict[str, Any],
    *,
    environment: str = "production",
    rev: int = 1,
    env_values: dict[str, Any] | None = None,
) -> View:
    snapshot = validate_document(document, registry)
    return CompiledSnapshot(registry, snapshot, rev, env_values).view(environment)


def consistent(
    view: View,
    ctx: EvaluationContext,
    overrides: Sequence[Override] = (),
    at: float = T0,
) -> RunConfig:
    """Resolve ``ctx``, and check that resolve_key and explain agree on every key."""
    index = OverrideIndex(overrides, view.compiled.registry, view.environment)
    rc = resolve(view, index, ctx, at)
    for key in rc:
        cand = resolve_key(view, index, key, ctx, at)
        assert (cand.value, cand.provenance) == (rc[key], rc.provenance[key]), key
        explanation = explain(view, index, key, ctx, at, overrides)
        assert (explanation.value, explanation.provenance) == (rc[key], rc.provenance[key]), key
        assert [c.status for c in explanation.candidates].count("won") == 1, key
    return rc


def matches(registry: FlagRegistry, when: dict[str, Any], ctx: EvaluationContext) -> bool:
    doc = {
        "segments": {"beta": {"user_id": {"in": ["u-1", "u-2"]}}, "eu": {"region": "eu"}},
        "rules": [{"name": "r", "when": when, "set": {KEY: "v3"}}],
    }
    rc = consistent(view_of(registry, doc), ctx)
    won = rc[KEY] == "v3"
    assert won is (rc.provenance[KEY].rule == "r")
    return won


def attrs(**kwargs: Any) -> EvaluationContext:
    return CTX(attributes=kwargs)


CONDITIONS = [
    ({"plan": "pro"}, CTX(plan="pro"), True),
    ({"plan": "pro"}, CTX(plan="free"), False),
    ({"plan": "pro"}, CTX(), False),
    ({"plan": {"equals": "pro"}}, CTX(plan="pro"), True),
    ({"plan": {"not_equals": "pro"}}, CTX(plan="free"), True),
    ({"plan": {"not_equals": "pro"}}, CTX(plan="pro"), False),
    ({"plan": {"not_equals": "pro"}}, CTX(), False),
    ({"plan": {"in": ["pro", "enterprise"]}}, CTX(plan="enterprise"), True),
    ({"plan": {"in": ["pro", "enterprise"]}}, CTX(plan="free"), False),
    ({"plan": {"in": ["pro"]}}, CTX(), False),
    ({"plan": {"not_in": ["free"]}}, CTX(plan="pro"), True),
    ({"plan": {"not_in": ["free"]}}, CTX(plan="free"), False),
    ({"plan": {"not_in": ["free"]}}, CTX(), False),  # a missing attribute never matches
    ({"seats": {"gte": 10}}, attrs(seats=10), True),
    ({"seats": {"gte": 10}}, attrs(seats=10.5), True),
    ({"seats": {"gte": 10}}, attrs(seats=9), False),
    ({"seats": {"gte": 10}}, attrs(seats="10"), False),
    ({"seats": {"gte": 1}}, attrs(seats=True), False),  # a bool is not a number
    ({"seats": {"gte": 10}}, CTX(), False),
    ({"seats": {"gt": 10, "lt": 20}}, attrs(seats=15), True),
    ({"seats": {"gt": 10, "lt": 20}}, attrs(seats=10), False),
    ({"seats": {"gt": 10, "lt": 20}}, attrs(seats=20), False),
    ({"seats": {"lte": 0}}, attrs(seats=-1), True),
    ({"seats": {"lte": 0}}, attrs(seats=0.5), False),
    ({"seats": 1}, attrs(seats=1), True),
    ({"seats": 1}, attrs(seats=1.0), True),
    ({"seats": 1}, attrs(seats=True), False),  # 1 does not equal True
    ({"beta": True}, attrs(beta=True), True),
    ({"beta": True}, attrs(beta=1), False),
    ({"beta": {"not_equals": True}}, attrs(beta=False), True),
    ({"region": {"exists": True}}, attrs(region="eu"), True),
    ({"region": {"exists": True}}, CTX(), False),
    ({"region": {"exists": False}}, CTX(), True),
    ({"region": {"exists": False}}, attrs(region="eu"), False),
    ({"tenant_id": "acme", "plan": "pro"}, CTX(tenant_id="acme", plan="pro"), True),
    ({"tenant_id": "acme", "plan": "pro"}, CTX(tenant_id="acme", plan="free"), False),
    (
        {"any": [{"plan": "pro"}, {"seats": {"gte": 50}}]},
        CTX(plan="free", attributes={"seats": 60}),
        True,
    ),
    (
        {"any": [{"plan": "pro"}, {"seats": {"gte": 50}}]},
        CTX(plan="free", attributes={"seats": 5}),
        False,
    ),
    ({"not": {"plan": "free"}}, CTX(plan="pro"), True),
    ({"not": {"plan": "free"}}, CTX(plan="free"), False),
    ({"not": {"plan": "free"}}, CTX(), True),  # the negation of a missing-attribute test
    ({"segment": "beta"}, CTX(user_id="u-1"), True),
    ({"segment": "beta"}, CTX(user_id="u-3"), False),
    ({"segment": ["beta", "eu"]}, CTX(user_id="u-9", attributes={"region": "eu"}), True),
    ({"segment": ["beta", "eu"]}, CTX(user_id="u-9"), False),
    ({"route": "triage"}, CTX(route="triage"), True),
    ({"thread_id": {"in": ["t-1"]}}, CTX(thread_id="t-1"), True),
    ({"run_id": {"exists": True}}, CTX(run_id="r-1"), True),
    ({"plan": "pro"}, attrs(plan="pro"), False),  # well-known names read the field only
    ({"environment": "production"}, CTX(), True),  # decided when the view is compiled
    ({"environment": "staging"}, CTX(), False),
    ({"environment": {"in": ["staging", "production"]}}, CTX(), True),
]


@pytest.mark.parametrize(("when", "ctx", "expected"), CONDITIONS)
def test_condition_operators(
    registry: FlagRegistry, when: dict[str, Any], ctx: EvaluationContext, expected: bool
) -> None:
    assert matches(registry, when, ctx) is expected


@pytest.mark.parametrize(
    ("when", "ctx"),
    [
        pytest.param(
            {"tags": {"in": ["a", "b"]}},
            attrs(tags=["a"]),
        ),
        pytest.param(
            {"tags": {"not_in": ["a", "b"]}},
            attrs(tags={"k": "v"}),
        ),
        pytest.param(
            {"seats": {"in": [1, 2]}},
            attrs(seats=True),
        ),
        ({"seats": {"in": [1, 2]}}, attrs(seats=[1])),
    ],
)
def test_non_scalar_and_bool_attributes_never_match_in(
    registry: FlagRegistry, when: dict[str, Any], ctx: EvaluationContext
) -> None:
    assert matches(registry, when, ctx) is False


def test_environment_conditions_depend_on_the_view(registry: FlagRegistry) -> None:
    doc = {"rules": [{"name": "st", "when": {"environment": "staging"}, "set": {KEY: "v3"}}]}
    assert consistent(view_of(registry, doc, environment="staging"), CTX())[KEY] == "v3"
    assert consistent(view_of(registry, doc), CTX())[KEY] == "v2"


def test_rollout_and_condition_must_both_hold(registry: FlagRegistry) -> None:
    doc = {
        "rules": [
            {
                "name": "pro-half",
                "when": {"plan": "pro"},
                "rollout": {"percent": 50},
                "set": {KEY: "v3"},
            }
        ]
    }
    view = view_of(registry, doc)
    for i in range(200):
        uid = f"u-{i}"
        inside = bucket("pro-half", uid) < 5000
        assert (consistent(view, CTX(user_id=uid, plan="pro"))[KEY] == "v3") is inside
        assert consistent(view, CTX(user_id=uid, plan="free"))[KEY] == "v2"


@pytest.mark.parametrize(
    ("unit", "attribute"),
    [("user", "user_id"), ("tenant", "tenant_id"), ("thread", "thread_id"), ("run", "run_id")],
)
def test_bucketing_units(registry: FlagRegistry, unit: str, attribute: str) -> None:
    doc = {
        "experiments": {
            "split": {
                "flag": KEY,
                "unit": unit,
                "variants": {"a": "v2", "b": "v3"},
                "weights": {"a": 50, "b": 50},
            }
        }
    }
    view = view_of(registry, doc)
    for i in range(100):
        value = f"id-{i}"
        rc = consistent(view, CTX(**{attribute: value}))
        expected = "a" if bucket("split", value) < 5000 else "b"
        assert rc.variant("split") == expected
        assert rc.provenance[KEY] == Provenance(Layer.EXPERIMENT, 1, None, None, "split", expected)
    other = "user_id" if attribute != "user_id" else "tenant_id"
    rc = consistent(view, CTX(**{other: "x"}))
    assert rc.variant("split") is None, "no unit in the context: the experiment does not apply"
    assert rc.provenance[KEY].layer is Layer.DEFAULT


def test_experiment_condition_disabled_and_order(registry: FlagRegistry) -> None:
    doc = {
        "experiments": {
            "pro-only": {
                "flag": KEY,
                "when": {"plan": "pro"},
                "variants": {"on": "v3"},
                "weights": {"on": 100},
            },
            "everyone": {
                "flag": KEY,
                "variants": {"off": "v2"},
                "weights": {"off": 100},
            },
            "paused": {
                "flag": "model.primary",
                "enabled": False,
                "variants": {"mini": "gpt-4o-mini"},
                "weights": {"mini": 100},
            },
        }
    }
    view = view_of(registry, doc)
    pro = consistent(view, CTX(user_id="u", plan="pro"))
    assert (pro[KEY], pro.variants) == ("v3", {"pro-only": "on"})
    free = consistent(view, CTX(user_id="u", plan="free"))
    assert (free[KEY], free.variants) == ("v2", {"everyone": "off"})
    assert free.provenance[KEY].experiment == "everyone"
    assert free["model.primary"] == "gpt-4o", "a disabled experiment does nothing"

    notes = {
        c.provenance.experiment: (c.status, c.note)
        for c in explain(view, None, KEY, CTX(user_id="u", plan="pro"), T0).candidates
        if c.provenance.layer is Layer.EXPERIMENT
    }
    assert notes["pro-only"][0] == "won"
    assert notes["pro-only"][1] == f"bucket {bucket('pro-only', 'u')} of 10000"
    assert notes["everyone"] == (
        "not matched",
        "an earlier experiment on the same flag took the context",
    )
    notes = {
        c.provenance.experiment: c.note
        for c in explain(view, None, KEY, CTX(plan="pro"), T0).candidates
        if c.provenance.layer is Layer.EXPERIMENT
    }
    assert notes == {
        "pro-only": "no user_id in the context",
        "everyone": "no user_id in the context",
    }
    notes = {
        c.provenance.experiment: c.note
        for c in explain(view, None, KEY, CTX(user_id="u", plan="free"), T0).candidates
        if c.provenance.layer is Layer.EXPERIMENT
    }
    assert notes["pro-only"] == "its condition does not match"


def test_explain_says_why_a_rule_did_not_match(registry: FlagRegistry) -> None:
    doc = {
        "rules": [
            {"name": "cond", "when": {"plan": "pro"}, "set": {KEY: "v3"}},
            {"name": "tiny", "rollout": {"percent": 0.01, "salt": "s"}, "set": {KEY: "v3"}},
        ]
    }
    view = view_of(registry, doc)
    user = next(f"u-{i}" for i in range(100) if bucket("s", f"u-{i}") > 0)
    notes = {
        c.provenance.rule: (c.status, c.note)
        for c in explain(view, None, KEY, CTX(user_id=user), T0).candidates
    }
    assert notes["cond"] == ("not matched", "condition does not match")
    assert notes["tiny"] == (
        "not matched",
        f"bucket {bucket('s', user)} is outside the 0.01 % rollout",
    )
    assert notes[None] == ("won", "registry default")
    notes = {c.provenance.rule: c.note for c in explain(view, None, KEY, CTX(), T0).candidates}
    assert notes["tiny"] == "rollout needs user_id, which the context lacks"


def test_overlays_of_other_tenants_and_routes_do_not_apply(registry: FlagRegistry) -> None:
    view = view_of(registry, snapshot_part())
    acme = consistent(view, CTX(tenant_id="acme", route="refund-assistant"))
    other = consistent(view, CTX(tenant_id="initech", route="triage"))
    assert (acme["model.primary"], acme["loop.max_iterations"]) == ("gpt-4o-mini", 4)
    assert (other["model.primary"], other["loop.max_iterations"]) == ("gpt-4o", 8)
    assert view.tenant("nobody") is None
    assert view.route(None) is None


def test_resolution_is_pure(registry: FlagRegistry) -> None:
    view = view_of(registry, snapshot_part())
    ctx = CTX(tenant_id="acme", user_id="u-7", plan="pro", attributes={"seats": 3})
    first = consistent(view, ctx, at=T0 + 5)
    for i in range(50):
        consistent(view, CTX(tenant_id=f"t-{i}", user_id=f"u-{i}", route="refund-assistant"))
    again = resolve(view, None, ctx, T0 + 5)
    assert again == first
    assert again.to_json() == first.to_json()
    assert again.resolved_at == T0 + 5
    assert again.context == ctx
    fresh = CompiledSnapshot(registry, validate_document(snapshot_part(), registry), 1)
    assert resolve(fresh.view("production"), None, ctx, T0 + 5).to_json() == first.to_json()


def test_unknown_key(registry: FlagRegistry) -> None:
    view = view_of(registry, {})
    with pytest.raises(UnknownFlagError) as info:
        resolve_key(view, None, "model.primay", CTX(), T0)
    assert "model.primary" in info.value.suggestions


def _ov(i: int, **changes: Any) -> Override:
    base = Override(
        id=f"ov-{i}",
        key="tools.refund_api.enabled",
        value=False,
        kind=OverrideKind.KILL,
        scope=ScopeKind.GLOBAL,
        target=None,
        reason=f"reason {i}",
        actor="a",
        created_at=T0 + i,
        expires_at=T0 + 100 + i,
    )
    return base.with_changes(**changes)


def test_override_index(registry: FlagRegistry) -> None:
    overrides = [
        _ov(1),
        _ov(2, key="not.in.registry"),
        _ov(3, environment="staging"),
        _ov(4, ended_at=T0 + 10),
        _ov(5, scope=ScopeKind.TENANT, target="acme", expires_at=T0 + 50),
    ]
    index = OverrideIndex(overrides, registry, "production")
    assert [o.id for o in index.ignored] == ["ov-2"]
    assert set(index.slots) == {"tools.refund_api.enabled"}
    assert index.next_expiry_after(T0) == T0 + 50
    assert index.next_expiry_after(T0 + 50) == T0 + 101
    assert index.next_expiry_after(T0 + 101) is None
    view = view_of(registry, {})
    acme = consistent(view, CTX(tenant_id="acme"), overrides, at=T0 + 20)
    assert acme.provenance["tools.refund_api.enabled"].override_id == "ov-5"
    assert acme.provenance["tools.refund_api.enabled"].scope == "tenant:acme"
    assert acme.override_ids == ("ov-5",)
    later = consistent(view, CTX(tenant_id="acme"), overrides, at=T0 + 50)
    assert later.provenance["tools.refund_api.enabled"].override_id == "ov-1"
    assert later.provenance["tools.refund_api.enabled"].reason == "reason 1"
    gone = consistent(view, CTX(tenant_id="acme"), overrides, at=T0 + 101)
    assert gone["tools.refund_api.enabled"] is True
    assert not OverrideIndex([], registry, "production")
    statuses = {
        c.provenance.override_id: c.status
        for c in explain(
            view,
            OverrideIndex(overrides, registry, "production"),
            "tools.refund_api.enabled",
            CTX(tenant_id="acme"),
            T0 + 20,
            overrides,
        ).candidates
        if c.provenance.override_id
    }
    # ov-2 has another key, ov-3 another environment: neither is listed
    assert statuses == {"ov-5": "won", "ov-4": "ended", "ov-1": "superseded"}


def test_process_variables_sit_in_the_environment_layer(registry: FlagRegistry) -> None:
    doc = {"environments": {"production": {"loop.max_iterations": 3}}}
    view = view_of(registry, doc, env_values={"loop.max_iterations": 7})
    rc = consistent(view, CTX())
    assert rc["loop.max_iterations"] == 7
    assert rc.provenance["loop.max_iterations"] == Provenance(
        Layer.ENVIRONMENT, None, "FF_LOOP_MAX_ITERATIONS"
    )
    nothing = CompiledSnapshot(registry, None, None, {"loop.max_iterations": 7})
    rc = consistent(nothing.view("production"), CTX())
    assert (rc.snapshot_rev, rc["loop.max_iterations"]) == (None, 7)


def test_explanation_is_json(registry: FlagRegistry) -> None:
    view = view_of(registry, snapshot_part())
    overrides = [_ov(1)]
    index = OverrideIndex(overrides, registry, "production")
    ctx = CTX(tenant_id="acme", user_id="u-1", plan="pro")
    explanation = explain(view, index, "tools.refund_api.enabled", ctx, T0 + 1, overrides)
    data = json.loads(json.dumps(explanation.to_dict()))
    assert data["key"] == "tools.refund_api.enabled"
    assert data["value"] is False
    assert data["provenance"] == {
        "layer": "override",
        "scope": "global",
        "override_id": "ov-1",
        "reason": "reason 1",
    }
    assert data["context"] == {"tenant_id": "acme", "user_id": "u-1", "plan": "pro"}
    assert data["description"] == "Refund tool gate"
    assert [c["status"] for c in data["candidates"]] == ["won", "shadowed"]


def test_override_ids_follow_the_keys_not_the_order_overrides_are_listed(
    registry: FlagRegistry,
) -> None:
    """A run's override_ids are in the order of the keys they decided: another tenant's
    override listed first (it makes its key's slot first) must not reorder them
    (found by tests/test_properties.py::test_tenant_isolation)."""
    view = view_of(registry, {})
    ctx = CTX(tenant_id="globex")
    loop = _ov(2, key="loop.max_iterations", value=3)
    refund = _ov(3, key="tools.refund_api.enabled")
    # the newest override comes first in the index: alone, refund's slot would lead
    acme = _ov(4, key="loop.max_iterations", scope=ScopeKind.TENANT, target="acme", value=2)
    one = consistent(view, ctx, [loop, refund], at=T0 + 20)
    other = consistent(view, ctx, [loop, refund, acme], at=T0 + 20)
    assert one.override_ids == other.override_ids == ("ov-2", "ov-3")
