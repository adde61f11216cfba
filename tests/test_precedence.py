"""The resolution order (DESIGN §2), exhaustively.

Seven sources can set a key: the environment slice value and the ``FF_<KEY>`` process
variable (both in the environment layer; the variable beats the slice), the snapshot's
global value, the tenant overlay, the route overlay, an experiment (all weight on one
variant, so it always applies) and an override. Every one of the 2^7 combinations is
resolved, each source setting a distinct value, and the winner and its complete
provenance are checked on the three read paths: ``client.resolve`` (full RunConfig),
``client.value`` / :func:`flagmw.resolver.resolve_key` (single key) and
``client.explain`` (winner plus the status of every candidate).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from conftest import FixedClock

from flagmw import (
    EvaluationContext,
    FlagClient,
    FlagRegistry,
    Layer,
    MemoryStore,
    Provenance,
)
from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.override_index import OverrideIndex
from flagmw.core.resolve import resolve_key
from flagmw.core.snapshot import Snapshot

KEY = "loop.max_iterations"
ENV_VAR = "FF_LOOP_MAX_ITERATIONS"
DEFAULT = 8
SOURCES = ("env", "ff", "global", "tenant", "route", "experiment", "override")
#: lowest precedence first; each source sets its own value
VALUES = {"env": 11, "ff": 12, "global": 13, "tenant": 14, "route": 15}
VALUES |= {"experiment": 16, "override": 17}
CTX = EvaluationContext(tenant_id="acme", user_id="u-17", route="refund-assistant")
REV = 2  # a first rev is published before the one under test


def _document(sources: frozenset[str]) -> dict[str, Any]:
    # Distractors that are always present: the context's tenant and route exist and set
    # other keys, and another tenant and route set KEY. None of them may matter.
    doc: dict[str, Any] = {
        "tenants": {
            "acme": {"values": {"model.primary": "gpt-4o-mini"}},
            "globex": {"values": {KEY: 40}},
        },
        "routes": {
            "refund-assistant": {"values": {"prompt.style": "v3"}},
            "triage": {"values": {KEY: 41}},
        },
        "environments": {"staging": {KEY: 42}},
    }
    if "env" in sources:
        doc["environments"]["production"] = {KEY: VALUES["env"]}  # the shorthand form
    if "global" in sources:
        doc["values"] = {KEY: VALUES["global"]}
    if "tenant" in sources:
        doc["tenants"]["acme"]["values"][KEY] = VALUES["tenant"]
    if "route" in sources:
        doc["routes"]["refund-assistant"]["values"][KEY] = VALUES["route"]
    if "experiment" in sources:
        doc["experiments"] = {
            "cap-split": {
                "flag": KEY,
                "unit": "user",
                # a zero-weight variant written first must take no bucket
                "variants": {"off": 9, "on": VALUES["experiment"]},
                "weights": {"off": 0, "on": 100},
            }
        }
    return doc


def _expected(source: str, override_id: str | None) -> Provenance:
    return {
        "default": Provenance(Layer.DEFAULT),
        "env": Provenance(Layer.ENVIRONMENT, REV, "production"),
        "ff": Provenance(Layer.ENVIRONMENT, None, ENV_VAR),
        "global": Provenance(Layer.SNAPSHOT, REV, "global"),
        "tenant": Provenance(Layer.TENANT, REV, "acme"),
        "route": Provenance(Layer.ROUTE, REV, "refund-assistant"),
        "experiment": Provenance(Layer.EXPERIMENT, REV, None, None, "cap-split", "on"),
        "override": Provenance(
            Layer.OVERRIDE, None, "global", None, None, None, override_id, "matrix"
        ),
    }[source]


COMBINATIONS = [
    frozenset(c) for n in range(len(SOURCES) + 1) for c in itertools.combinations(SOURCES, n)
]


def _case_id(sources: frozenset[str]) -> str:
    return "+".join(s for s in SOURCES if s in sources) or "none"


def test_there_are_128_combinations() -> None:
    assert len(COMBINATIONS) == 2**7 == len(set(COMBINATIONS))


@pytest.mark.parametrize("sources", COMBINATIONS, ids=_case_id)
def test_precedence_matrix(
    sources: frozenset[str],
    registry: FlagRegistry,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "ff" in sources:
        monkeypatch.setenv(ENV_VAR, str(VALUES["ff"]))
    else:
        monkeypatch.delenv(ENV_VAR, raising=False)
    store = MemoryStore()
    client = FlagClient(registry, store, clock=clock, env_vars=True)
    client.publish({"values": {"model.primary": "gpt-4o-mini"}}, author="t", message="rev 1")
    result = client.publish(_document(sources), author="t", message="case")
    assert result.rev == REV
    override_id = None
    if "override" in sources:
        override_id = client.override(KEY, VALUES["override"], reason="matrix", actor="t").id

    winner = max(sources, key=SOURCES.index, default="default")
    value = VALUES.get(winner, DEFAULT)
    prov = _expected(winner, override_id)

    # 1. the full RunConfig
    rc = client.resolve(CTX)
    assert rc[KEY] == value
    assert rc.provenance[KEY] == prov
    assert rc.snapshot_rev == REV
    assert rc.override_ids == ((override_id,) if override_id else ())
    assert rc.variant("cap-split") == ("on" if "experiment" in sources else None)
    # the distractors did what they do, whatever the case
    assert rc["model.primary"] == "gpt-4o-mini"
    assert rc.provenance["model.primary"] == Provenance(Layer.TENANT, REV, "acme")
    assert rc["prompt.style"] == "v3"

    # 2. the single-key paths
    assert client.value(KEY, CTX) == value
    record = store.get_snapshot()
    compiled = CompiledSnapshot(
        registry,
        Snapshot.from_normalised(record.document),
        record.info.rev,
        {KEY: VALUES["ff"]} if "ff" in sources else None,
    )
    index = OverrideIndex(store.list_overrides(), registry, "production")
    cand = resolve_key(compiled.view("production"), index, KEY, CTX, clock())
    assert (cand.value, cand.provenance) == (value, prov)

    # 3. explain: the winner and every candidate it shadowed
    explanation = client.explain(KEY, CTX)
    assert explanation.value == value
    assert explanation.provenance == prov
    assert explanation.snapshot_rev == REV
    statuses = {c.provenance: (c.status, c.value) for c in explanation.candidates}
    expected = {
        _expected(s, override_id): ("won" if s == winner else "shadowed", VALUES.get(s, DEFAULT))
        for s in ("default", *sources)
    }
    assert statuses == expected
    assert len(explanation.candidates) == len(expected)  # nothing listed twice
    ranks = [list(Layer).index(c.provenance.layer) for c in explanation.candidates]
    assert ranks == sorted(ranks, reverse=True), "candidates are listed highest layer first"


# -- rules versus values inside a layer ----------------------------------------------------

LAYER_PLACES = {
    "environment": (("environments", "production"), Layer.ENVIRONMENT, "production"),
    "snapshot": ((), Layer.SNAPSHOT, "global"),
    "tenant": (("tenants", "acme"), Layer.TENANT, "acme"),
    "route": (("routes", "refund-assistant"), Layer.ROUTE, "refund-assistant"),
}


def _layer_doc(where: tuple[str, ...], body: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    node = doc
    for part in where:
        node = node.setdefault(part, {})
    node.update(body)
    return doc


@pytest.mark.parametrize("layer_name", list(LAYER_PLACES))
def test_a_matching_rule_beats_the_layers_value(
    layer_name: str, memory_client: Any, registry: FlagRegistry
) -> None:
    where, layer, scope = LAYER_PLACES[layer_name]
    body = {
        "values": {KEY: 20},
        "rules": [
            {"name": "pro-only", "when": {"plan": "pro"}, "set": {KEY: 21}},
            {"name": "enterprise-a", "when": {"plan": {"in": ["enterprise"]}}, "set": {KEY: 22}},
            {"name": "enterprise-b", "when": {"plan": "enterprise"}, "set": {KEY: 23}},
        ],
    }
    client = memory_client(document=_layer_doc(where, body))
    rev = client.snapshot_rev

    enterprise = CTX._replace(plan="enterprise")
    rc = client.resolve(enterprise)
    assert rc[KEY] == 22, "the first matching rule wins, not the last"
    assert rc.provenance[KEY] == Provenance(layer, rev, scope, "enterprise-a")
    assert client.value(KEY, enterprise) == 22

    pro = CTX._replace(plan="pro")
    assert client.resolve(pro)[KEY] == 21
    assert client.resolve(pro).provenance[KEY] == Provenance(layer, rev, scope, "pro-only")

    free = CTX._replace(plan="free")
    rc = client.resolve(free)
    assert rc[KEY] == 20, "no rule matches: the layer's value"
    assert rc.provenance[KEY] == Provenance(layer, rev, scope)
    assert client.value(KEY, free) == 20

    explanation = client.explain(KEY, enterprise)
    by_name = {c.provenance.rule: c.status for c in explanation.candidates}
    assert by_name == {
        None: by_name[None],  # the layer value and the default: both shadowed
        "pro-only": "not matched",
        "enterprise-a": "won",
        "enterprise-b": "shadowed",
    }
    plain = [c for c in explanation.candidates if c.provenance.rule is None]
    assert {c.status for c in plain} == {"shadowed"}


def test_rules_of_one_layer_set_different_keys_independently(memory_client: Any) -> None:
    # first match is per key: a later rule still sets a key the first one does not set
    client = memory_client(
        document={
            "rules": [
                {"name": "a", "when": {"plan": "pro"}, "set": {KEY: 30}},
                {"name": "b", "when": {"plan": "pro"}, "set": {KEY: 31, "prompt.style": "v3"}},
            ]
        }
    )
    rc = client.resolve(EvaluationContext(plan="pro"))
    assert (rc[KEY], rc.provenance[KEY].rule) == (30, "a")
    assert (rc["prompt.style"], rc.provenance["prompt.style"].rule) == ("v3", "b")
    assert client.value("prompt.style", EvaluationContext(plan="pro")) == "v3"


def test_a_higher_layers_value_beats_a_lower_layers_rule(memory_client: Any) -> None:
    client = memory_client(
        document={
            "rules": [{"name": "all-pro", "when": {"plan": "pro"}, "set": {KEY: 30}}],
            "tenants": {"acme": {"values": {KEY: 31}}},
        }
    )
    ctx = EvaluationContext(tenant_id="acme", plan="pro")
    rc = client.resolve(ctx)
    assert rc[KEY] == 31
    assert rc.provenance[KEY].layer is Layer.TENANT
    assert client.value(KEY, ctx) == 31


def test_environment_rules_lose_to_process_variables_and_global_values(
    memory_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_rule = {"name": "env-pro", "when": {"plan": "pro"}, "set": {KEY: 30, "prompt.style": "v3"}}
    doc = {"environments": {"production": {"values": {KEY: 29}, "rules": [env_rule]}}}
    pro = EvaluationContext(plan="pro")

    plain = memory_client(document=doc)
    assert plain.resolve(pro).provenance[KEY] == Provenance(
        Layer.ENVIRONMENT, 1, "production", "env-pro"
    )

    monkeypatch.setenv(ENV_VAR, "12")
    with_var = memory_client(document=doc, env_vars=True)
    rc = with_var.resolve(pro)
    assert rc[KEY] == 12
    assert rc.provenance[KEY] == Provenance(Layer.ENVIRONMENT, None, ENV_VAR)
    assert rc["prompt.style"] == "v3", "the rule still sets the keys no variable sets"
    assert with_var.value(KEY, pro) == 12

    monkeypatch.delenv(ENV_VAR)
    with_global = memory_client(document={**doc, "values": {KEY: 13}})
    rc = with_global.resolve(pro)
    assert rc[KEY] == 13
    assert rc.provenance[KEY] == Provenance(Layer.SNAPSHOT, 1, "global")
    assert with_global.value(KEY, pro) == 13


def test_the_client_environment_selects_the_slice(memory_client: Any) -> None:
    doc = {"environments": {"staging": {KEY: 3}, "production": {"values": {KEY: 5}}}}
    staging = memory_client(document=doc, environment="staging")
    production = memory_client(document=doc)
    assert staging.resolve()[KEY] == 3
    assert staging.resolve().provenance[KEY] == Provenance(Layer.ENVIRONMENT, 1, "staging")
    assert production.resolve()[KEY] == 5
    # a context can name another environment explicitly
    assert production.resolve(EvaluationContext(environment="staging"))[KEY] == 3
    assert production.value(KEY, EvaluationContext(environment="staging")) == 3
    assert memory_client(document=doc, environment="dev").resolve()[KEY] == DEFAULT


# -- overrides: narrowest scope wins, newest first within a scope ---------------------------


def test_override_scopes_route_beats_tenant_beats_global(
    memory_client: Any, clock: FixedClock
) -> None:
    client = memory_client(document={"values": {KEY: 13}})
    # created narrowest first, so "newest wins" alone would give the wrong answer
    route = client.override(KEY, 19, reason="route", actor="t", route="refund-assistant")
    clock.advance(1)
    tenant = client.override(KEY, 18, reason="tenant", actor="t", tenant="acme")
    clock.advance(1)
    glob = client.override(KEY, 17, reason="global", actor="t")

    def check(ctx: EvaluationContext, value: int, ov_id: str, scope: str) -> None:
        rc = client.resolve(ctx)
        assert rc[KEY] == value
        prov = rc.provenance[KEY]
        assert (prov.layer, prov.override_id, prov.scope) == (Layer.OVERRIDE, ov_id, scope)
        assert client.value(KEY, ctx) == value
        assert client.explain(KEY, ctx).provenance == prov

    check(CTX, 19, route.id, "route:refund-assistant")
    check(CTX._replace(route="triage"), 18, tenant.id, "tenant:acme")
    check(CTX._replace(route=None, tenant_id="globex"), 17, glob.id, "global")
    check(EvaluationContext(), 17, glob.id, "global")

    statuses = {c.provenance.override_id: c.status for c in client.explain(KEY, CTX).candidates}
    assert statuses[route.id] == "won"
    assert statuses[tenant.id] == "superseded"
    assert statuses[glob.id] == "superseded"

    client.end_override(route.id, actor="t", reason="done")
    check(CTX, 18, tenant.id, "tenant:acme")
    client.end_override(tenant.id, actor="t", reason="done")
    check(CTX, 17, glob.id, "global")


def test_newest_override_wins_within_a_scope(memory_client: Any, clock: FixedClock) -> None:
    client = memory_client(document={})
    older = client.override(KEY, 20, reason="older", actor="t", tenant="acme")
    clock.advance(0.5)
    newer = client.override(KEY, 21, reason="newer", actor="t", tenant="acme")
    ctx = EvaluationContext(tenant_id="acme")
    assert client.resolve(ctx)[KEY] == 21
    assert client.resolve(ctx).provenance[KEY].override_id == newer.id
    assert client.value(KEY, ctx) == 21
    client.end_override(newer.id, actor="t", reason="rolled back")
    assert client.resolve(ctx).provenance[KEY].override_id == older.id
    assert client.value(KEY, ctx) == 20


def test_newest_override_wins_when_created_at_the_same_time(memory_client: Any) -> None:
    client = memory_client(document={})
    made = [client.override(KEY, 20 + i, reason=f"n{i}", actor="t") for i in range(11)]
    newest = made[-1]
    assert newest.id == "ov-11"
    rc = client.resolve()
    assert rc.provenance[KEY].override_id == newest.id
    assert rc[KEY] == 30
