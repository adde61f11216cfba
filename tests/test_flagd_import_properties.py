"""Random flagd files (the JsonLogic subset flagmw imports) mean the same after import.

For generated targeting — nested and multi-branch ``if``, ``==`` / ``===`` / ``!=`` /
``!==``, ``in``, comparisons and "between", ``and`` / ``or`` / ``!``, ``$ref``, rollouts
(a ``fractional`` compared with a variant name) and splits (shorthand, ``targetingKey``
and ``cat`` keys) — and generated contexts, flagmw resolves the imported flag to the
value flagd's semantics give (``flagmw/interop/jsonlogic.py``). Contexts keep clear of the
reported differences (numeric text and booleans in comparisons, a unit missing under a
``cat`` key): those are asserted to be reported instead.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flagmw.core.compiled import CompiledSnapshot
from flagmw.core.context import EvaluationContext
from flagmw.core.registry import FlagRegistry
from flagmw.core.resolve import resolve
from flagmw.core.snapshot import validate_document
from flagmw.interop.flagd_import import import_flagd
from flagmw.interop.jsonlogic import evaluate, flagd_data

VARIANTS = {"red": "#f00", "blue": "#00f", "green": "#0f0"}
PLANS = ["free", "pro", "enterprise"]


def var(name: str) -> dict[str, Any]:
    return {"var": name}


LEAVES = st.one_of(
    st.builds(lambda v: {"==": [var("plan"), v]}, st.sampled_from(PLANS)),
    st.builds(lambda v: {"===": [v, var("plan")]}, st.sampled_from([*PLANS, 5, None])),
    st.builds(lambda v: {"!=": [var("plan"), v]}, st.sampled_from(PLANS)),
    st.builds(lambda v: {"!==": [var("age"), v]}, st.sampled_from([18, None, "x"])),
    st.builds(lambda vs: {"in": [var("plan"), vs]}, st.lists(st.sampled_from(PLANS), min_size=1)),
    st.builds(
        lambda op, n, flip: {op: [n, var("age")] if flip else [var("age"), n]},
        st.sampled_from(["<", "<=", ">", ">="]),
        st.sampled_from([-1, 0, 18, 21.5]),
        st.booleans(),
    ),
    st.builds(
        lambda a, b: {"<": [a, var("age"), b]},
        st.sampled_from([-5, 0, 10]),
        st.sampled_from([18, 65]),
    ),
    st.builds(lambda v: {"==": [var("targetingKey"), v]}, st.sampled_from(["u-1", "u-2"])),
    st.just({"$ref": "grown-up"}),
    st.just({"!==": [var("tenant_id"), None]}),
)
CONDITIONS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"or": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda x: {"!": [x]}, inner),
    ),
    max_leaves=4,
)
ROLLOUT = st.builds(
    lambda n, key: {"===": [{"fractional": [key, ["in", n], ["out", 100 - n]]}, "in"]},
    st.integers(0, 100),
    st.sampled_from([{"var": "targetingKey"}, {"cat": ["r", var("tenant_id")]}]),
)
WEIGHTS = st.sampled_from([[50, 50], [1, 3], [25, 25, 50], [0, 1], [3, 1, 1, 5]])
SPLITS = st.builds(
    lambda key, ws, names: {
        "fractional": ([] if key is None else [key])
        + [[n, w] for n, w in zip(names, ws, strict=False)]
    },
    st.sampled_from([None, {"var": "targetingKey"}, {"cat": ["s", var("tenant_id")]}]),
    WEIGHTS,
    st.permutations(["red", "blue", "green", None]),
)


def branches(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    cond = st.one_of(CONDITIONS, st.builds(lambda c, r: {"and": [c, r]}, CONDITIONS, ROLLOUT))
    return st.builds(
        lambda pairs, tail: {"if": [x for pair in pairs for x in pair] + tail},
        st.lists(st.tuples(cond, inner), min_size=1, max_size=3),
        st.one_of(st.just([]), inner.map(lambda t: [t])),
    )


TARGETING = st.recursive(
    st.one_of(st.sampled_from(["red", "blue", "green", None]), SPLITS),
    branches,
    max_leaves=6,
)
CONTEXTS = st.tuples(
    st.one_of(st.none(), st.sampled_from(["u-1", "u-2", ""]), st.integers(0, 10**6).map(str)),
    st.sampled_from(["t1", "t2", "acme"]),  # always present: a cat key is exact then
    st.one_of(st.none(), st.sampled_from(PLANS)),
    st.one_of(st.none(), st.sampled_from([-3, 0, 10, 18, 30.5, 70, "x"])),
)


@settings(
    max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(targeting=TARGETING, contexts=st.lists(CONTEXTS, min_size=10, max_size=10))
def test_imported_random_targeting_means_what_flagd_means(
    targeting: Any, contexts: list[tuple[Any, ...]]
) -> None:
    flag = {
        "state": "ENABLED",
        "variants": VARIANTS,
        "defaultVariant": "red",
        "targeting": targeting,
    }
    evaluators = {"grown-up": {">=": [var("age"), 18]}}
    result = import_flagd({"flags": {"color": flag}, "$evaluators": evaluators})
    codes = {p.code for p in result.losses}
    assume("unsupported" not in codes)  # e.g. a split after a branch with a rollout
    assert codes <= {"coercion", "missing_unit"}, result.losses
    registry = FlagRegistry.from_dict(result.document)
    view = CompiledSnapshot(registry, validate_document(result.document, registry), 1).view("p")
    for tk, tenant, plan, age in contexts:
        attrs: dict[str, Any] = {"tenant_id": tenant}
        if plan is not None:
            attrs["plan"] = plan
        if age is not None:
            attrs["age"] = age
        variant = evaluate(targeting, flagd_data("color", tk, attrs), evaluators)
        want = VARIANTS[variant if variant is not None else "red"]
        ctx = EvaluationContext(
            user_id=tk,
            tenant_id=tenant,
            plan=plan,
            attributes={"age": age} if age is not None else {},
        )
        got = resolve(view, None, ctx, 0.0)["color"]
        assert got == want, (tk, attrs, got, want, result.document)
