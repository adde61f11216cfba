"""The evaluation context: what a run is, as far as targeting is concerned.

**Identifiers are untrusted input** (a user id comes from a request header, a JSON body,
a command-line argument). :class:`EvaluationContext` normalises every id field
(``tenant_id``, ``user_id``, ``route``, ``thread_id``, ``run_id``, ``plan``,
``environment``) when it is built, so that no id can crash the resolver, the hash, the
pin, the trace or a terminal, and every valid id stays exactly as it was (its bucket
does not move):

* a ``str`` that is valid Unicode is kept as it is (the same object);
* a ``str`` holding a lone surrogate (``"\\udcff"``: an undecodable byte, which Python
  hands over that way) becomes its visible escape, the six characters ``\\udcff``
  (:func:`valid_text`) — the id the run is resolved, pinned and traced with;
* an ``int`` (not a ``bool``) and a :class:`uuid.UUID` become their text: user ``42``
  and ``"42"`` are the same user;
* None, and any other value (``bool``, ``float``, ``bytes``, a list, a mapping, an
  object) — not an id — is None: the context has no such id, so an overlay, rollout or
  experiment on it does not apply.

Free attributes are made JSON-safe by :meth:`EvaluationContext.valid` (text made valid
Unicode, huge integers and non-finite floats as text).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Self

__all__ = ["WELL_KNOWN_ATTRIBUTES", "EvaluationContext", "valid_text"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})

#: Context attributes with a field of their own; every other attribute name used in a
#: condition is looked up in :attr:`EvaluationContext.attributes`.
WELL_KNOWN_ATTRIBUTES = (
    "environment",
    "tenant_id",
    "user_id",
    "route",
    "thread_id",
    "run_id",
    "plan",
)


def valid_text(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate (``"\\ud800"``: not encodable as
    UTF-8, e.g. an undecodable byte of a header or an argument, which Python hands over as
    ``"\\udcff"``) is replaced by its escape (the six characters ``\\ud800``); any
    other text is returned as it is. Ids from requests go through it before they are
    pinned, traced or canonicalised (RFC 8785 refuses lone surrogates)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


#: The integers JSON (I-JSON, RFC 7493, which RFC 8785 canonicalisation requires) holds
#: exactly: ±(2**53 - 1).
MAX_SAFE_INTEGER = 2**53 - 1


def context_id(value: object) -> str | None:
    """An id field's value as the context keeps it (see the module docs): valid text
    unchanged, a lone surrogate escaped, an ``int`` or a UUID as its text, anything else
    None."""
    if type(value) is str:
        return value if value.isascii() else valid_text(value)
    if value is None:
        return None
    if isinstance(value, str):  # a str subclass: plain text
        return valid_text(str.__str__(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return None


def _valid(value: Any) -> Any:
    """``value`` itself unless it is text that :func:`valid_text` changes, an integer
    outside ±(2**53 - 1) or a float that is not finite — those become their text, which
    JSON, the pin and the trace can hold."""
    kind = type(value)
    if kind is str:
        return value if value.isascii() else valid_text(value)
    if kind is int and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return str(value)
    if kind is float and not math.isfinite(value):
        return str(value)
    return value


class _ContextFields(NamedTuple):
    tenant_id: str | None = None
    user_id: str | None = None
    route: str | None = None
    thread_id: str | None = None
    run_id: str | None = None
    plan: str | None = None
    environment: str | None = None
    attributes: Mapping[str, Any] = _EMPTY


class EvaluationContext(_ContextFields):
    """What a run is: the input of targeting rules, rollouts and experiments.

    An immutable tuple; build a changed copy with ``ctx._replace(route="x")``. Every id
    field is normalised when the context is built (:func:`context_id`: valid text
    as it is, a lone surrogate escaped, an ``int`` or UUID as text, any other value
    None), so no id crashes the resolver and valid ids keep their buckets.

    Attributes:
        tenant_id: the customer (tenant overlay, ``unit: tenant`` bucketing).
        user_id: the end user (``unit: user`` bucketing).
        route: the agent profile, e.g. ``"refund-assistant"`` (route overlay). The
            LangGraph wrapper defaults it to the graph's name.
        thread_id: the LangGraph thread (``unit: thread`` bucketing).
        run_id: the run (``unit: run`` bucketing).
        plan: the tenant's or user's plan, e.g. ``"enterprise"``.
        environment: the deployment environment; None means the client's.
        attributes: free attributes (JSON primitives) for conditions, e.g.
            ``{"region": "eu", "seats": 40}``. Treat the mapping as immutable.
    """

    __slots__ = ()

    def __new__(
        cls,
        tenant_id: str | None = None,
        user_id: str | None = None,
        route: str | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        plan: str | None = None,
        environment: str | None = None,
        attributes: Mapping[str, Any] = _EMPTY,
    ) -> EvaluationContext:
        return tuple.__new__(
            cls,
            (
                context_id(tenant_id),
                context_id(user_id),
                context_id(route),
                context_id(thread_id),
                context_id(run_id),
                context_id(plan),
                context_id(environment),
                _EMPTY if attributes is None else attributes,
            ),
        )

    @classmethod
    def _of_valid_ids(
        cls, ids: Mapping[str, str], attributes: Mapping[str, Any] = _EMPTY
    ) -> EvaluationContext:
        """Internal: the context of ``ids`` (id field name → text) whose text is valid
        already — each is what :func:`valid_text` returns for it, so :func:`context_id`
        would keep it as it is — without the per-field normalisation of the
        constructor: equal to ``cls(**ids, attributes=attributes)`` for such ids. For
        builders that normalised the ids themselves (the LangGraph wrapper's
        ``context_from_config``, once per run)."""
        get = ids.get
        return tuple.__new__(
            cls,
            (
                get("tenant_id"),
                get("user_id"),
                get("route"),
                get("thread_id"),
                get("run_id"),
                get("plan"),
                get("environment"),
                attributes,
            ),
        )

    def _replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, normalised as the constructor does."""
        return type(self)(**{**self._asdict(), **changes})

    def get(self, name: str, default: Any = None) -> Any:
        """The value of attribute ``name`` (a field or a free attribute)."""
        if name in WELL_KNOWN_ATTRIBUTES:
            value = getattr(self, name)
            return default if value is None else value
        return self.attributes.get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives; None fields and empty attributes are left out."""
        out: dict[str, Any] = {}
        for name in WELL_KNOWN_ATTRIBUTES:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationContext:
        """Inverse of :meth:`to_dict`. Unknown top-level names become free attributes."""
        fields: dict[str, Any] = {}
        attributes = dict(data.get("attributes") or {})
        for name, value in data.items():
            if name == "attributes":
                continue
            if name in WELL_KNOWN_ATTRIBUTES:
                fields[name] = None if value is None else str(value)
            else:
                attributes[name] = value
        if attributes:
            fields["attributes"] = MappingProxyType(attributes)
        return cls(**fields)

    def valid(self) -> EvaluationContext:
        """A copy that JSON, RFC 8785 and the pin can hold: text made valid Unicode
        (:func:`valid_text` on every field, free attribute name and string value), free
        attribute integers beyond ±(2**53 - 1) and non-finite floats as their text;
        ``self`` when nothing changes. The LangGraph
        wrapper applies it to every run's context, so a lone surrogate in a user id can
        neither crash a run nor make its pin unencodable."""
        changed: dict[str, Any] = {}
        for name in WELL_KNOWN_ATTRIBUTES:
            value = getattr(self, name)
            clean = _valid(value)
            if clean is not value:
                changed[name] = clean
        attrs = self.attributes
        if attrs and not all(
            type(k) is str and _valid(k) is k and _valid(v) is v for k, v in attrs.items()
        ):
            changed["attributes"] = MappingProxyType(
                {valid_text(k if type(k) is str else str(k)): _valid(v) for k, v in attrs.items()}
            )
        return self._replace(**changed) if changed else self

    def frozen(self) -> EvaluationContext:
        """A copy whose free attributes are a read-only snapshot (used when a context is
        stored in a RunConfig)."""
        if not self.attributes or isinstance(self.attributes, MappingProxyType):
            return self
        return self._replace(attributes=MappingProxyType(dict(self.attributes)))
