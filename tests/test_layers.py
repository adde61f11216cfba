"""The resolution order as data (``flagmw.core.layers``): one tuple, walked three ways.

* the order itself: the layers, lowest first, and the provenance layer each reports;
* the view's precompiled walks (the folded bulk plan of ``resolve`` and the per-key
  plans of ``resolve_key``) agree with a naive walk of the compiled layers — for random
  snapshots, ``FF_`` process variables, overrides and contexts;
* unknown tenant and route ids do not grow memory (bug 3.6: 200 000 unknown ids kept
  38 MB in the compiled view).
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from conftest import T0, snapshot_part
from hypothesis import given
from hypothesis import strategies as st
from test_properties import (
    AT,
    KEYS,
    REGISTRY,
    SETTINGS,
    contexts,
    documents,
    overrides,
    value_of,
)

from flagmw import EvaluationContext, FlagClient, FlagRegistry, Layer, MemoryStore
from flagmw.core.candidate import Candidate
from flagmw.core.compiled import CompiledSnapshot, View
from flagmw.core.explain import explain
from flagmw.core.layers import RESOLUTION_ORDER
from flagmw.core.override_index import OverrideIndex
from flagmw.core.resolve import resolve, resolve_key
from flagmw.core.snapshot import validate_document


def test_the_order_is_one_tuple_lowest_first() -> None:
    assert [layer.name for layer in RESOLUTION_ORDER] == [
        "default",
        "environment values",
        "environment rules",
        "process variables",
        "snapshot values",
        "snapshot rules",
        "tenant",
        "route",
        "version",
        "experiment",
        "override",
    ]
    ranks = [list(Layer).index(layer.layer) for layer in RESOLUTION_ORDER]
    assert ranks == sorted(ranks), "provenance layers follow the order"
    assert {layer.layer for layer in RESOLUTION_ORDER} == set(Layer)


def _naive_resolve(
    view: View, index: OverrideIndex, ctx: EvaluationContext, at: float
) -> dict[str, Candidate]:
    """Every compiled layer applied in order, bottom-up: no folding, no skipping."""
    vals: dict[str, Candidate] = {}
    for state in view.layers:
        state.apply(vals, ctx, at, index, {}, [])
    return vals


def _naive_key(
    view: View, index: OverrideIndex, key: str, ctx: EvaluationContext, at: float
) -> Candidate:
    """Each compiled layer's decider, top-down, the first answer wins."""
    for state in reversed(view.layers):
        decide = state.decider(key)
        if decide is not None:
            cand = decide(key, ctx, at, index)
            if cand is not None:
                return cand
    raise AssertionError(f"no layer decided {key}")


env_values = st.dictionaries(st.sampled_from(KEYS), st.none()).flatmap(
    lambda d: st.fixed_dictionaries({k: value_of(k) for k in d})
)


@SETTINGS
@given(document=documents(), env=env_values, ctx=contexts, data=st.data())
def test_the_precompiled_walks_equal_the_naive_walks(
    document: dict[str, Any], env: dict[str, Any], ctx: EvaluationContext, data: st.DataObject
) -> None:
    at = data.draw(AT)
    ovs = data.draw(overrides(at))
    environment = ctx.environment or "production"
    snapshot = CompiledSnapshot(REGISTRY, validate_document(document, REGISTRY), 1, env)
    view = snapshot.view(environment)
    index = OverrideIndex(ovs, REGISTRY, environment)
    rc = resolve(view, index, ctx, at)
    naive = _naive_resolve(view, index, ctx, at)
    assert list(naive) == list(rc.candidates), "every key, in sorted order"
    for key in KEYS:
        expected = naive[key]
        assert rc.candidates[key] == expected, key
        assert resolve_key(view, index, key, ctx, at) == expected, key
        assert _naive_key(view, index, key, ctx, at) == expected, key
        explanation = explain(view, index, key, ctx, at, ovs)
        assert (explanation.value, explanation.provenance) == (
            expected.value,
            expected.provenance,
        ), key
    assert rc.config_hash == RunConfigHash.of(naive)


class RunConfigHash:
    """The config hash recomputed from scratch: sha256 of RFC 8785 of the values."""

    @staticmethod
    def of(candidates: dict[str, Candidate]) -> str:
        import hashlib

        import rfc8785

        body = rfc8785.dumps({k: c.value for k, c in candidates.items()})
        return "sha256:" + hashlib.sha256(body).hexdigest()


def test_process_variables_beat_environment_rules_and_lose_to_snapshot_values() -> None:
    registry = FlagRegistry.from_dict(
        {"flags": {"a.b": {"type": "int", "default": 0}, "a.c": {"type": "int", "default": 0}}}
    )
    doc = {
        "environments": {
            "production": {"rules": [{"name": "r", "when": {"plan": "pro"}, "set": {"a.b": 1}}]}
        },
        "values": {"a.c": 3},
    }
    snapshot = CompiledSnapshot(registry, validate_document(doc, registry), 4, {"a.b": 2, "a.c": 2})
    view = snapshot.view("production")
    ctx = EvaluationContext(plan="pro")
    rc = resolve(view, None, ctx, T0)
    assert (rc["a.b"], rc["a.c"]) == (2, 3)
    assert rc.provenance["a.b"].scope == "FF_A_B"
    assert rc.provenance["a.c"].layer is Layer.SNAPSHOT
    statuses = {
        c.provenance.scope: c.status for c in explain(view, None, "a.b", ctx, T0).candidates
    }
    assert statuses == {"FF_A_B": "won", "production": "shadowed", None: "shadowed"}


def _retained_bytes(work: Any) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        work()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def test_unknown_tenant_and_route_ids_do_not_grow_memory(registry: FlagRegistry) -> None:
    client = FlagClient(registry, MemoryStore())
    client.publish(snapshot_part(), author="a", message="m")
    client.resolve(EvaluationContext(tenant_id="acme", route="refund-assistant"))  # warm up

    def fifty_thousand_unknown_ids() -> None:
        for i in range(50_000):
            ctx = EvaluationContext(tenant_id=f"unknown-tenant-{i:06d}", route=f"r-{i:06d}")
            client.resolve(ctx)
            client.value("model.primary", ctx)

    retained = _retained_bytes(fifty_thousand_unknown_ids)
    # memoised, each id kept its string and a dict slot (~10 MB for these 100 000 ids)
    assert retained < 512 * 1024, f"{retained / 2**20:.1f} MiB retained"
    # known ids are still compiled once and remembered
    view = client._scope(None)[0]
    assert view.tenant("acme") is view.tenant("acme")
    assert view.tenant("nobody") is None
