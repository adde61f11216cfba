"""The evaluation context: what a run is, as far as targeting is concerned."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["WELL_KNOWN_ATTRIBUTES", "EvaluationContext"]

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


class EvaluationContext(NamedTuple):
    """What a run is: the input of targeting rules, rollouts and experiments.

    An immutable tuple; build a changed copy with ``ctx._replace(route="x")``.

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

    tenant_id: str | None = None
    user_id: str | None = None
    route: str | None = None
    thread_id: str | None = None
    run_id: str | None = None
    plan: str | None = None
    environment: str | None = None
    attributes: Mapping[str, Any] = _EMPTY

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

    def frozen(self) -> EvaluationContext:
        """A copy whose free attributes are a read-only snapshot (used when a context is
        stored in a RunConfig)."""
        if not self.attributes or isinstance(self.attributes, MappingProxyType):
            return self
        return self._replace(attributes=MappingProxyType(dict(self.attributes)))
