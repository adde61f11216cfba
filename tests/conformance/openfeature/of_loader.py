"""Load the OpenFeature conformance suites' ``test-flags.json`` into flagmw: a registry, a
snapshot document, the kills to make, the variant names and the flags' own metadata.

``test-flags.json`` is flagd-like: each flag has named ``variants``, a ``defaultVariant``,
optionally ``disabled: true``, ``flagMetadata`` and a ``contextEvaluator`` written in
CEL. The translation, flag by flag:

* the flag type comes from the variant values (all bool → ``bool``, all int → ``int``,
  numbers with a float → ``float``, all text → ``string``, mappings/lists → ``json``);
* the registry default is the default variant's value; a flag without a
  ``contextEvaluator`` also gets it as a snapshot value (so it is ``STATIC``, as in
  flagd), a flag with one gets a snapshot rule instead (``TARGETING_MATCH`` when it
  matches, else the registry default: ``DEFAULT``);
* ``disabled: true`` on a bool flag is a kill (``DISABLED``, value false);
* the CEL subset the file uses — ``cond && cond … ? 'variant' : ''`` with ``!attr``,
  ``attr == 'text'`` and ``attr > number`` — becomes a flagmw ``when`` mapping; anything
  else raises :class:`Unsupported`.

Flags flagmw cannot express are returned in ``skipped`` with the reason (never loaded
half-way).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Loaded", "Unsupported", "cel_to_when", "load"]


class Unsupported(ValueError):
    """A part of the file flagmw cannot express (the message says which)."""


@dataclass
class Loaded:
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    document: dict[str, Any] = field(default_factory=lambda: {"values": {}, "rules": []})
    kills: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


_TERM_EQ = re.compile(r"^(\w+)\s*==\s*'([^']*)'$")
_TERM_CMP = re.compile(r"^(\w+)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)$")
_TERM_NOT = re.compile(r"^!\s*(\w+)$")
_TERNARY = re.compile(r"^(.*)\?\s*'([^']*)'\s*:\s*'([^']*)'$")
_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def cel_to_when(expression: str) -> tuple[dict[str, Any], str, str]:
    """``"a == 'x' && !b && c > 10 ? 'v' : ''"`` → (``when``, ``"v"``, ``""``).

    Raises:
        Unsupported: not of that shape.
    """
    m = _TERNARY.match(expression.strip())
    if m is None:
        raise Unsupported(f"not a `condition ? 'variant' : 'variant'` CEL expression: {expression}")
    when: dict[str, Any] = {}
    for term in (t.strip() for t in m.group(1).split("&&")):
        if eq := _TERM_EQ.match(term):
            when[eq.group(1)] = {"equals": eq.group(2)}
        elif cmp := _TERM_CMP.match(term):
            number = float(cmp.group(3)) if "." in cmp.group(3) else int(cmp.group(3))
            when[cmp.group(1)] = {_OPS[cmp.group(2)]: number}
        elif neg := _TERM_NOT.match(term):
            # CEL's `!attr` is true for a false bool (a missing attribute is an error:
            # no match), which is flagmw's `equals: false` (missing: no match)
            when[neg.group(1)] = {"equals": False}
        else:
            raise Unsupported(f"CEL term {term!r} (in {expression!r})")
    return when, m.group(2), m.group(3)


def _type_of(values: list[Any]) -> tuple[str, dict[str, Any]]:
    if all(type(v) is bool for v in values):
        return "bool", {}
    if all(type(v) is int for v in values):
        return "int", {}
    if all(type(v) in (int, float) for v in values):
        return "float", {}
    if all(type(v) is str for v in values):
        return "string", {}
    if all(isinstance(v, dict | list) for v in values):
        return "json", {}
    raise Unsupported(f"variants of mixed types: {values!r}")


def load(path: Path) -> Loaded:
    """Translate ``test-flags.json`` (see the module docs)."""
    data = json.loads(path.read_text())
    out = Loaded()
    for key, spec in data.items():
        variants: dict[str, Any] = spec["variants"]
        default_variant = spec.get("defaultVariant")
        if default_variant is None:
            out.skipped[key] = (
                "no defaultVariant: flagd then answers the caller's default, but every "
                "flagmw flag has a registry default"
            )
            continue
        try:
            kind, extra = _type_of(list(variants.values()))
            rule = None
            if spec.get("contextEvaluator"):
                when, hit, miss = cel_to_when(spec["contextEvaluator"])
                if miss:
                    raise Unsupported(f"a non-empty else-variant {miss!r}")
                rule = {"name": f"{key}/{hit}", "when": when, "set": {key: variants[hit]}}
        except Unsupported as exc:
            out.skipped[key] = str(exc)
            continue
        default = variants[default_variant]
        if kind == "float":
            default = float(default)
        out.flags[key] = {"type": kind, "default": default, "owner": "conformance", **extra}
        if rule is not None:
            out.document["rules"].append(rule)
        else:
            out.document["values"][key] = default
        out.variants[key] = dict(variants)
        if spec.get("flagMetadata"):
            out.metadata[key] = dict(spec["flagMetadata"])
        if spec.get("disabled"):
            (out.kills if kind == "bool" else out.disabled).append(key)
    return out
