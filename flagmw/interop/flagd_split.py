"""flagd ``fractional`` expressions read as flagmw experiments and rollouts.

A ``fractional`` is imported only when flagmw can reproduce its buckets exactly (with
``bucketing: flagd``, :mod:`flagmw.core.bucketing`): its bucketing key must be a
flagmw unit (``targetingKey`` → ``user``, ``tenant_id``, ``thread_id``, ``run_id``),
optionally after a constant prefix (string literals and ``$flagd.flagKey``) — the
shorthand form hashes ``flagKey + targetingKey``. Weights whose total divides 10 000 are
carried exactly in basis points; others are rounded to 0.01 % (reported).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagmw.core.bucketing import BUCKETS
from flagmw.interop.flagd_conditions import Unsupported

__all__ = ["Split", "parse_fractional", "split_rollout"]

#: flagd context attribute → flagmw bucketing unit.
UNITS = {"targetingKey": "user", "tenant_id": "tenant", "thread_id": "thread", "run_id": "run"}


@dataclass
class Split:
    """A parsed ``fractional``.

    Attributes:
        unit, salt: flagmw's bucketing unit and salt (``bucketing: flagd``).
        entries: ``(variant name or None, weight)`` in the order written.
        total: the sum of the weights.
        bps: each entry's share in basis points (summing to 10 000).
        rounded: the weights had to be rounded to basis points.
        text_key: the key is a ``cat`` expression: flagd hashes a missing unit as the
            text ``null`` where flagmw assigns nothing (unless the branch requires the unit).
    """

    unit: str
    salt: str
    entries: list[tuple[str | None, int]]
    total: int
    bps: list[int]
    rounded: bool
    text_key: bool = False

    def names(self) -> list[str | None]:
        """The variant names it returns (None: flagd's default variant)."""
        return [name for name, _ in self.entries]

    def experiment(self, key: str, variants: Mapping[str, Any], default: Any) -> dict[str, Any]:
        """The flagmw experiment on ``key`` (without ``when``)."""
        names: dict[str, Any] = {}
        weights: dict[str, float] = {}
        for (name, _), bps in zip(self.entries, self.bps, strict=True):
            label = "null" if name is None else name
            base, n = label, 2
            while label in names:
                label, n = f"{base}-{n}", n + 1
            names[label] = default if name is None else variants[name]
            weights[label] = bps / 100
        return {
            "flag": key,
            "unit": self.unit,
            "salt": self.salt,
            "bucketing": "flagd",
            "variants": names,
            "weights": weights,
        }


def _bucket_key(node: Any, flag_key: str) -> tuple[str, str]:
    """(unit, salt) of a bucketing-key expression."""
    if isinstance(node, Mapping) and len(node) == 1 and "var" in node:
        name = node["var"]
        if isinstance(name, str) and name in UNITS:
            return UNITS[name], ""
        raise Unsupported(
            f"fractional bucketed by {name!r}: flagmw buckets by targetingKey (user), "
            "tenant_id, thread_id or run_id"
        )
    if isinstance(node, Mapping) and len(node) == 1 and "cat" in node:
        parts = node["cat"] if isinstance(node["cat"], list) else [node["cat"]]
        if parts:
            salt = ""
            for part in parts[:-1]:
                if isinstance(part, str):
                    salt += part
                elif part == {"var": "$flagd.flagKey"}:
                    salt += flag_key
                else:
                    raise Unsupported(f"fractional key part {part!r}: only text and $flagd.flagKey")
            unit, extra = _bucket_key(parts[-1], flag_key)
            return unit, salt + extra
    raise Unsupported(f"fractional bucketing key {node!r}")


def _weight(item: Any) -> int:
    if len(item) < 2:
        return 1
    w = item[1]
    if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
        raise Unsupported(f"fractional weight {w!r} is not a number")
    if w != int(w) or w < 0:
        raise Unsupported(f"fractional weight {w!r} is not a non-negative integer")
    return int(w)


def parse_fractional(args: Any, flag_key: str) -> Split:
    """Parse the arguments of ``{"fractional": args}`` in flag ``flag_key``.

    Raises:
        Unsupported: a bucketing key flagmw cannot reproduce, a malformed distribution.
    """
    if not isinstance(args, list) or not args:
        raise Unsupported("fractional takes a list")
    first = args[0]
    if isinstance(first, list):
        unit, salt, dist = "user", flag_key, args
    elif first is None:
        unit, salt, dist = "user", flag_key, args[1:]
    else:
        unit, salt = _bucket_key(first, flag_key)
        dist = args[1:]
    entries: list[tuple[str | None, int]] = []
    for item in dist:
        if not isinstance(item, list) or not 1 <= len(item) <= 2:
            raise Unsupported(f"fractional entry {item!r} is not [variant, weight]")
        name = item[0]
        if isinstance(name, bool):
            name = "true" if name else "false"
        if name is not None and not isinstance(name, str):
            raise Unsupported(f"fractional variant {name!r} is not a variant name")
        entries.append((name, _weight(item)))
    total = sum(w for _, w in entries)
    if not entries or total <= 0:
        raise Unsupported("fractional with no weight")
    if BUCKETS % total == 0:
        bps = [w * (BUCKETS // total) for _, w in entries]
        rounded = False
    else:  # largest remainder, so the shares still add up to 10 000
        raw = [w * BUCKETS / total for _, w in entries]
        bps = [math.floor(x) for x in raw]
        order = sorted(range(len(raw)), key=lambda i: raw[i] - bps[i], reverse=True)
        for i in order[: BUCKETS - sum(bps)]:
            bps[i] += 1
        rounded = True
    text_key = isinstance(first, Mapping) and "cat" in first
    return Split(unit, salt, entries, total, bps, rounded, text_key)


def _compared(node: Any, flag_key: str) -> dict[str, Any] | None:
    """A rollout from ``{"===": [{"fractional": …}, "in"]}`` (either side, ``==`` too)."""
    if not (isinstance(node, Mapping) and len(node) == 1):
        return None
    ((op, args),) = node.items()
    if op not in ("==", "===") or not isinstance(args, list) or len(args) != 2:
        return None
    frac = next((a for a in args if isinstance(a, Mapping) and "fractional" in a), None)
    if frac is None or len(frac) != 1:
        return None
    want = args[1] if args[0] is frac else args[0]
    if isinstance(want, bool):
        want = "true" if want else "false"
    if not isinstance(want, str):
        raise Unsupported("a fractional compared with something other than a variant name")
    split = parse_fractional(frac["fractional"], flag_key)
    if split.rounded:
        raise Unsupported(f"a fractional rollout whose weights total {split.total}")
    admitted = 0
    done = False
    for (name, _), bps in zip(split.entries, split.bps, strict=True):
        if bps == 0:
            continue
        if name == want and not done:
            admitted += bps
        elif name == want:
            raise Unsupported("a fractional rollout whose admitted share is not one range")
        else:
            done = True
    rollout: dict[str, Any] = {
        "percent": admitted / 100,
        "unit": split.unit,
        "salt": split.salt,
        "bucketing": "flagd",
    }
    if split.text_key:
        rollout["_text_key"] = True  # taken out by the importer (see Split.text_key)
    return rollout


def _is_and(node: Any) -> bool:
    return isinstance(node, Mapping) and len(node) == 1 and isinstance(node.get("and"), list)


def split_rollout(cond: Any, flag_key: str = "") -> tuple[Any, dict[str, Any] | None]:
    """Take a rollout (a ``fractional`` compared with a variant name) out of a branch
    condition: ``(the rest of the condition, the rollout or None)``. Only a rollout at
    the top of the condition, or a term of its top ``and``, is recognised.

    Raises:
        Unsupported: two rollouts, or a rollout flagmw cannot reproduce.
    """
    found = _compared(cond, flag_key)
    if found is not None:
        return True, found
    if isinstance(cond, Mapping) and len(cond) == 1 and isinstance(cond.get("and"), list):
        rest, rollout = [], None
        terms = list(cond["and"])
        while any(_is_and(t) for t in terms):  # nested ands are one conjunction
            terms = [x for t in terms for x in (t["and"] if _is_and(t) else [t])]
        for term in terms:
            got = _compared(term, flag_key)
            if got is None:
                rest.append(term)
            elif rollout is not None:
                raise Unsupported("two fractional rollouts in one condition")
            else:
                rollout = got
        if rollout is not None:
            return ({"and": rest} if len(rest) > 1 else rest[0] if rest else True), rollout
    return cond, None
