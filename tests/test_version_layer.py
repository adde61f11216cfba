"""The ``version`` layer: where it sits in the resolution order, its provenance, and that
``resolve``, ``resolve_key`` and ``explain`` agree on it."""

from __future__ import annotations

from typing import Any

import yaml
from conftest import FLAGS_YAML, snapshot_part
from hypothesis import given, settings
from hypothesis import strategies as st

from flagmw import FlagClient, FlagRegistry, MemoryStore
from flagmw.core.context import EvaluationContext
from flagmw.core.provenance import Layer
from flagmw.core.versions import ROLLOUT_ATTR, STAGE_ATTR, VERSION_ATTR
from flagmw.rollout.versions import AgentVersion


def _ctx(**attrs: Any) -> EvaluationContext:
    return EvaluationContext(route="refund-assistant", tenant_id="acme", attributes=attrs)


def _client(registry: FlagRegistry, snapshot_document: dict[str, Any]) -> FlagClient:
    client = FlagClient(registry, MemoryStore())
    client.publish(snapshot_document, author="t", message="m")
    v = AgentVersion.build(
        registry,
        "refund-assistant",
        "v1.3.3",
        {"loop.max_iterations": 3, "model.primary": "gpt-4o", "tools.refund_api.enabled": True},
    )
    client.versions.add(v.ref, v.values, v.content_hash)
    return client


def test_version_beats_route_and_tenant_but_not_override(
    registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> None:
    client = _client(registry, snapshot_document)
    plain = client.resolve(_ctx())
    assert plain["loop.max_iterations"] == 4  # the route overlay
    assert plain["model.primary"] == "gpt-4o-mini"  # the tenant overlay
    attrs = {VERSION_ATTR: "refund-assistant@v1.3.3", ROLLOUT_ATTR: "ra-1.3.3", STAGE_ATTR: 25}
    rc = client.resolve(_ctx(**attrs))
    assert rc["loop.max_iterations"] == 3
    assert rc["model.primary"] == "gpt-4o"
    prov = rc.provenance["loop.max_iterations"]
    assert prov.layer is Layer.VERSION
    assert prov.describe() == "version v1.3.3 (rollout ra-1.3.3, stage 25 %)"
    # one key at a time and explain give the same winner
    ctx = _ctx(**attrs)
    assert client.value("loop.max_iterations", ctx) == 3
    ex = client.explain("loop.max_iterations", ctx)
    assert ex.provenance.layer is Layer.VERSION
    shadowed = [c.provenance.layer for c in ex.candidates if c.status == "shadowed"]
    assert Layer.ROUTE in shadowed
    # a kill (override layer) still beats the version
    client.kill("tools.refund_api.enabled", reason="incident", ttl="1h", actor="oncall")
    assert client.resolve(ctx)["tools.refund_api.enabled"] is False


def test_unknown_version_ref_offers_nothing(
    registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> None:
    client = _client(registry, snapshot_document)
    rc = client.resolve(_ctx(**{VERSION_ATTR: "refund-assistant@v9"}))
    assert rc["loop.max_iterations"] == 4
    assert rc.provenance["loop.max_iterations"].layer is Layer.ROUTE
    bad = client.resolve(_ctx(**{VERSION_ATTR: 42}))  # not text: ignored, no crash
    assert bad["loop.max_iterations"] == 4


def test_a_version_added_after_compiling_is_served(
    registry: FlagRegistry, snapshot_document: dict[str, Any]
) -> None:
    client = FlagClient(registry, MemoryStore())
    client.publish(snapshot_document, author="t", message="m")
    ctx = _ctx(**{VERSION_ATTR: "refund-assistant@v2"})
    assert client.value("loop.max_iterations", ctx) == 4  # plan built without the version
    client.versions.add("refund-assistant@v2", {"loop.max_iterations": 9})
    assert client.value("loop.max_iterations", ctx) == 9
    assert client.resolve(ctx)["loop.max_iterations"] == 9


@given(
    st.sampled_from(["refund-assistant@v1", "refund-assistant@v2", "other@v1", None]),
    st.sampled_from([None, "acme", "globex"]),
    st.sampled_from([None, "refund-assistant", "support"]),
    st.sampled_from([None, 1, 25, 100]),
)
@settings(max_examples=80)
def test_resolve_resolve_key_and_explain_agree_with_versions(
    ref: str | None, tenant: str | None, route: str | None, stage: int | None
) -> None:
    registry = FlagRegistry.from_dict(yaml.safe_load(FLAGS_YAML))
    client = FlagClient(registry, MemoryStore())
    client.publish(snapshot_part(), author="t", message="m")
    client.versions.add("refund-assistant@v1", {"loop.max_iterations": 3})
    client.versions.add(
        "refund-assistant@v2", {"loop.max_iterations": 5, "model.primary": "gpt-4o"}
    )
    attrs: dict[str, Any] = {}
    if ref is not None:
        attrs[VERSION_ATTR] = ref
    if stage is not None:
        attrs[STAGE_ATTR] = stage
    ctx = EvaluationContext(tenant_id=tenant, route=route, attributes=attrs)
    rc = client.resolve(ctx)
    for key in ("loop.max_iterations", "model.primary", "prompt.style"):
        assert client.value(key, ctx) == rc[key]
        ex = client.explain(key, ctx)
        assert ex.value == rc[key]
        assert ex.provenance == rc.provenance[key]
