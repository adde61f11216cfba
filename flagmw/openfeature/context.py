"""OpenFeature evaluation context → flagmw :class:`~flagmw.core.context.EvaluationContext`.

OpenFeature's context is a ``targeting_key`` and a mapping of attributes; flagmw's has
id fields of its own (``tenant_id``, ``user_id``, ``route``, ``thread_id``, ``run_id``,
``plan``, ``environment``) and free attributes. :class:`ContextMapping` says how one
becomes the other:

* the ``targeting_key`` fills one id field (``user_id`` by default; ``tenant_id``,
  ``thread_id`` or ``run_id`` when the application's targeting key is one of those);
* an attribute named like an id field (``tenant_id``, ``user_id``, ``route``,
  ``thread_id``, ``run_id``, ``plan``, ``environment``) or one of its aliases
  (``tenant``, ``tenantId``, ``org_id``, ``userId``, ``threadId``, ``runId`` by
  default) fills that field;
* every other attribute is a free attribute for conditions; a ``datetime`` becomes its
  ISO 8601 text (flagmw conditions compare JSON scalars).

A context that cannot be mapped — an id attribute that is not text or an integer, two
different values for one field (the targeting key and an attribute), an attribute
that is not JSON — raises :class:`InvalidContext`, which the provider reports as
``INVALID_CONTEXT``. Nothing here imports OpenFeature: the mapping is tested alone.
"""

from __future__ import annotations

import datetime as _dt
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from flagmw.core.context import WELL_KNOWN_ATTRIBUTES, EvaluationContext

__all__ = ["DEFAULT_ALIASES", "ContextMapping", "InvalidContext", "to_flagmw_context"]

TargetField = Literal["user_id", "tenant_id", "thread_id", "run_id"]

#: Attribute names other ecosystems use for flagmw's id fields.
DEFAULT_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "tenant": "tenant_id",
        "tenantId": "tenant_id",
        "org_id": "tenant_id",
        "orgId": "tenant_id",
        "userId": "user_id",
        "threadId": "thread_id",
        "runId": "run_id",
    }
)

_MAX_DEPTH = 32


class InvalidContext(ValueError):
    """An OpenFeature context that does not map onto a flagmw context (the message
    names the attribute and what is wrong)."""


@dataclass(frozen=True, slots=True)
class ContextMapping:
    """How an OpenFeature context maps onto a flagmw one (see the module docs).

    Attributes:
        targeting_key: the flagmw id field the ``targeting_key`` fills (``user_id``
            by default; ``tenant_id``, ``thread_id`` or ``run_id``).
        aliases: attribute name → flagmw id field, besides the field names themselves.
    """

    targeting_key: TargetField = "user_id"
    aliases: Mapping[str, str] = field(default_factory=lambda: DEFAULT_ALIASES)

    def __post_init__(self) -> None:
        if self.targeting_key not in ("user_id", "tenant_id", "thread_id", "run_id"):
            raise ValueError(
                f"targeting_key maps to user_id, tenant_id, thread_id or run_id, "
                f"not {self.targeting_key!r}"
            )
        bad = {a: f for a, f in self.aliases.items() if f not in WELL_KNOWN_ATTRIBUTES}
        if bad:
            raise ValueError(
                f"aliases must name flagmw context fields {WELL_KNOWN_ATTRIBUTES}; got {bad}"
            )


def _id(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise InvalidContext(
        f"context attribute {name!r} is an id and must be text or an integer, "
        f"not {type(value).__name__}"
    )


def _json(name: str, value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise InvalidContext(f"context attribute {name!r} is nested deeper than {_MAX_DEPTH}")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidContext(f"context attribute {name!r} is {value}, not a finite number")
        return value
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidContext(f"context attribute {name!r} has a key that is not text")
            out[k] = _json(name, v, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_json(name, v, depth + 1) for v in value]
    raise InvalidContext(
        f"context attribute {name!r} holds a {type(value).__name__}, which is not JSON"
    )


def to_flagmw_context(
    targeting_key: str | None,
    attributes: Mapping[str, Any] | None,
    mapping: ContextMapping = ContextMapping(),
) -> EvaluationContext:
    """The flagmw context for an OpenFeature ``targeting_key`` and ``attributes``.

    Raises:
        InvalidContext: the context does not map (see the module docs).
    """
    fields: dict[str, str] = {}
    if targeting_key is not None and targeting_key != "":
        fields[mapping.targeting_key] = _id("targeting_key", targeting_key)
    free: dict[str, Any] = {}
    for name, value in (attributes or {}).items():
        if not isinstance(name, str):
            raise InvalidContext(f"context attribute name {name!r} is not text")
        target = name if name in WELL_KNOWN_ATTRIBUTES else mapping.aliases.get(name)
        if target is None:
            free[name] = _json(name, value)
            continue
        if value is None:
            continue
        text = _id(name, value)
        known = fields.get(target)
        if known is not None and known != text:
            raise InvalidContext(
                f"context attribute {name!r} ({text!r}) contradicts the {target} "
                f"already given ({known!r}, from the targeting key or another attribute)"
            )
        fields[target] = text
    return EvaluationContext(
        **fields,
        attributes=MappingProxyType(free) if free else MappingProxyType({}),
    )
