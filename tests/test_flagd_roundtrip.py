"""flagmw → flagd → flagmw, for random snapshots and contexts (docs/flagd.md).

For every generated snapshot (values, rules with conditions and rollouts, segments,
tenant and route overlays, experiments — bucketing ``flagd``) and every generated
context:

1. the exported flagd file, evaluated with flagd's semantics
   (:mod:`flagmw.interop.jsonlogic`: JsonLogic plus flagd's ``fractional``), gives every
   flag the value flagmw resolves;
2. importing that file back gives a flags file that passes validation and resolves every
   flag to the same value again.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.context import EvaluationContext
from flagmw.core.registry import FlagRegistry
from flagmw.core.resolve import resolve
from flagmw.core.snapshot import validate_document
from flagmw.interop.flagd_conditions import context_to_flagd
from flagmw.interop.flagd_export import export_flagd
from flagmw.interop.flagd_import import import_flagd
from flagmw.interop.jsonlogic import evaluate, flagd_data

REGISTRY = FlagRegistry.from_dict(
    {
        "flags": {
            "tools.refund.enabled": {"type": "bool", "default": True, "binding": "hot"},
            "model.primary": {
                "type": "enum",
                "choices": ["gpt-a", "gpt-b", "gpt-c"],
                "default": "gpt-a",
            },
            "loop.max": {"type": "int", "min": 0, "max": 100, "default": 8},
            "temperature": {"type": "float", "default": 0.5},
            "prompt.greeting": {"type": "string", "default": "hello"},
            "model.fallbacks": {"type": "json", "default": []},
        }
    }
)

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "tools.refund.enabled": st.booleans(),
    "model.primary": st.sampled_from(["gpt-a", "gpt-b", "gpt-c"]),
    "loop.max": st.integers(0, 100),
    "temperature": st.sampled_from([0.0, 0.5, 1.5, 2.0]),
    "prompt.greeting": st.sampled_from(["hello", "hi", "", "on", "a b", "x" * 70]),
    "model.fallbacks": st.sampled_from([[], ["gpt-b"], {"a": 1}, "s", None, {}]),
}
KEYS = sorted(VALUES)

SCALARS = st.sampled_from(["free", "pro", "t1", "u-1", "eu", "", 5, 10.0, 0, True, False])
ATTRS = st.sampled_from(["plan", "tenant_id", "user_id", "region", "seats", "route", "flag"])


@st.composite
def leaf(draw: st.DrawFn) -> dict[str, Any]:
    attr = draw(ATTRS)
    op = draw(
        st.sampled_from(
            ["equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "bare"]
        )
    )
    if op == "bare":
        return {attr: draw(SCALARS)}
    if op in ("in", "not_in"):
        strings = st.lists(
            st.sampled_from(["free", "pro", "t1", "u-1", "eu", ""]), min_size=1, max_size=3
        )
        mixed = st.lists(SCALARS, min_size=1, max_size=3)
        return {attr: {op: draw(st.one_of(strings, mixed))}}
    if op in ("gt", "gte", "lt", "lte"):
        return {attr: {op: draw(st.sampled_from([-1, 0, 5, 7.5, 10]))}}
    if op == "exists":
        return {attr: {op: draw(st.booleans())}}
    return {attr: {op: draw(SCALARS)}}


def conditions(segments: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    base = st.one_of(
        leaf(),
        st.builds(lambda xs: {"any": xs}, st.lists(leaf(), min_size=1, max_size=2)),
        st.builds(lambda x: {"not": x}, leaf()),
        st.sampled_from([{"environment": "production"}, {"environment": {"in": ["staging"]}}]),
        *([st.sampled_from([{"segment": s} for s in segments])] if segments else []),
    )
    return st.lists(base, min_size=1, max_size=2).map(_merge)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in parts:
        for k, v in p.items():
            out.setdefault(k, v)
    return out


@st.composite
def rules(draw: st.DrawFn, segments: list[str], prefix: str) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(0, 3))):
        keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True))
        rule: dict[str, Any] = {"name": f"{prefix}{i}", "set": {k: draw(VALUES[k]) for k in keys}}
        if draw(st.booleans()):
            rule["when"] = draw(conditions(segments))
        if draw(st.integers(0, 3)) == 0:
            rule["rollout"] = {
                "percent": draw(st.sampled_from([0, 0.01, 12.5, 50, 99.99, 100])),
                "unit": draw(st.sampled_from(["user", "tenant"])),
                "bucketing": "flagd",
            }
        out.append(rule)
    return out


def values(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True))
    return {k: draw(VALUES[k]) for k in keys}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    segments = draw(st.lists(st.sampled_from(["beta", "big"]), max_size=2, unique=True))
    doc: dict[str, Any] = {
        "segments": {s: draw(leaf()) for s in segments},
        "values": values(draw),
        "rules": draw(rules(segments, "g")),
        "environments": {
            "production": {"values": values(draw), "rules": draw(rules(segments, "e"))},
            "staging": {"values": values(draw)},
        },
        "tenants": {
            t: {"values": values(draw), "rules": draw(rules(segments, t))}
            for t in draw(st.lists(st.sampled_from(["t1", "t2"]), max_size=2, unique=True))
        },
        "routes": {
            r: {"values": values(draw), "rules": draw(rules(segments, r))}
            for r in draw(st.lists(st.sampled_from(["r1", "r2"]), max_size=2, unique=True))
        },
        "experiments": {},
    }
    for i in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(KEYS))
        n = draw(st.integers(1, 3))
        cuts = sorted(draw(st.lists(st.integers(0, 10_000), min_size=n - 1, max_size=n - 1)))
        bounds = [0, *cuts, 10_000]
        exp: dict[str, Any] = {
            "flag": key,
            "unit": draw(st.sampled_from(["user", "tenant"])),
            "bucketing": "flagd",
            "variants": {f"v{j}": draw(VALUES[key]) for j in range(n)},
            "weights": {f"v{j}": (bounds[j + 1] - bounds[j]) / 100 for j in range(n)},
        }
        if draw(st.booleans()):
            exp["when"] = draw(conditions(segments))
        if draw(st.integers(0, 4)) == 0:
            exp["salt"] = draw(st.sampled_from(["", "s1", "é"]))
        doc["experiments"][f"x{i}"] = exp
    return doc


CONTEXTS = st.builds(
    EvaluationContext,
    tenant_id=st.sampled_from([None, "t1", "t2", "t3", ""]),
    user_id=st.one_of(
        st.none(), st.sampled_from(["u-1", "", "ü"]), st.integers(0, 10**6).map(lambda n: f"u-{n}")
    ),
    route=st.sampled_from([None, "r1", "r2"]),
    plan=st.sampled_from([None, "free", "pro", "5"]),
    attributes=st.dictionaries(
        st.sampled_from(["region", "seats", "flag"]),
        st.sampled_from(["eu", "us", "", 5, 10, 10.0, -3, 7.5, True, False, "600", "t1"]),
        max_size=3,
    ),
)


def flagd_value(flag: dict[str, Any], key: str, ctx: EvaluationContext, evaluators: Any) -> Any:
    """What a flagd provider answers for ``key`` (the variant's value)."""
    tk, attrs = context_to_flagd(ctx)
    variant = None
    if "targeting" in flag:
        variant = evaluate(flag["targeting"], flagd_data(key, tk, attrs), evaluators)
    if variant is None:
        variant = flag["defaultVariant"]
    return flag["variants"][variant]


def check_flagd_shapes(document: dict[str, Any], codes: set[str]) -> None:
    """What flagd's schema (flagd-schemas json/flags.json, targeting.json) requires of the
    parts the export writes: state, homogeneous variants, primitive metadata, ``if``
    with exactly three operands, ``+`` with two, fractional weights as integers."""

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for x in node:
                walk(x)
        elif isinstance(node, dict):
            for op, args in node.items():
                if op == "if":
                    assert isinstance(args, list)
                    assert len(args) == 3
                if op == "+":
                    assert isinstance(args, list)
                    assert len(args) == 2
                if op == "fractional":
                    for entry in args[1:]:
                        assert isinstance(entry[0], str)
                        assert type(entry[1]) is int
                walk(args)

    for flag in document["flags"].values():
        assert flag["state"] == "ENABLED"
        assert flag["defaultVariant"] in flag["variants"]
        kinds = {
            "bool"
            if isinstance(v, bool)
            else "number"
            if isinstance(v, int | float)
            else type(v).__name__
            for v in flag["variants"].values()
        }
        assert len(kinds) == 1 or "json_value" in codes
        assert all(isinstance(v, str | int | float | bool) for v in flag["metadata"].values())
        walk(flag.get("targeting"))
    for evaluator in document.get("$evaluators", {}).values():
        assert isinstance(evaluator, dict)
        walk(evaluator)


def same(a: Any, b: Any) -> bool:
    return bool(a == b) and type(a) is type(b)


@settings(
    max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(doc=documents(), contexts=st.lists(CONTEXTS, min_size=8, max_size=8))
def test_export_evaluates_like_flagmw_and_imports_back(
    doc: dict[str, Any], contexts: list[EvaluationContext]
) -> None:
    snap = validate_document(doc, REGISTRY)
    result = export_flagd(REGISTRY, snap.document, environment="production", rev=3)
    codes = {p.code for p in result.losses}
    assert "salted_bucketing" not in codes  # flagd bucketing everywhere: exact
    flagd = result.document
    assert flagd["metadata"]["version"] == "3"
    check_flagd_shapes(flagd, codes)

    imported = import_flagd(flagd)
    assert not [p for p in imported.losses if p.code != "metadata"], imported.losses
    registry2 = FlagRegistry.from_dict(imported.document)
    assert registry2.to_dict() == REGISTRY.to_dict()
    snap2 = validate_document(imported.document, registry2)

    view = CompiledSnapshot(REGISTRY, snap, 3).view("production")
    view2 = CompiledSnapshot(registry2, snap2, 1).view("production")
    for ctx in contexts:
        want = resolve(view, None, ctx, 0.0)
        back = resolve(view2, None, ctx, 0.0)
        for key in KEYS:
            got = flagd_value(flagd["flags"][key], key, ctx, flagd.get("$evaluators"))
            assert same(got, want[key]), (key, ctx, got, want[key])
            assert same(back[key], want[key]), (key, ctx, back[key], want[key])


def test_salted_rollouts_are_listed_and_keep_their_share() -> None:
    doc = {
        "rules": [{"name": "ramp", "rollout": {"percent": 25}, "set": {"loop.max": 12}}],
        "experiments": {
            "greet": {
                "flag": "prompt.greeting",
                "variants": {"a": "hello", "b": "hi"},
                "weights": {"a": 50, "b": 50},
            }
        },
    }
    snap = validate_document(doc, REGISTRY)
    result = export_flagd(REGISTRY, snap.document)
    salted = [p for p in result.losses if p.code == "salted_bucketing"]
    assert [p.path for p in salted] == ["rules[0].rollout", "experiments.greet"]
    assert result.lossy
    flag = result.document["flags"]["loop.max"]
    admitted = sum(
        flagd_value(flag, "loop.max", EvaluationContext(user_id=f"u-{i}"), None) == 12
        for i in range(4000)
    )
    assert 800 < admitted < 1200  # 25 % of 4000, other units than flagmw's


def test_unconditional_global_rule_is_the_default_variant() -> None:
    doc = {
        "values": {"loop.max": 3},
        "rules": [{"name": "all", "set": {"loop.max": 9}}],
        "environments": {"production": {"values": {"temperature": 1.5}}},
    }
    snap = validate_document(doc, REGISTRY)
    flags = export_flagd(REGISTRY, snap.document).document["flags"]
    assert flags["loop.max"]["defaultVariant"] == "9"
    assert "targeting" not in flags["loop.max"]
    assert flags["temperature"]["variants"][flags["temperature"]["defaultVariant"]] == 1.5
    assert flags["tools.refund.enabled"]["variants"] == {"on": True, "off": False}
    assert list(flags["model.primary"]["variants"]) == ["gpt-a", "gpt-b", "gpt-c"]
    odd = FlagRegistry.from_dict(
        {"flags": {"mode": {"type": "enum", "choices": ["", "on", "v0"], "default": ""}}}
    )
    variants = export_flagd(odd, validate_document({}, odd).document).document["flags"]["mode"]
    assert variants["variants"] == {"v0": "", "on": "on", "v0-2": "v0"}
    assert variants["defaultVariant"] == "v0"
    assert all(f["state"] == "ENABLED" for f in flags.values())
