"""RunConfig: reading, JSON round trip, config_hash, tamper detection, hot changes."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pydantic
import pytest
from conftest import T0, snapshot_part

from flagmw import (
    EvaluationContext,
    FlagRegistry,
    HotChange,
    IntegrityError,
    Layer,
    Provenance,
    RunConfig,
    UnknownFlagError,
    ValidationError,
)
from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.override_index import OverrideIndex
from flagmw.core.overrides import Override, OverrideKind, ScopeKind
from flagmw.core.provenance import LAYER_ORDER
from flagmw.core.resolve import resolve
from flagmw.core.runconfig import FORMAT
from flagmw.core.snapshot import validate_document

CTX = EvaluationContext(
    tenant_id="acme",
    user_id="u-17",
    route="refund-assistant",
    plan="pro",
    thread_id="t-1",
    run_id="r-1",
    attributes={"seats": 40, "region": "eü", "beta": True},
)


def _kill(registry: FlagRegistry) -> OverrideIndex:
    ov = Override(
        id="ov-1",
        key="tools.refund_api.enabled",
        value=False,
        kind=OverrideKind.KILL,
        scope=ScopeKind.TENANT,
        target="acme",
        reason="CRM webhook returns 500",
        actor="oncall",
        created_at=T0,
        expires_at=T0 + 3600,
    )
    return OverrideIndex([ov], registry, "production")


@pytest.fixture
def rc(registry: FlagRegistry) -> RunConfig:
    snapshot = validate_document(snapshot_part(), registry)
    view = CompiledSnapshot(registry, snapshot, 3).view("production")
    return resolve(view, _kill(registry), CTX, T0 + 1.5)


def test_reading(rc: RunConfig, registry: FlagRegistry) -> None:
    assert rc["model.primary"] == "gpt-4o-mini"
    assert rc.get("model.primary") == "gpt-4o-mini"
    assert rc.get("no.such", "fallback") == "fallback"
    assert rc.enabled("compliance.pii_redaction") is True
    assert rc.enabled("tools.refund_api.enabled") is False
    with pytest.raises(TypeError, match="not a bool flag"):
        rc.enabled("loop.max_iterations")
    with pytest.raises(UnknownFlagError) as info:
        rc["model.primry"]
    assert "model.primary" in info.value.suggestions
    with pytest.raises(UnknownFlagError):
        rc.enabled("nope.nope")
    assert "model.primary" in rc
    assert "nope.nope" not in rc
    assert len(rc) == len(registry)
    assert list(rc.keys()) == sorted(registry.keys())
    assert list(rc) == list(rc.keys())
    assert rc.variant("style-v3-rollout") in ("control", "treatment")
    assert rc.variant("nope") is None
    assert (rc.snapshot_rev, rc.environment, rc.resolved_at) == (3, "production", T0 + 1.5)
    assert rc.override_ids == ("ov-1",)
    assert rc.overridden_keys == ["tools.refund_api.enabled"]
    assert rc.context == CTX
    assert "rev=3" in repr(rc)


def test_provenance_mapping(rc: RunConfig) -> None:
    prov = rc.provenance
    assert prov["model.primary"] == Provenance(Layer.TENANT, 3, "acme")
    assert prov["loop.max_iterations"] == Provenance(Layer.ROUTE, 3, "refund-assistant")
    assert prov["compliance.pii_redaction"] == Provenance(Layer.DEFAULT)
    assert prov["tools.refund_api.enabled"].describe() == "override tenant:acme ov-1"
    assert prov["model.primary"].describe() == "tenant acme @rev 3"
    assert set(prov) == set(rc)
    assert len(prov) == len(rc)


def test_values_cannot_be_changed_through_reads(rc: RunConfig) -> None:
    rc["model.fallbacks"].append("x")
    dict(rc)["model.fallbacks"].append("y")
    dict(rc.items())["model.fallbacks"].append("v")
    for value in rc.values():
        if isinstance(value, list):
            value.append("w")
    rc.get("model.fallbacks").append("z")
    assert rc["model.fallbacks"] == ["gpt-4o-mini"]
    with pytest.raises(TypeError):
        rc.context.attributes["seats"] = 1  # type: ignore[index]


def test_run_config_is_frozen(rc: RunConfig) -> None:
    with pytest.raises((AttributeError, TypeError)):
        rc.snapshot_rev = 99  # type: ignore[misc]
    with pytest.raises(TypeError):
        rc.variants["style-v3-rollout"] = "hijacked"  # type: ignore[index]
    assert rc.snapshot_rev == 3


def test_config_hash_is_sha256_of_the_canonical_values(rc: RunConfig) -> None:
    canonical = json.dumps(dict(rc), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert rc.config_hash == "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_config_hash_covers_values_only(registry: FlagRegistry) -> None:
    snapshot = validate_document(snapshot_part(), registry)
    view = CompiledSnapshot(registry, snapshot, 1).view("production")
    a = resolve(view, None, EvaluationContext(tenant_id="x", user_id="1"), T0)
    b = resolve(view, None, EvaluationContext(tenant_id="y", user_id="2"), T0 + 99)
    assert dict(a) == dict(b)
    assert a.config_hash == b.config_hash
    assert a != b  # different context and time: different RunConfigs
    c = resolve(view, None, EvaluationContext(tenant_id="acme"), T0)
    assert c.config_hash != a.config_hash


def test_json_round_trip_is_exact(rc: RunConfig) -> None:
    text = rc.to_json()
    back = RunConfig.from_json(text)
    assert back == rc
    assert back.to_json() == text
    assert back.config_hash == rc.config_hash
    assert dict(back.provenance) == dict(rc.provenance)
    assert back.context == rc.context
    assert back.variants == rc.variants
    assert RunConfig.from_json(text.encode("utf-8")) == rc
    assert RunConfig.from_json(json.loads(text)) == rc


def _only_json_primitives(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        return all(_only_json_primitives(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_json_primitives(v) for k, v in value.items())
    return False


def test_json_form(rc: RunConfig) -> None:
    data = rc.to_dict()
    assert _only_json_primitives(data)
    assert data["format"] == FORMAT == "flagmw.runconfig/1"
    assert data["snapshot_rev"] == 3
    assert data["snapshot_hash"] == rc.snapshot_hash
    assert data["context"]["attributes"] == {"seats": 40, "region": "eü", "beta": True}
    assert data["override_ids"] == ["ov-1"]
    # provenance is listed for non-default keys only
    assert "compliance.pii_redaction" not in data["provenance"]
    assert data["provenance"]["tools.refund_api.enabled"] == {
        "layer": "override",
        "scope": "tenant:acme",
        "override_id": "ov-1",
        "reason": "CRM webhook returns 500",
    }
    assert "changes" not in data
    assert "eü" in rc.to_json(), "UTF-8 kept, not escaped"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["values"].__setitem__("loop.max_iterations", 50),
        lambda d: d["values"].__setitem__("tools.refund_api.enabled", True),
        # (4 → 4.0 is not a change: one JSON number, one RFC 8785 form, "4")
        lambda d: d["values"].__setitem__("loop.max_iterations", 4.5),
        lambda d: d["values"]["model.fallbacks"].append("gpt-4o"),
        lambda d: d["values"].pop("compliance.pii_redaction"),
        lambda d: d["values"].__setitem__("extra.key", 1),
        lambda d: d.__setitem__("config_hash", "sha256:" + "0" * 64),
        lambda d: d.pop("config_hash"),
    ],
)
def test_tampering_is_detected(rc: RunConfig, tamper: Any) -> None:
    data = copy.deepcopy(rc.to_dict())
    tamper(data)
    with pytest.raises(IntegrityError, match="config_hash"):
        RunConfig.from_json(data)
    with pytest.raises(IntegrityError):
        RunConfig.from_json(json.dumps(data))
    RunConfig.from_json(data, verify=False)  # readable when asked not to verify


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a flagmw RunConfig"),
        ('{"format": "something/2"}', "not a flagmw RunConfig"),
        ('{"format": "flagmw.runconfig/1"}', "malformed"),
        ('{"format": "flagmw.runconfig/1", "values": {"a.b": 1}}', "malformed"),
        (
            '{"format": "flagmw.runconfig/1", "values": {}, "environment": "p", '
            '"resolved_at": 1, "changes": [1]}',
            "malformed",
        ),
        pytest.param(
            '{"format": "flagmw.runconfig/1", "values": [], "environment": "p", "resolved_at": 1}',
            "malformed",
        ),
        pytest.param(
            '{"format": "flagmw.runconfig/1", "values": {}, "environment": "p", '
            '"resolved_at": 1, "context": "acme"}',
            "malformed",
        ),
    ],
)
def test_malformed_stored_forms(data: str, fragment: str) -> None:
    with pytest.raises(IntegrityError, match=fragment):
        RunConfig.from_json(data)


def test_hot_changes(rc: RunConfig, registry: FlagRegistry) -> None:
    snapshot = validate_document(snapshot_part(), registry)
    view = CompiledSnapshot(registry, snapshot, 3).view("production")
    no_kill = resolve(view, None, CTX, T0 + 5)
    assert rc.with_hot(rc, registry.hot_keys, at=T0) is rc
    hot = rc.with_hot(no_kill, registry.hot_keys, at=T0 + 5, step=2)
    (change,) = hot.changes
    assert change == HotChange(
        "tools.refund_api.enabled", False, True, Provenance(Layer.DEFAULT), T0 + 5, 2
    )
    assert hot.override_ids == ()
    assert HotChange.from_dict(change.to_dict()) == change
    assert hot.to_dict()["changes"] == [change.to_dict()]
    assert RunConfig.from_json(hot.to_json()) == hot
    # pinned keys are not taken from the fresh resolution even when they differ
    other = resolve(view, None, CTX._replace(tenant_id="globex"), T0 + 5)
    assert other["model.primary"] != rc["model.primary"]
    merged = rc.with_hot(other, registry.hot_keys, at=T0 + 5)
    assert merged["model.primary"] == rc["model.primary"]


def test_hot_provenance_change_without_a_value_change(registry: FlagRegistry) -> None:
    doc = snapshot_part()
    view1 = CompiledSnapshot(registry, validate_document(doc, registry), 1).view("production")
    view2 = CompiledSnapshot(registry, validate_document(doc, registry), 2).view("production")
    ctx = EvaluationContext(route="refund-assistant")
    a = resolve(view1, None, ctx, T0)
    b = resolve(view2, None, ctx, T0)
    moved = a.with_hot(b, registry.hot_keys, at=T0)
    assert moved is not a
    assert moved.changes == (), "the same value from a newer rev is not a change"
    assert moved.provenance["loop.max_iterations"].rev == 2
    assert moved.snapshot_rev == 1


def test_provenance_round_trip_and_layer_order() -> None:
    full = Provenance(Layer.OVERRIDE, 4, "tenant:acme", "r", "e", "v", "ov-9", "why")
    assert Provenance.from_dict(full.to_dict()) == full
    assert Provenance(Layer.DEFAULT).to_dict() == {"layer": "default"}
    assert [layer.value for layer in sorted(LAYER_ORDER, key=LAYER_ORDER.__getitem__)] == [
        "default",
        "environment",
        "snapshot",
        "tenant",
        "route",
        "version",
        "experiment",
        "override",
    ]


def test_context_round_trip() -> None:
    assert EvaluationContext.from_dict(CTX.to_dict()) == CTX
    assert EvaluationContext().to_dict() == {}
    ctx = EvaluationContext.from_dict({"tenant_id": 7, "seats": 3, "attributes": {"a": 1}})
    assert ctx.tenant_id == "7"
    assert dict(ctx.attributes) == {"seats": 3, "a": 1}
    assert ctx.get("seats") == 3
    assert ctx.get("plan", "free") == "free"


# -- a real Mapping; candidates; get_as; hot-change order -----------------------------------


def test_run_config_is_a_mapping(rc: RunConfig, registry: FlagRegistry) -> None:
    assert isinstance(rc, Mapping)
    keys = sorted(registry.keys())
    assert list(rc) == list(rc.keys()) == keys
    assert [k for k, _ in rc.items()] == keys
    assert list(rc.values()) == [rc[k] for k in keys]
    assert dict(rc) == {k: rc[k] for k in keys}
    assert dict(rc.items()) == dict(rc)
    assert len(rc.values()) == len(rc) == len(keys)
    assert ("model.primary", "gpt-4o-mini") in rc.items()
    assert "gpt-4o-mini" in rc.values()
    assert rc.get("model.primary") == "gpt-4o-mini"
    assert rc.get("nope.nope") is None
    view = rc.keys()
    assert "model.primary" in view
    assert "nope.nope" not in view
    assert rc == RunConfig.from_json(rc.to_json())  # RunConfig's own equality, not Mapping's
    with pytest.raises(TypeError):
        hash(rc)


def test_candidates_give_value_provenance_fragment_and_mutability(rc: RunConfig) -> None:
    cands = rc.candidates
    assert list(cands) == list(rc)
    primary = cands["model.primary"]
    assert primary.value == rc["model.primary"]
    assert primary.provenance == rc.provenance["model.primary"]
    assert primary.fragment == '"model.primary":"gpt-4o-mini"'
    assert primary.mutable is False
    assert cands["model.fallbacks"].mutable is True
    with pytest.raises(TypeError):
        cands["model.primary"] = primary  # type: ignore[index]
    body = "{" + ",".join(c.fragment for c in cands.values()) + "}"
    assert rc.config_hash == "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()


class Limits(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    max_tokens: int
    stop: list[str] = []


def test_get_as_validates_into_a_model_and_raises_flagmw_errors_only() -> None:
    registry = FlagRegistry.from_dict(
        {
            "flags": {
                "model.limits": {"type": "json", "default": {"max_tokens": 256}},
                "model.bad": {"type": "json", "default": {"max_tokens": "many", "temp": 1}},
                "model.list": {"type": "json", "default": [1, 2]},
            }
        }
    )
    view = CompiledSnapshot(registry, None, None).view("production")
    rc = resolve(view, None, EvaluationContext(), T0)
    assert rc.get_as("model.limits", Limits) == Limits(max_tokens=256)
    with pytest.raises(ValidationError) as info:
        rc.get_as("model.bad", Limits)
    assert not isinstance(info.value, pydantic.ValidationError)
    paths = sorted(p.path for p in info.value.errors)
    assert paths == ["model.bad.max_tokens", "model.bad.temp"]
    assert all(p.location == "<runconfig>" for p in info.value.errors)
    with pytest.raises(ValidationError):
        rc.get_as("model.list", Limits)  # a list where a mapping is expected
    with pytest.raises(ValidationError):
        rc.get_as("model.limits", dict)  # type: ignore[type-var]  # not a pydantic model
    with pytest.raises(UnknownFlagError):
        rc.get_as("model.limts", Limits)


HOT_ORDER_SCRIPT = """
from flagmw import EvaluationContext, FlagRegistry
from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.resolve import resolve
from flagmw.core.snapshot import validate_document

