"""flagd's JsonLogic dialect, evaluated: what a flagd provider answers for a flag.

flagmw does not evaluate flagd files at run time; this evaluator exists so that an
exported file can be *checked* (the tests evaluate the exported targeting for many
contexts and compare with flagmw's own resolution) and so that ``flagmw import`` can
report what a file means. It follows json-logic-js (the reference of jsonlogic.com) for
the standard operators and flagd's specification for its own:

* ``var`` (dotted paths, a default), ``if`` / ``?:``, ``==`` / ``!=`` (JavaScript's loose
  equality), ``===`` / ``!==`` (strict: ``1 === 1.0``, ``1 !== true``), ``!``, ``!!``,
  ``and`` / ``or`` (returning an operand, as JavaScript does), ``<`` ``<=`` ``>`` ``>=``
  (JavaScript's coercions: ``null`` is 0, numeric strings are numbers; ``<`` and ``<=``
  take three operands as "between"), ``in`` (array membership by strict equality, or a
  substring), ``cat``, ``+``;
* flagd's ``fractional`` (:mod:`flagmw.interop.flagd_bucketing`), ``starts_with``,
  ``ends_with``, ``sem_ver`` and ``$ref`` to a shared evaluator of ``$evaluators``.

Truthiness is JavaScript's, plus JsonLogic's rule that an empty array is false. The data
an expression sees is flagd's: the context's attributes, ``targetingKey`` and
``$flagd: {flagKey, timestamp}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from flagmw.interop.flagd_bucketing import distribute

__all__ = ["JsonLogicError", "evaluate", "flagd_data", "truthy"]


class JsonLogicError(ValueError):
    """An expression flagd cannot evaluate (unknown operator, bad arguments)."""


def truthy(value: Any) -> bool:
    """JsonLogic truthiness (JavaScript's, with ``[]`` false)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | float):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str | list | tuple):
        return len(value) > 0
    return True


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _to_number(v: Any) -> float:
    """JavaScript's ToNumber for JSON values (NaN when there is none)."""
    if v is None:
        return 0.0
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if _is_num(v):
        return float(v)
    if isinstance(v, str):
        s = v.strip()
        if not s:
            return 0.0
        try:
            return (
                float(s) if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s) else math.nan
            )
        except ValueError:  # pragma: no cover - the pattern admits only numbers
            return math.nan
    return math.nan  # arrays and objects: treated as not comparable


def _js_string(v: Any) -> str:
    """JavaScript's String() for JSON values (``cat``)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    if isinstance(v, list):
        return ",".join("" if x is None else _js_string(x) for x in v)
    if isinstance(v, Mapping):
        return "[object Object]"
    return str(v)


def strict_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``===`` for JSON values."""
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return a is b
    return type(a) is type(b) and bool(a == b)


