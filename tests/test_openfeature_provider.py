"""The OpenFeature provider (issue 10 §2): every typed resolve and its async twin through
a real OpenFeature client, the reason/variant/metadata of each layer, the error codes,
the context mapping (property-tested), and a real wrapped LangGraph run in which the
provider answers from the pinned RunConfig after a publish."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext as OFContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagType, Reason
from openfeature.hook import Hook, HookContext
from openfeature.provider import AbstractProvider

from flagmw import EvaluationContext, FlagClient, FlagRegistry, Layer, MemoryStore, Provenance
from flagmw.openfeature import ContextMapping, FlagmwProvider, InvalidContext, to_flagmw_context
from flagmw.openfeature.reasons import (
    LAYER_REASONS,
    TypeMismatch,
    metadata_for,
    reason_for,
    typed_value,
    variant_for,
)
from flagmw.tracing.attributes import result_reason

FLAGS = {
    "tools.refund_api.enabled": {"type": "bool", "default": True, "binding": "hot", "owner": "t"},
    "prompt.style": {"type": "enum", "choices": ["v2", "v3"], "default": "v2", "owner": "t"},
    "loop.max_iterations": {"type": "int", "default": 8, "min": 1, "max": 50, "owner": "t"},
    "model.temperature": {"type": "float", "default": 0.2, "owner": "t"},
    "greeting": {"type": "string", "default": "hello", "owner": "t"},
    "model.fallbacks": {
        "type": "json",
        "schema": {"type": "array", "items": {"type": "string"}},
        "default": [],
        "owner": "t",
    },
    "beta.enabled": {"type": "bool", "default": False, "owner": "t"},
}

DOCUMENT = {
    "environments": {"staging": {"values": {"loop.max_iterations": 3}}},
    "values": {"model.fallbacks": ["gpt-4o-mini"], "greeting": "hi"},
    "rules": [
        {"name": "enterprise-v3", "when": {"plan": "enterprise"}, "set": {"prompt.style": "v3"}}
    ],
    "tenants": {"acme": {"values": {"model.temperature": 0.7}}},
    "routes": {"refund-assistant": {"values": {"loop.max_iterations": 4}}},
    "experiments": {
        "beta-rollout": {
            "flag": "beta.enabled",
            "unit": "user",
            "variants": {"control": False, "treatment": True},
            "weights": {"control": 50, "treatment": 50},
        }
    },
}


@pytest.fixture
def client() -> Iterator[FlagClient]:
    c = FlagClient(FlagRegistry.from_dict({"flags": FLAGS}), MemoryStore())
    c.publish(DOCUMENT, author="test", message="rev 1")
    yield c
    c.close()


@pytest.fixture
def of_client(client: FlagClient) -> Iterator[OpenFeatureClient]:
    api.set_provider_and_wait(FlagmwProvider(client), domain="flagmw-test")
    yield api.get_client("flagmw-test")
    api.clear_providers()


def ctx(key: str | None = "u-1", **attrs: Any) -> OFContext:
    return OFContext(targeting_key=key, attributes=attrs)


# -- through a real OpenFeature client ---------------------------------------------------


def test_metadata_and_every_typed_resolve(client: FlagClient, of_client: OpenFeatureClient) -> None:
    assert of_client.get_provider_status().value == "READY"
    assert api.get_provider_metadata("flagmw-test").name == "flagmw"
    assert of_client.get_boolean_value("tools.refund_api.enabled", False, ctx()) is True
    assert of_client.get_string_value("greeting", "x", ctx()) == "hi"
    assert of_client.get_integer_value("loop.max_iterations", 0, ctx()) == 8
    assert of_client.get_float_value("model.temperature", 0.0, ctx()) == 0.2
    assert of_client.get_object_value("model.fallbacks", [], ctx()) == ["gpt-4o-mini"]
    # an int flag read as a float is widened; a bool is never an int
    assert of_client.get_float_value("loop.max_iterations", 0.0, ctx()) == 8.0
    d = of_client.get_integer_details("tools.refund_api.enabled", 5, ctx())
    assert (d.value, d.reason, d.error_code) == (5, Reason.ERROR, ErrorCode.TYPE_MISMATCH)


@pytest.mark.parametrize(
    ("kind", "key", "attrs", "value", "reason", "layer", "variant"),
    [
        (FlagType.BOOLEAN, "tools.refund_api.enabled", {}, True, Reason.DEFAULT, "default", None),
        (FlagType.STRING, "greeting", {}, "hi", Reason.STATIC, "snapshot", None),
        (
            FlagType.STRING,
            "prompt.style",
            {"plan": "enterprise"},
            "v3",
            Reason.TARGETING_MATCH,
            "snapshot",
            "enterprise-v3",
        ),
        (
            FlagType.FLOAT,
            "model.temperature",
            {"tenant": "acme"},
            0.7,
            Reason.TARGETING_MATCH,
            "tenant",
            None,
        ),
        (
            FlagType.INTEGER,
            "loop.max_iterations",
            {"route": "refund-assistant"},
            4,
            Reason.TARGETING_MATCH,
            "route",
            None,
        ),
        (
            FlagType.INTEGER,
            "loop.max_iterations",
            {"environment": "staging"},
            3,
            Reason.STATIC,
            "environment",
            None,
        ),
    ],
)
def test_each_layer_maps_to_its_reason(
    of_client: OpenFeatureClient,
    kind: FlagType,
    key: str,
    attrs: dict[str, Any],
    value: Any,
    reason: Reason,
    layer: str,
    variant: str | None,
) -> None:
    d = of_client.evaluate_flag_details(kind, key, None, ctx(**attrs))  # type: ignore[call-overload]
    assert d.error_code is None, d.error_message
    assert (d.value, d.reason, d.variant) == (value, reason, variant)
    assert d.flag_metadata["layer"] == layer
    assert d.flag_metadata["version"] == "1"
    assert d.flag_metadata["contextId"] == "u-1"


def test_experiment_is_split_with_its_variant_and_sticky(of_client: OpenFeatureClient) -> None:
    seen = set()
    for i in range(40):
        d = of_client.get_boolean_details("beta.enabled", False, ctx(f"user-{i}"))
        assert d.reason == Reason.SPLIT
        assert d.variant in ("control", "treatment")
        assert d.value is (d.variant == "treatment")
        assert d.flag_metadata["experiment"] == "beta-rollout"
        again = of_client.get_boolean_details("beta.enabled", False, ctx(f"user-{i}"))
        assert again.variant == d.variant
        seen.add(d.variant)
    assert seen == {"control", "treatment"}


def test_missing_bucketing_unit_is_targeting_key_missing(of_client: OpenFeatureClient) -> None:
    d = of_client.get_boolean_details("beta.enabled", True, ctx(None))
    assert (d.value, d.reason, d.error_code) == (
        True,
        Reason.ERROR,
        ErrorCode.TARGETING_KEY_MISSING,
    )
    assert "user_id" in (d.error_message or "")
    # the unit given as an attribute instead of the targeting key is as good
    assert (
        of_client.get_boolean_details("beta.enabled", True, ctx(None, user_id="u-9")).reason
        == Reason.SPLIT
    )


def test_kill_is_disabled_and_override_is_static(
    client: FlagClient, of_client: OpenFeatureClient
) -> None:
    ov = client.kill("tools.refund_api.enabled", reason="refund incident", actor="oncall", ttl="1h")
    d = of_client.get_boolean_details("tools.refund_api.enabled", True, ctx())
    assert (d.value, d.reason) == (False, Reason.DISABLED)
    assert d.flag_metadata["overrideId"] == ov.id
    assert d.flag_metadata["layer"] == "override"
    ov2 = client.override("greeting", "hey", reason="demo", actor="oncall", ttl="1h", tenant="acme")
    d = of_client.get_string_details("greeting", "x", ctx(tenant="acme"))
    assert (d.value, d.reason, d.flag_metadata["overrideId"]) == ("hey", Reason.STATIC, ov2.id)
    assert d.flag_metadata["scope"] == "tenant:acme"


def test_errors_return_the_default_and_never_raise(of_client: OpenFeatureClient) -> None:
    d = of_client.get_string_details("no.such.flag", "fallback", ctx())
    assert (d.value, d.reason, d.error_code) == ("fallback", Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)
    assert "no.such.flag" in (d.error_message or "")
    d = of_client.get_string_details("greeting", "fb", ctx(tenant_id={"not": "an id"}))
    assert (d.value, d.error_code) == ("fb", ErrorCode.INVALID_CONTEXT)
    d = of_client.get_string_details("greeting", "fb", OFContext("u-1", {"user_id": "u-2"}))
    assert d.error_code == ErrorCode.INVALID_CONTEXT
    assert "contradicts" in (d.error_message or "")
    d = of_client.get_object_details("greeting", {"a": 1}, ctx())
    assert (d.value, d.error_code) == ({"a": 1}, ErrorCode.TYPE_MISMATCH)


def test_object_values_are_copies(client: FlagClient, of_client: OpenFeatureClient) -> None:
    got = of_client.get_object_value("model.fallbacks", [], ctx())
    assert isinstance(got, list)
    got.append("mutated")
    assert of_client.get_object_value("model.fallbacks", [], ctx()) == ["gpt-4o-mini"]
    assert client.value("model.fallbacks") == ["gpt-4o-mini"]


def test_stale_client_answers_stale(tmp_path: Any) -> None:
    from flagmw import SQLiteStore

    db = tmp_path / "flags.db"
    store = SQLiteStore(db, create=True, verify_interval=0)
    c = FlagClient(FlagRegistry.from_dict({"flags": FLAGS}), store)
    c.publish(DOCUMENT, author="test", message="rev 1")
    provider = FlagmwProvider(c)
    assert provider.resolve_string_details("greeting", "x", ctx()).reason == Reason.STATIC
    db.rename(tmp_path / "moved.db")
    provider.poll()
    d = provider.resolve_string_details("greeting", "x", ctx())
    assert (d.value, d.reason, d.flag_metadata["layer"]) == ("hi", Reason.STALE, "snapshot")
    c.close()


def test_provider_hooks_run_in_the_sdk(client: FlagClient) -> None:
    calls: list[str] = []

    class Recorder(Hook):
        def after(self, hook_context: HookContext, details: Any, hints: Any) -> None:
            calls.append(f"{hook_context.flag_key}={details.value}:{details.reason}")

    api.set_provider_and_wait(FlagmwProvider(client, hooks=[Recorder()]), domain="hooks")
    try:
        api.get_client("hooks").get_string_value("greeting", "x", ctx())
    finally:
        api.clear_providers()
    assert calls == ["greeting=hi:STATIC"]


def test_async_variants(client: FlagClient) -> None:
    provider = FlagmwProvider(client)
    assert isinstance(provider, AbstractProvider)

    async def all_async() -> list[Any]:
        return list(
            await asyncio.gather(
                provider.resolve_boolean_details_async("tools.refund_api.enabled", False, ctx()),
                provider.resolve_string_details_async("prompt.style", "x", ctx(plan="enterprise")),
                provider.resolve_integer_details_async("loop.max_iterations", 0, ctx()),
                provider.resolve_float_details_async("model.temperature", 0.0, ctx(tenant="acme")),
                provider.resolve_object_details_async("model.fallbacks", [], ctx()),
                provider.resolve_integer_details_async("nope", 7, ctx()),
            )
        )

    got = asyncio.run(all_async())
    assert [d.value for d in got] == [True, "v3", 8, 0.7, ["gpt-4o-mini"], 7]
    assert got[-1].error_code == ErrorCode.FLAG_NOT_FOUND
    sync = [
        provider.resolve_boolean_details("tools.refund_api.enabled", False, ctx()),
        provider.resolve_string_details("prompt.style", "x", ctx(plan="enterprise")),
    ]
    assert [(d.value, d.reason, d.variant) for d in sync] == [
        (d.value, d.reason, d.variant) for d in got[:2]
    ]

    api.set_provider_and_wait(provider, domain="async")
    try:
        d = asyncio.run(api.get_client("async").get_string_details_async("greeting", "x", ctx()))
    finally:
        api.clear_providers()
    assert (d.value, d.reason) == ("hi", Reason.STATIC)


# -- the mapping, for all inputs ----------------------------------------------------------

provenances = st.builds(
    Provenance,
    layer=st.sampled_from(list(Layer)),
    rev=st.none() | st.integers(1, 10_000),
    scope=st.none() | st.sampled_from(["global", "tenant:acme", "route:r", "staging"]),
    rule=st.none() | st.text(min_size=1, max_size=8),
    experiment=st.none() | st.just("exp"),
    variant=st.none() | st.sampled_from(["control", "treatment"]),
    override_id=st.none() | st.just("ov-1"),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(provenances, json_values)
def test_reason_is_the_traces_reason_upper_cased(prov: Provenance, value: Any) -> None:
    """One mapping: OpenFeature's reason is the trace's ``feature_flag.result.reason``."""
    assert reason_for(prov, value).value == result_reason(prov, value).upper()
    assert reason_for(prov, value, stale=True) is Reason.STALE


@given(provenances, json_values)
def test_metadata_is_scalars_and_names_the_layer(prov: Provenance, value: Any) -> None:
    md = metadata_for(prov, prov.rev, context_id="u", defined={"team": "x"})
    assert all(isinstance(v, bool | int | float | str) for v in md.values())
    assert md["layer"] == prov.layer.value
    assert md["team"] == "x"
    assert ("version" in md) is (prov.rev is not None)
    assert ("overrideId" in md) is (prov.override_id is not None)
    v = variant_for(prov, "frag", None)
    assert v == (prov.variant if prov.variant is not None else prov.rule)


@given(json_values)
def test_typed_value_accepts_exactly_its_type(value: Any) -> None:
    for kind, ok in (
        (FlagType.BOOLEAN, type(value) is bool),
        (FlagType.STRING, type(value) is str),
        (FlagType.INTEGER, type(value) is int),
        (FlagType.FLOAT, type(value) in (int, float)),
        (FlagType.OBJECT, type(value) in (dict, list)),
    ):
        if ok:
            got = typed_value(kind, value)
            assert got == value
            if kind is FlagType.FLOAT:
                assert type(got) is float
        else:
            with pytest.raises(TypeMismatch):
                typed_value(kind, value)


def test_every_layer_has_a_reason() -> None:
    assert set(LAYER_REASONS) == set(Layer)


ids = st.text(min_size=1, max_size=12) | st.integers(-(10**6), 10**6)


ATTRIBUTE_NAMES = ["tenant", "tenant_id", "route", "plan", "thread_id", "region", "seats"]
ID_FIELDS = {"tenant": "tenant_id", "tenant_id": "tenant_id", "route": "route", "plan": "plan"}
ID_FIELDS["thread_id"] = "thread_id"


def _expected_refusal(key: str | None, attrs: dict[str, Any], field: str) -> bool:
    seen: dict[str, str] = {field: key} if key else {}
    for name, value in attrs.items():
        target = ID_FIELDS.get(name)
        if target is None:
            continue
        if isinstance(value, bool | float):
            return True
        text = str(value)
        if seen.get(target, text) != text:
            return True
        seen[target] = text
    return False


@given(
    st.none() | st.text(min_size=1, max_size=12),
    st.dictionaries(
        st.sampled_from(ATTRIBUTE_NAMES),
        ids | st.booleans() | st.floats(allow_nan=False, allow_infinity=False),
        max_size=6,
    ),
    st.sampled_from(["user_id", "tenant_id", "thread_id", "run_id"]),
)
@settings(max_examples=200)
def test_context_mapping_for_all_inputs(key: str | None, attrs: dict[str, Any], field: Any) -> None:
    """Refused exactly when an id attribute is not an id or contradicts another value
    of its field; else every attribute lands in its field or the free attributes."""
    mapping = ContextMapping(targeting_key=field)
    if _expected_refusal(key, attrs, field):
        with pytest.raises(InvalidContext):
            to_flagmw_context(key, attrs, mapping)
        return
    got = to_flagmw_context(key, attrs, mapping)
    if key:
        assert getattr(got, field) == key
    for name, value in attrs.items():
        target = ID_FIELDS.get(name)
        if target is not None:
            assert getattr(got, target) == str(value)
        else:
            assert got.attributes[name] == value
    assert EvaluationContext.from_dict(got.to_dict()) == got


def test_context_mapping_details() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    u = uuid.uuid4()
    got = to_flagmw_context(
        "t-9",
        {"orgId": "acme", "run_id": u, "at": when, "tags": ["a", 1]},
        ContextMapping("thread_id"),
    )
    assert (got.thread_id, got.tenant_id, got.run_id) == ("t-9", "acme", str(u))
    assert dict(got.attributes) == {"at": "2026-01-02T03:04:05+00:00", "tags": ["a", 1]}
    with pytest.raises(InvalidContext, match="not JSON"):
        to_flagmw_context(None, {"x": object()})
    with pytest.raises(ValueError, match="targeting_key"):
        ContextMapping("plan")  # type: ignore[arg-type]


# -- inside a wrapped LangGraph run: the pinned answer --------------------------------------


class State(TypedDict):
    seen: list[Any]


def test_inside_a_wrapped_run_the_provider_answers_the_pinned_value(client: FlagClient) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    import flagmw

    api.set_provider_and_wait(FlagmwProvider(client), domain="run")
    of = api.get_client("run")

    def read() -> dict[str, Any]:
        d = of.get_string_details("greeting", "x", ctx("someone-else"))
        return {"value": d.value, "reason": str(d.reason), **d.flag_metadata}

    def first(state: State) -> dict[str, Any]:
        return {"seen": [*state["seen"], read()]}

    def approve(state: State) -> dict[str, Any]:
        interrupt("approve?")
        return {"seen": [*state["seen"], read()]}

    g = StateGraph(State)
    g.add_node("first", first)
    g.add_node("approve", approve)
    g.add_edge(START, "first")
    g.add_edge("first", "approve")
    g.add_edge("approve", END)
    graph = flagmw.wrap(g.compile(checkpointer=InMemorySaver()), client)
    config = {"configurable": {"thread_id": "t-1", "user_id": "u-1"}}
    try:
        graph.invoke({"seen": []}, config)
        client.publish(
            {**DOCUMENT, "values": {**DOCUMENT["values"], "greeting": "bonjour"}},
            author="test",
            message="rev 2",
        )
        out = graph.invoke(Command(resume="yes"), config)
        outside = of.get_string_details("greeting", "x", ctx())
    finally:
        api.clear_providers()
    before, after = out["seen"]
    assert before["value"] == after["value"] == "hi"  # the pinned value, after the publish
    assert before["version"] == after["version"] == "1"
    assert after["pinned"] is True
    assert before["configHash"] == after["configHash"]
    assert after["contextId"] == "u-1"  # the run's context, not the caller's
    # outside the run: live, rev 2
    assert (outside.value, outside.flag_metadata["version"]) == ("bonjour", "2")


# -- the other direction: an OpenFeature provider feeding the snapshot layer -------------


def test_an_openfeature_provider_feeds_the_snapshot_layer(client: FlagClient) -> None:
    from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

    from flagmw import ValidationError
    from flagmw.openfeature.source import publish_from_provider, read_provider

    other = InMemoryProvider(
        {
            "greeting": InMemoryFlag("es", {"es": "hola", "en": "hello"}),
            "loop.max_iterations": InMemoryFlag("low", {"low": 5}),
            "model.fallbacks": InMemoryFlag("two", {"two": ["a", "b"]}),
        }
    )
    result, read = publish_from_provider(client, other, author="migration", message="from LD")
    assert result.published
    assert result.rev == 2
    assert read.values == {
        "greeting": "hola",
        "loop.max_iterations": 5,
        "model.fallbacks": ["a", "b"],
    }
    assert sorted(read.missing) == sorted(set(FLAGS) - set(read.values))
    assert read.problems == {}
    rc = client.resolve(EvaluationContext(user_id="u-1", plan="enterprise", tenant_id="acme"))
    assert (rc["greeting"], rc.provenance["greeting"].layer) == ("hola", Layer.SNAPSHOT)
    assert rc["loop.max_iterations"] == 5
    assert rc["prompt.style"] == "v3"  # the head's rules, tenants … are kept
    assert rc["model.temperature"] == 0.7
    again, _ = publish_from_provider(client, other, author="migration", message="again")
    assert not again.published  # nothing changed, nothing written

    wrong = InMemoryProvider({"loop.max_iterations": InMemoryFlag("x", {"x": 500})})
    with pytest.raises(ValidationError, match=r"loop\.max_iterations"):
        publish_from_provider(client, wrong, author="migration", message="out of bounds")
    assert client.get_snapshot().info.rev == 2  # nothing published

    class Broken(InMemoryProvider):
        def resolve_string_details(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("the other system is down")

    read = read_provider(Broken({}), client.registry)
    assert read.problems["greeting"] == "RuntimeError: the other system is down"
    assert read.values == {}


def test_async_graph_hot_kill_reaches_the_provider_at_the_next_step(client: FlagClient) -> None:
    """In an async wrapped run the async resolves answer the run's config too; a kill
    of a hot flag made during the run reaches the provider's answer at the next step
    boundary (DISABLED, with the override id), while a publish does not move the
    pinned keys."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph

    import flagmw

    api.set_provider_and_wait(FlagmwProvider(client), domain="async-run")
    of = api.get_client("async-run")
    kills: list[str] = []

    async def read() -> dict[str, Any]:
        gate = await of.get_boolean_details_async("tools.refund_api.enabled", True, ctx())
        text = await of.get_string_details_async("greeting", "x", ctx())
        return {"gate": (gate.value, str(gate.reason)), "greeting": text.value}

    async def first(state: State) -> dict[str, Any]:
        seen = await read()
        ov = client.kill("tools.refund_api.enabled", reason="incident", actor="oncall", ttl="1h")
        kills.append(ov.id)
        client.publish(
            {**DOCUMENT, "values": {**DOCUMENT["values"], "greeting": "bonjour"}},
            author="test",
            message="rev 2",
        )
        return {"seen": [*state["seen"], seen]}

    async def second(state: State) -> dict[str, Any]:
        return {"seen": [*state["seen"], await read()]}

    g = StateGraph(State)
    g.add_node("first", first)
    g.add_node("second", second)
    g.add_edge(START, "first")
    g.add_edge("first", "second")
    g.add_edge("second", END)
    graph = flagmw.wrap(g.compile(checkpointer=InMemorySaver()), client)
    try:
        out = asyncio.run(graph.ainvoke({"seen": []}, {"configurable": {"thread_id": "t-a"}}))
        live = of.get_boolean_details("tools.refund_api.enabled", True, ctx())
    finally:
        api.clear_providers()
    before, after = out["seen"]
    assert before == {"gate": (True, "DEFAULT"), "greeting": "hi"}
    assert after == {"gate": (False, "DISABLED"), "greeting": "hi"}  # hot moved, pinned not
    assert (live.value, live.flag_metadata["overrideId"]) == (False, kills[0])


def test_without_the_extra_the_import_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    for name in [m for m in sys.modules if m.startswith("flagmw.openfeature")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openfeature.provider", None)
    with pytest.raises(ImportError, match=r"pip install 'flagmw\[openfeature\]'"):
        importlib.import_module("flagmw.openfeature")
