"""Conditions on context attributes (the ``when:`` of rules, experiments and segments).

Grammar (all entries of a mapping must hold: AND)::

    when:
      plan: enterprise                 # equals (scalar shorthand)
      plan: {in: [enterprise, pro]}    # in / not_in: a list of scalars
      tenant_id: {not_in: [acme]}
      seats: {gte: 10, lt: 100}        # gt / gte / lt / lte: numbers
      region: {exists: true}           # exists: true / false
      user_id: {equals: u-1}           # equals / not_equals
      segment: beta-testers            # a named segment (a list: any of them)
      any: [{plan: pro}, {seats: {gte: 50}}]   # OR of conditions
      not: {plan: free}                # negation

Attributes are the :class:`~flagmw.context.EvaluationContext` fields (``tenant_id``,
``user_id``, ``route``, ``thread_id``, ``run_id``, ``plan``, ``environment``) and, for any
other name, its free ``attributes``. A **missing attribute makes every operator false**
except ``exists: false`` (so ``not_in`` never matches an anonymous context). Operators
compare scalars: an attribute holding a list or a mapping behaves like a missing one
(only ``exists`` sees it), and ``1`` never equals ``true``.

Conditions are validated when a snapshot is published and compiled once per rev into
plain closures; evaluating one costs a few attribute reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from flagmw.core.context import WELL_KNOWN_ATTRIBUTES, EvaluationContext
from flagmw.core.problems import did_you_mean
from flagmw.core.source import DocPath, Locator
from flagmw.errors import Problem

__all__ = ["OPERATORS", "Predicate", "compile_when", "validate_when"]

Predicate = Callable[[EvaluationContext], bool]

OPERATORS = ("equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte", "exists")
_COMBINATORS = ("any", "not", "segment")
_NUMERIC = ("gt", "gte", "lt", "lte")


def _is_scalar(v: Any) -> bool:
    return isinstance(v, str | int | float | bool) and not (
        isinstance(v, float) and not math.isfinite(v)
    )


def validate_when(
    when: Any,
    locator: Locator,
    path: DocPath,
    segments: Mapping[str, Any] | None,
    *,
    in_segment: bool = False,
) -> list[Problem]:
    """Every problem in a ``when`` mapping, located.

    Args:
        segments: the snapshot's named segments (None: segments are not allowed here).
    """
    out: list[Problem] = []
    if not isinstance(when, Mapping):
        return [
            locator.problem(
                path,
                "a condition must be a mapping of attribute → test",
                "e.g. when: {plan: enterprise}",
                "wrong_type",
            )
        ]
    if not when:
        out.append(
            locator.problem(
                path,
                "empty condition",
                "remove `when` to match every context",
                "invalid",
                severity="warning",
            )
        )
    for attr, test in when.items():
        p = (*path, str(attr))
        if not isinstance(attr, str) or not attr:
            out.append(
                locator.problem(p, f"attribute names are strings, got {attr!r}", "", "wrong_type")
            )
            continue
        if attr == "any":
            if not isinstance(test, list) or not test:
                out.append(
                    locator.problem(
                        p, "any: needs a non-empty list of conditions", "", "wrong_type"
                    )
                )
            else:
                for i, sub in enumerate(test):
                    out.extend(
                        validate_when(sub, locator, (*p, i), segments, in_segment=in_segment)
                    )
            continue
        if attr == "not":
            out.extend(validate_when(test, locator, p, segments, in_segment=in_segment))
            continue
        if attr == "segment":
            names = test if isinstance(test, list) else [test]
            if in_segment:
                out.append(
                    locator.problem(
                        p,
                        "a segment cannot refer to another segment",
                        "inline its condition",
                        "invalid",
                    )
                )
            elif segments is None:
                out.append(locator.problem(p, "segments are not available here", "", "invalid"))
            else:
                for name in names:
                    if not isinstance(name, str) or name not in segments:
                        out.append(
                            locator.problem(
                                p,
                                f"unknown segment {name!r}",
                                did_you_mean(str(name), segments) or "define it under segments:",
                                "unknown_segment",
                            )
                        )
            continue
        if not isinstance(test, Mapping):
            if not _is_scalar(test):
                out.append(
                    locator.problem(
                        p,
                        f"{attr}: expected a value or a mapping of operators, got "
                        f"{type(test).__name__}",
                        "e.g. {in: [a, b]}",
                        "wrong_type",
                    )
                )
            continue
        if not test:
            out.append(
                locator.problem(
                    p, f"{attr}: no operator given", "one of " + ", ".join(OPERATORS), "invalid"
                )
            )
        for op, arg in test.items():
            q = (*p, str(op))
            if op not in OPERATORS:
                out.append(
                    locator.problem(
                        q,
                        f"unknown operator {op!r} on {attr}",
                        did_you_mean(str(op), OPERATORS) or "one of " + ", ".join(OPERATORS),
                        "unknown_operator",
                    )
                )
            elif op in ("in", "not_in"):
                if not isinstance(arg, list) or not all(_is_scalar(x) for x in arg):
                    out.append(
                        locator.problem(
                            q,
                            f"{op} needs a list of scalar values, got {arg!r}",
                            f"e.g. {op}: [a, b]",
                            "wrong_type",
                        )
                    )
            elif op in _NUMERIC:
                if isinstance(arg, bool) or not isinstance(arg, int | float) or not _is_scalar(arg):
                    out.append(
                        locator.problem(q, f"{op} needs a number, got {arg!r}", "", "wrong_type")
                    )
            elif op == "exists":
                if not isinstance(arg, bool):
                    out.append(
                        locator.problem(
                            q, f"exists needs true or false, got {arg!r}", "", "wrong_type"
                        )
                    )
            elif not _is_scalar(arg):
                out.append(
                    locator.problem(q, f"{op} needs a scalar value, got {arg!r}", "", "wrong_type")
                )
    return out


def _member_key(value: Any) -> tuple[bool, Any]:
    return (isinstance(value, bool), value)


def _getter(attr: str) -> Callable[[EvaluationContext], Any]:
    if attr in WELL_KNOWN_ATTRIBUTES:
        index = EvaluationContext._fields.index(attr)
        return lambda ctx: ctx[index]
    return lambda ctx: ctx.attributes.get(attr)


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return v
    return None


def _compile_attr(attr: str, test: Any, environment: str | None) -> Predicate | bool:
    """One attribute test; returns a constant when it can be decided at compile time
    (conditions on ``environment`` inside an environment's view)."""
    get = _getter(attr)
    if not isinstance(test, Mapping):
        if isinstance(test, str) and attr in WELL_KNOWN_ATTRIBUTES and attr != "environment":
            index = EvaluationContext._fields.index(attr)  # the common case, kept tight
            return lambda ctx: ctx[index] == test
        test = {"equals": test}
    checks: list[Predicate] = []
    for op, arg in test.items():
        checks.append(_compile_op(get, op, arg))
    if attr == "environment" and environment is not None:
        probe = EvaluationContext(environment=environment)
        return all(c(probe) for c in checks)
    if len(checks) == 1:
        return checks[0]
    return lambda ctx: all(c(ctx) for c in checks)


def _compile_op(get: Callable[[EvaluationContext], Any], op: str, arg: Any) -> Predicate:
    if op == "equals":
        if isinstance(arg, bool):
            return lambda ctx: get(ctx) is arg
        if isinstance(arg, str):
            return lambda ctx: get(ctx) == arg
        # numbers: 1 must not equal True
        return lambda ctx: (v := get(ctx)) is not None and not isinstance(v, bool) and v == arg
    if op == "not_equals":
        if isinstance(arg, bool):
            return lambda ctx: (v := get(ctx)) is not None and v is not arg
        return lambda ctx: (v := get(ctx)) is not None and (isinstance(v, bool) or v != arg)
    if op in ("in", "not_in"):
        # Membership is for scalar attributes only (a list or mapping attribute makes it
        # false, like a missing one), and keys carry "is it a bool" so that 1 never
        # matches True (Python's 1 == True).
        negate = op == "not_in"
        if all(isinstance(x, str) for x in arg):
            strings = frozenset(arg)
            if negate:
                return lambda ctx: type(v := get(ctx)) is str and v not in strings
            return lambda ctx: type(v := get(ctx)) is str and v in strings
        keys = frozenset(_member_key(x) for x in arg)
        if negate:
            return lambda ctx: _is_scalar(v := get(ctx)) and _member_key(v) not in keys
        return lambda ctx: _is_scalar(v := get(ctx)) and _member_key(v) in keys
    if op == "exists":
        want = bool(arg)
        return lambda ctx: (get(ctx) is not None) is want
    if op in _NUMERIC:
        bound = float(arg)
        cmp: Callable[[float], bool] = {
            "gt": lambda a: a > bound,
            "gte": lambda a: a >= bound,
            "lt": lambda a: a < bound,
            "lte": lambda a: a <= bound,
        }[op]
        return lambda ctx: (n := _num(get(ctx))) is not None and cmp(n)
    raise ValueError(f"unknown operator {op!r}")  # validated before compiling


def compile_when(
    when: Mapping[str, Any] | None,
    segments: Mapping[str, Predicate | bool] | None = None,
    environment: str | None = None,
) -> Predicate | bool:
    """Compile a validated ``when`` mapping.

    Returns:
        a predicate over an :class:`EvaluationContext`, or ``True`` / ``False`` when the
        outcome is known at compile time (no condition, or only conditions on the
        view's ``environment``).
    """
    if not when:
        return True
    parts: list[Predicate] = []
    for attr, test in when.items():
        part: Predicate | bool
        if attr == "any":
            subs = [compile_when(s, segments, environment) for s in test]
            if any(s is True for s in subs):
                part = True
            else:
                preds = [s for s in subs if s is not False]
                part = False if not preds else _any(preds)  # type: ignore[arg-type]
        elif attr == "not":
            sub = compile_when(test, segments, environment)
            part = (not sub) if isinstance(sub, bool) else _negate(sub)
        elif attr == "segment":
            names = test if isinstance(test, list) else [test]
            segs = [(segments or {})[n] for n in names]
            if any(s is True for s in segs):
                part = True
            else:
                preds = [s for s in segs if s is not False]
                part = False if not preds else _any(preds)  # type: ignore[arg-type]
        else:
            part = _compile_attr(attr, test, environment)
        if part is False:
            return False
        if part is not True:
            parts.append(part)
    if not parts:
        return True
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        return lambda ctx: a(ctx) and b(ctx)
    return lambda ctx: all(p(ctx) for p in parts)


def _any(preds: list[Predicate]) -> Predicate:
    if len(preds) == 1:
        return preds[0]
    return lambda ctx: any(p(ctx) for p in preds)


def _negate(pred: Predicate) -> Predicate:
    return lambda ctx: not pred(ctx)