def loose_equal(a: Any, b: Any) -> bool:
    """JavaScript's ``==`` for JSON values."""
    if a is None or b is None:
        return a is None and b is None
    if type(a) is type(b) or (_is_num(a) and _is_num(b)):
        return strict_equal(a, b)
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        prim = b if isinstance(a, list | dict) else a
        obj = a if isinstance(a, list | dict) else b
        return loose_equal(_js_string(obj), prim)
    return _to_number(a) == _to_number(b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        x: Any = a
        y: Any = b
    else:
        x, y = _to_number(a), _to_number(b)
        if math.isnan(x) or math.isnan(y):
            return False
    return bool({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])


def _var(args: Any, data: Any) -> Any:
    if isinstance(args, list):
        name = args[0] if args else ""
        default = args[1] if len(args) > 1 else None
    else:
        name, default = args, None
    if name is None or name == "":
        return data
    current = data
    for part in str(name if not _is_num(name) else _js_string(name)).split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return default
    return current


_SEMVER = re.compile(
    r"^[vV]?(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def _semver_key(text: Any) -> tuple[int, int, int, tuple[tuple[int, int | str], ...] | None]:
    m = _SEMVER.match(str(text))
    if m is None:
        raise JsonLogicError(f"not a semantic version: {text!r}")
    pre = m.group(4)
    pre_key = (
        None
        if pre is None
        else tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    )
    return int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), pre_key


def _semver_cmp(a: Any, b: Any) -> int:
    ka, kb = _semver_key(a), _semver_key(b)
    if ka[:3] != kb[:3]:
        return -1 if ka[:3] < kb[:3] else 1
    pa, pb = ka[3], kb[3]
    if pa == pb:
        return 0
    if pa is None:  # a release is above its pre-releases
        return 1
    if pb is None:
        return -1
    return -1 if pa < pb else 1


def _sem_ver(args: list[Any]) -> Any:
    if len(args) != 3:
        return None
    a, op, b = args
    try:
        c = _semver_cmp(a, b)
        ka, kb = _semver_key(a), _semver_key(b)
    except JsonLogicError:
        return None
    table: dict[str, bool] = {
        "=": c == 0,
        "!=": c != 0,
        "<": c < 0,
        "<=": c <= 0,
        ">": c > 0,
        ">=": c >= 0,
        "^": ka[0] == kb[0],
        "~": ka[:2] == kb[:2],
    }
    return table.get(op)


def _fractional(args: list[Any], data: Any) -> Any:
    if not args:
        return None
    if isinstance(args[0], str):
        key: str | None = args[0]
        dist_args = args[1:]
    else:
        dist_args = args[1:] if args[0] is None else args
        tk = data.get("targetingKey") if isinstance(data, Mapping) else None
        flag_key = _var("$flagd.flagKey", data)
        # flagd (Go) hashes an empty targetingKey too; the Python in-process provider
        # answers null (the default variant) for it — docs/flagd.md
        key = f"{flag_key or ''}{tk}" if isinstance(tk, str) else None
    if key is None:
        return None
    dist: list[tuple[Any, int]] = []
    for item in dist_args:
        if not isinstance(item, list) or not 1 <= len(item) <= 2:
            return None
        weight = item[1] if len(item) == 2 else 1
        if isinstance(weight, bool) or not _is_num(weight) or weight != int(weight):
            return None
        dist.append((item[0], max(0, int(weight))))
    try:
        return distribute(key, dist)
    except ValueError:
        return None


def _string_op(args: list[Any], test: Callable[[str, str], bool]) -> Any:
    if len(args) != 2:
        return None
    a, b = args
    return isinstance(a, str) and isinstance(b, str) and test(a, b)


def _in(a: Any, b: Any) -> bool:
    if isinstance(b, list):
        return any(strict_equal(a, x) for x in b)
    if isinstance(b, str):
        return _js_string(a) in b
    return False


def evaluate(
    expr: Any,
    data: Any,
    evaluators: Mapping[str, Any] | None = None,
    _depth: int = 0,
) -> Any:
    """Evaluate ``expr`` against ``data``.

    Args:
        expr: a JsonLogic expression (JSON primitives).
        data: the data ``var`` reads (see :func:`flagd_data`).
        evaluators: the file's ``$evaluators`` (``{"$ref": name}`` is one of them).

    Raises:
        JsonLogicError: an unknown operator, an unknown ``$ref``, nesting deeper than 200.
    """
    if _depth > 200:
        raise JsonLogicError("expression nested too deeply")
    if isinstance(expr, list):
        return [evaluate(x, data, evaluators, _depth + 1) for x in expr]
    if not isinstance(expr, Mapping):
        return expr
    if len(expr) != 1:
        raise JsonLogicError(f"an operation has exactly one operator, got {sorted(expr)}")
    ((op, raw),) = expr.items()
    if op == "$ref":
        if not isinstance(raw, str) or evaluators is None or raw not in evaluators:
            raise JsonLogicError(f"unknown $ref {raw!r}")
        return evaluate(evaluators[raw], data, evaluators, _depth + 1)
    args_raw = raw if isinstance(raw, list) else [raw]

    def ev(x: Any) -> Any:
        return evaluate(x, data, evaluators, _depth + 1)

    if op in ("if", "?:"):
        i = 0
        while i + 1 < len(args_raw):
            if truthy(ev(args_raw[i])):
                return ev(args_raw[i + 1])
            i += 2
        return ev(args_raw[i]) if i < len(args_raw) else None
    if op == "and":
        value: Any = None
        for x in args_raw:
            value = ev(x)
            if not truthy(value):
                return value
        return value
    if op == "or":
        value = None
        for x in args_raw:
            value = ev(x)
            if truthy(value):
                return value
        return value
    if op == "var":
        return _var(ev(raw), data)
    args = [ev(x) for x in args_raw]
    if op == "==":
        return loose_equal(args[0], args[1])
    if op == "!=":
        return not loose_equal(args[0], args[1])
    if op == "===":
        return strict_equal(args[0], args[1])
    if op == "!==":
        return not strict_equal(args[0], args[1])
    if op == "!":
        return not truthy(args[0] if args else None)
    if op == "!!":
        return truthy(args[0] if args else None)
    if op in ("<", "<=") and len(args) == 3:
        return _compare(op, args[0], args[1]) and _compare(op, args[1], args[2])
    if op in ("<", "<=", ">", ">="):
        return _compare(op, args[0], args[1]) if len(args) >= 2 else False
    if op == "in":
        return _in(args[0], args[1]) if len(args) == 2 else False
    if op == "cat":
        return "".join(_js_string(a) for a in args)
    if op == "+":
        return sum(_to_number(a) for a in args)
    if op == "fractional":
        return _fractional(args, data)
    if op == "starts_with":
        return _string_op(args, str.startswith)
    if op == "ends_with":
        return _string_op(args, str.endswith)
    if op == "sem_ver":
        return _sem_ver(args)
    raise JsonLogicError(f"unknown operator {op!r}")


def flagd_data(
    flag_key: str, targeting_key: str | None, attributes: Mapping[str, Any], timestamp: int = 0
) -> dict[str, Any]:
    """The data flagd gives a flag's targeting: the attributes, ``targetingKey`` and
    ``$flagd`` (``flagKey``, ``timestamp`` in seconds)."""
    data = dict(attributes)
    data["targetingKey"] = targeting_key
    data["$flagd"] = {"flagKey": flag_key, "timestamp": timestamp}
    return data
