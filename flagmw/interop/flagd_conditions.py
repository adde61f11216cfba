"""flagmw conditions (``when:``) as flagd JsonLogic, and back.

**Context.** A flagd provider hands targeting the evaluation context's attributes plus
``targetingKey``. flagmw's fields map as follows (:data:`FIELD_TO_FLAGD`): ``user_id`` is
``targetingKey`` (an OpenFeature provider's default too); ``tenant_id``, ``route``,
``plan``, ``thread_id``, ``run_id`` keep their names; free attributes keep theirs.
``environment`` is not looked up at all: a file is exported for one environment, and
conditions on it are decided when it is written.

**Semantics kept exactly.** flagmw's operators are strict and a missing attribute makes
them false (``exists: false`` aside); JsonLogic's are loose. The export adds the guards
that make the JsonLogic mean exactly what flagmw means:

=====================  ===============================================================
flagmw                 JsonLogic
=====================  ===============================================================
``a: x``, ``equals``   ``{"===": [a, x]}``
``not_equals: x``      ``a`` present and ``{"!==": [a, x]}``
``in: [..]``           ``{"in": [a, [..]]}`` (strict membership)
``not_in: [..]``       ``a`` present (a string, for a list of strings) and not ``in``
``gt`` … ``lte``       ``a`` a number (``{"===": [{"+": [a, 0]}, a]}``), ``{">": [a, n]}``
``exists``             ``{"!==": [a, null]}`` / ``{"===": [a, null]}``
``any`` / ``not``      ``or`` / ``!``
``segment: s``         ``{"$ref": "s"}`` (a shared evaluator of ``$evaluators``)
=====================  ===============================================================

The import reads these forms back and the common hand-written ones (``==``, ``!=``,
``in``, comparisons, ``and`` / ``or`` / ``!``, ``$ref``), each translated to what flagd
means (``{"!=": [a, x]}`` also holds when ``a`` is missing, so it becomes ``any: [{a:
{exists: false}}, {a: {not_equals: x}}]``). Anything else raises :class:`Unsupported`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from flagmw.core.conditions import compile_when

__all__ = [
    "FIELD_TO_FLAGD",
    "FLAGD_TO_FIELD",
    "Unsupported",
    "context_to_flagd",
    "jsonlogic_to_when",
    "when_to_jsonlogic",
]

#: flagmw context field → the flagd context attribute that carries it.
FIELD_TO_FLAGD = {
    "user_id": "targetingKey",
    "tenant_id": "tenant_id",
    "route": "route",
    "plan": "plan",
    "thread_id": "thread_id",
    "run_id": "run_id",
}
#: flagd context attribute → flagmw field (``targetingKey`` → ``user_id``).
FLAGD_TO_FIELD = {v: k for k, v in FIELD_TO_FLAGD.items()}

Json = Any  # a JsonLogic expression, or True / False when decided


class Unsupported(ValueError):
    """A construct that has no flagmw (or flagd) counterpart.

    Attributes:
        path: where it is, as a document path relative to the expression given.
    """

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path
        #: True when ``path`` is a path of the whole file rather than of the expression
        self.located = False


def context_to_flagd(ctx: Any) -> tuple[str | None, dict[str, Any]]:
    """An :class:`~flagmw.core.context.EvaluationContext` as flagd sees it:
    ``(targetingKey, attributes)`` by :data:`FIELD_TO_FLAGD`."""
    attrs: dict[str, Any] = dict(ctx.attributes)
    for field, name in FIELD_TO_FLAGD.items():
        value = getattr(ctx, field)
        if name != "targetingKey" and value is not None:
            attrs[name] = value
    return ctx.user_id, attrs


# -- export: when → JsonLogic -----------------------------------------------------------


def _var(attr: str) -> dict[str, Any]:
    return {"var": FIELD_TO_FLAGD.get(attr, attr)}


def _present(v: Json) -> Json:
    return {"!==": [v, None]}


def _is_string(v: Json) -> Json:
    return {"===": [{"cat": [v]}, v]}


def _is_number(v: Json) -> Json:
    # "+" takes two operands in flagd's schema; a + 0 is a number only when a is one
    return {"===": [{"+": [v, 0]}, v]}


def all_of(parts: list[Json]) -> Json:
    """AND of parts, folding constants."""
    kept: list[Json] = []
    for p in parts:
        if p is False:
            return False
        if isinstance(p, Mapping) and len(p) == 1 and isinstance(p.get("and"), list):
            kept.extend(p["and"])  # flattened: one level of and
        elif p is not True:
            kept.append(p)
    if not kept:
        return True
    return kept[0] if len(kept) == 1 else {"and": kept}


def any_of(parts: list[Json]) -> Json:
    """OR of parts, folding constants."""
    kept = []
    for p in parts:
        if p is True:
            return True
        if p is not False:
            kept.append(p)
    if not kept:
        return False
    return kept[0] if len(kept) == 1 else {"or": kept}


def negate(part: Json) -> Json:
    """NOT of a part, folding constants."""
    if isinstance(part, bool):
        return not part
    return {"!": [part]}


def _op(attr: str, op: str, arg: Any) -> Json:
    v = _var(attr)
    if op == "equals":
        return {"===": [v, arg]}
    if op == "not_equals":
        return all_of([_present(v), {"!==": [v, arg]}])
    if op == "in":
        return {"in": [v, list(arg)]}
    if op == "not_in":
        guard = _is_string(v) if all(isinstance(x, str) for x in arg) else _present(v)
        return all_of([guard, {"!": [{"in": [v, list(arg)]}]}])
    if op == "exists":
        return _present(v) if arg else {"===": [v, None]}
    symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
    return all_of([_is_number(v), {symbol: [v, arg]}])


def when_to_jsonlogic(when: Mapping[str, Any] | None, environment: str) -> Json:
    """A validated flagmw condition as JsonLogic (True / False when it is decided for
    ``environment``). Segments become ``{"$ref": name}``."""
    if not when:
        return True
    parts: list[Json] = []
    for attr, test in when.items():
        if attr == "any":
            parts.append(any_of([when_to_jsonlogic(s, environment) for s in test]))
        elif attr == "not":
            parts.append(negate(when_to_jsonlogic(test, environment)))
        elif attr == "segment":
            names = test if isinstance(test, list) else [test]
            parts.append(any_of([{"$ref": n} for n in names]))
        elif attr == "environment":
            decided = compile_when({attr: test}, environment=environment)
            parts.append(bool(decided))
        else:
            ops = test if isinstance(test, Mapping) else {"equals": test}
            parts.extend(_op(attr, op, arg) for op, arg in ops.items())
    return all_of(parts)


# -- import: JsonLogic → when ----------------------------------------------------------


def _scalar(v: Any) -> bool:
    return isinstance(v, str | bool | int | float) and not (
        isinstance(v, float) and not math.isfinite(v)
    )


def var_attr(node: Any, path: tuple[str | int, ...]) -> str | None:
    """The flagmw attribute a ``{"var": name}`` node reads (None: not a var node)."""
    if not (isinstance(node, Mapping) and len(node) == 1 and "var" in node):
        return None
    name = node["var"]
    if isinstance(name, list):
        if (len(name) == 2 and name[1] is None) or len(name) == 1:
            name = name[0]
        else:
            raise Unsupported("a var with a default value", path)
    if not isinstance(name, str) or not name:
        raise Unsupported(f"var {name!r}: only named attributes are supported", path)
    if name.startswith("$flagd"):
        raise Unsupported(f"var {name!r}: flagd's own properties have no flagmw counterpart", path)
    if "." in name:
        raise Unsupported(f"var {name!r}: nested attributes have no flagmw counterpart", path)
    if name in ("any", "not", "segment", "environment"):
        raise Unsupported(f"attribute {name!r} is a reserved word in flagmw conditions", path)
    return FLAGD_TO_FIELD.get(name, name)


def _attr_lit(args: Any, path: tuple[str | int, ...]) -> tuple[str, Any, bool] | None:
    """``[var, literal]`` or ``[literal, var]`` → (attribute, literal, var_first)."""
    if not isinstance(args, list) or len(args) != 2:
        return None
    a = var_attr(args[0], (*path, 0))
    if a is not None and not isinstance(args[1], Mapping | list):
        return a, args[1], True
    b = var_attr(args[1], (*path, 1))
    if b is not None and not isinstance(args[0], Mapping | list):
        return b, args[0], False
    return None


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """AND of when mappings: merged when their attributes differ, else De Morgan."""
    out: dict[str, Any] = {}
    for p in parts:
        if any(k in out for k in p):
            return {"not": {"any": [{"not": q} for q in parts]}}
        out.update(p)
    return out


def _guarded(node: Mapping[str, Any], path: tuple[str | int, ...]) -> dict[str, Any] | None:
    """The two-term ``and`` forms the export writes for not_equals / not_in / gt …"""
    terms = node.get("and")
    if not isinstance(terms, list) or len(terms) != 2:
        return None
    guard, test = terms
    if not (isinstance(guard, Mapping) and len(guard) == 1 and isinstance(test, Mapping)):
        return None
    ((gop, gargs),) = guard.items()
    if gop == "===" and isinstance(gargs, list) and len(gargs) == 2:
        inner = gargs[0]
        if isinstance(inner, Mapping) and len(inner) == 1 and next(iter(inner)) in ("+", "cat"):
            kind = next(iter(inner))
            sub = inner[kind]
            if kind == "+" and isinstance(sub, list) and len(sub) == 2 and sub[1] == 0:
                sub = sub[:1]  # {"+": [a, 0]}: flagd's schema wants two operands
            sub = sub[0] if isinstance(sub, list) and len(sub) == 1 else sub
            if sub != gargs[1] or var_attr(sub, path) is None:
                return None
            attr = var_attr(sub, path)
            assert attr is not None
            if kind == "+" and len(test) == 1:
                ((op, targs),) = test.items()
                names = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
                ok = op in names and isinstance(targs, list) and len(targs) == 2
                if ok and targs[0] == sub and _num(targs[1]):
                    return {attr: {names[op]: targs[1]}}
            if kind == "cat":
                return _not_in(attr, sub, test, strings=True)
        return None
    if gop == "!==" and isinstance(gargs, list) and len(gargs) == 2 and gargs[1] is None:
        attr = var_attr(gargs[0], path)
        if attr is None:
            return None
        if len(test) == 1 and "!==" in test:
            targs = test["!=="]
            ok = isinstance(targs, list) and len(targs) == 2 and targs[0] == gargs[0]
            if ok and _scalar(targs[1]):
                return {attr: {"not_equals": targs[1]}}
        return _not_in(attr, gargs[0], test, strings=False)
    return None


def _not_in(
    attr: str, var: Any, test: Mapping[str, Any], *, strings: bool
) -> dict[str, Any] | None:
    neg = test.get("!") if len(test) == 1 else None
    neg = neg[0] if isinstance(neg, list) and len(neg) == 1 else neg
    if isinstance(neg, Mapping) and len(neg) == 1 and "in" in neg:
        args = neg["in"]
        if isinstance(args, list) and len(args) == 2 and args[0] == var:
            values = args[1]
            ok = isinstance(values, list) and all(_scalar(x) for x in values)
            if ok and strings == all(isinstance(x, str) for x in values):
                return {attr: {"not_in": list(values)}}
    return None


_JS_NUMERIC = re.compile(
    r"[+-]?(infinity|(\d+\.?\d*|\.\d+)(e[+-]?\d+)?)|0x[0-9a-f]+|0o[0-7]+|0b[01]+", re.I
)


def _loose_is_strict(lit: Any) -> bool:
    """Whether JsonLogic's ``==`` with ``lit`` means ``===``: text that does not convert
    to a number (JavaScript's ToNumber gives NaN), so no other type can equal it."""
    return isinstance(lit, str) and bool(lit.strip()) and not _JS_NUMERIC.fullmatch(lit.strip())


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_NAMES = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def _holds_for_zero(op: str, n: float) -> bool:
    return {"<": n > 0, "<=": n >= 0, ">": n < 0, ">=": n <= 0}[op]


def _comparison(attr: str, op: str, n: float) -> dict[str, Any]:
    # JsonLogic compares a missing attribute (null) as 0: keep that meaning
    test = {attr: {_NAMES[op]: n}}
    if _holds_for_zero(op, n):
        return {"any": [{attr: {"exists": False}}, test]}
    return test


def jsonlogic_to_when(
    node: Any,
    evaluators: Mapping[str, Any],
    path: tuple[str | int, ...] = (),
    notes: list[tuple[tuple[str | int, ...], str]] | None = None,
) -> dict[str, Any] | bool:
    """A JsonLogic condition as a flagmw ``when`` mapping (True / False: constant).

    ``$ref`` names are looked up in ``evaluators`` (the file's ``$evaluators``) and
    inlined; a reference cycle is refused.

    Args:
        notes: receives ``(path, message)`` for each translation that is exact only for
            numbers and missing attributes (JsonLogic also compares numeric text and
            booleans as numbers; flagmw does not).

    Raises:
        Unsupported: the construct (located by ``path``) has no flagmw counterpart.
    """
    return _when(node, evaluators, path, (), [] if notes is None else notes)


def _when(
    node: Any,
    evaluators: Mapping[str, Any],
    path: tuple[str | int, ...],
    refs: tuple[str, ...],
    notes: list[tuple[tuple[str | int, ...], str]],
) -> dict[str, Any] | bool:
    if isinstance(node, bool):
        return node
    if len(path) > 400:
        raise Unsupported("condition nested too deeply", path)
    if not isinstance(node, Mapping) or len(node) != 1:
        raise Unsupported(f"not a condition: {_short(node)}", path)
    guarded = _guarded(node, path)
    if guarded is not None:
        return guarded
    ((op, args),) = node.items()
    p = (*path, op)
    if op == "$ref":
        if not isinstance(args, str) or args not in evaluators:
            raise Unsupported(f"$ref {args!r} names no entry of $evaluators", p)
        if args in refs or len(refs) > 16:
            raise Unsupported(f"$ref {args!r} refers to itself", p)
        try:
            return _when(evaluators[args], evaluators, ("$evaluators", args), (*refs, args), notes)
        except Unsupported as exc:
            exc.located = True  # its path is the file's: $evaluators.<name>…
            raise
    items = args if isinstance(args, list) else [args]
    if op in ("and", "or"):
        subs: list[dict[str, Any] | bool] = []
        i = 0
        while i < len(items):
            # the export's guard pairs (a type test, then the comparison) sit flattened
            # in an and: read each pair as one flagmw test
            pair = _guarded({"and": items[i : i + 2]}, (*p, i)) if op == "and" else None
            if pair is not None:
                subs.append(pair)
                i += 2
                continue
            subs.append(_when(items[i], evaluators, (*p, i), refs, notes))
            i += 1
        stop: bool = op == "or"  # the constant that decides: True for or, False for and
        if any(s is stop for s in subs):
            return stop
        maps: list[dict[str, Any]] = [s for s in subs if not isinstance(s, bool)]
        if not maps:
            return not stop
        if len(maps) == 1:
            return maps[0]
        return _merge(maps) if op == "and" else {"any": maps}
    if op in ("!", "!!"):
        if len(items) != 1:
            raise Unsupported(f"{op} takes one operand", p)
        sub = _when(items[0], evaluators, (*p, 0), refs, notes)
        if op == "!!":
            return sub
        return (not sub) if isinstance(sub, bool) else {"not": sub}
    if op in ("==", "===", "!=", "!=="):
        found = _attr_lit(items, p)
        if found is None or not (found[1] is None or _scalar(found[1])):
            raise Unsupported(f"{op} between {_short(items)}: only attribute vs value", p)
        attr, lit, _ = found
        if lit is None:
            return {attr: {"exists": op in ("!=", "!==")}}
        if op in ("==", "!=") and not _loose_is_strict(lit):
            notes.append(
                (
                    p,
                    f"{op} {lit!r} is loose in JsonLogic (also true for a value of another "
                    "type that converts to it, e.g. 5 == '5'); flagmw compares strictly",
                )
            )
        if op in ("==", "==="):
            return {attr: {"equals": lit}}
        return {"any": [{attr: {"exists": False}}, {attr: {"not_equals": lit}}]}
    if op == "in":
        if len(items) == 2 and isinstance(items[1], list):
            member = var_attr(items[0], (*p, 0))
            if member is not None and all(_scalar(x) for x in items[1]) and items[1]:
                return {member: {"in": list(items[1])}}
        raise Unsupported("in: only `attribute in [values]` (no substring test)", p)
    if op in _NAMES:
        notes.append(
            (
                p,
                f"{op} compares numeric text and booleans as numbers in JsonLogic; flagmw "
                "compares numbers only (a missing attribute keeps JsonLogic's meaning)",
            )
        )
        if len(items) == 3 and op in ("<", "<=") and _num(items[0]) and _num(items[2]):
            between = var_attr(items[1], (*p, 1))
            if between is not None:
                low = _comparison(between, _FLIP[op], items[0])
                high = _comparison(between, op, items[2])
                return _merge([low, high])
        found = _attr_lit(items, p)
        if found is not None and _num(found[1]):
            attr, n, var_first = found
            return _comparison(attr, op if var_first else _FLIP[op], n)
        raise Unsupported(f"{op}: only an attribute compared with a number", p)
    raise Unsupported(f"operator {op!r} has no flagmw counterpart", p)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