keys = [f"hot.k{i:02d}" for i in range(40)]
registry = FlagRegistry.from_dict(
    {"flags": {k: {"type": "int", "default": 0, "binding": "hot"} for k in keys}}
)
def rc(rev, value):
    doc = validate_document({"values": {k: value for k in keys}}, registry)
    return resolve(CompiledSnapshot(registry, doc, rev).view("production"), None,
                   EvaluationContext(), 1.0)
changed = rc(1, 0).with_hot(rc(2, 1), set(keys), at=2.0)
print(",".join(ch.key for ch in changed.changes))
"""


def test_hot_change_order_does_not_depend_on_the_hash_seed() -> None:
    orders = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", HOT_ORDER_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        orders.append(out.stdout.strip().split(","))
    assert orders[0] == orders[1] == orders[2] == [f"hot.k{i:02d}" for i in range(40)]


def test_a_float_read_back_as_an_int_is_not_a_hot_change() -> None:
    # a pin's values are RFC 8785 JSON, where 1.0 is written 1: read back, a float flag
    # at 1.0 holds the int 1, which must not count as a change at the next boundary
    registry = FlagRegistry.from_dict(
        {
            "flags": {
                "model.temperature": {"type": "float", "default": 1.0, "binding": "hot"},
                "agent.enabled": {"type": "bool", "default": True, "binding": "hot"},
            }
        }
    )
    fresh = resolve(CompiledSnapshot(registry, None, None).view("production"), None, CTX, T0)
    stored = fresh.to_dict()
    stored["values"]["model.temperature"] = 1
    pinned = RunConfig.from_json(stored)
    assert pinned.config_hash == fresh.config_hash
    assert pinned.with_hot(fresh, registry.hot_keys, at=T0 + 1) is pinned
    stored["values"]["agent.enabled"] = 1  # but True is not 1
    stored["config_hash"] = RunConfig.from_json(stored, verify=False).config_hash
    odd = RunConfig.from_json(stored)
    changes = odd.with_hot(fresh, registry.hot_keys, at=T0 + 1).changes
    assert [(ch.key, ch.old, ch.new) for ch in changes] == [("agent.enabled", 1, True)]
