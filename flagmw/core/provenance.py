"""Provenance: which layer, scope, rule, experiment or override a resolved value came
from, and the :class:`Layer` names of the resolution order (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["DEFAULT_PROVENANCE", "LAYER_ORDER", "Layer", "Provenance"]


class Layer(StrEnum):
    """The resolution layers, lowest precedence first (DESIGN §2)."""

    DEFAULT = "default"
    ENVIRONMENT = "environment"
    SNAPSHOT = "snapshot"
    TENANT = "tenant"
    ROUTE = "route"
    VERSION = "version"
    EXPERIMENT = "experiment"
    OVERRIDE = "override"


#: Layer → precedence (higher wins).
LAYER_ORDER: Mapping[Layer, int] = {layer: i for i, layer in enumerate(Layer)}


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where one resolved value came from.

    Attributes:
        layer: the layer that won.
        rev: the snapshot rev the value came from (None for ``default``, process
            variables and overrides).
        scope: the layer's scope: the environment name or ``FF_…`` process variable
            (environment), the tenant id (tenant), the route (route), or
            ``global`` / ``tenant:<id>`` / ``route:<name>`` (override).
        rule: the name of the rule that produced it, when a rule did.
        experiment, variant: the experiment and the variant assigned, for ``experiment``;
            the rollout and the stage (percent, as text), for ``version`` (whose
            ``scope`` is the version).
        override_id, reason: the override and its reason, for ``override``.
    """

    layer: Layer
    rev: int | None = None
    scope: str | None = None
    rule: str | None = None
    experiment: str | None = None
    variant: str | None = None
    override_id: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives; None fields are left out."""
        out: dict[str, Any] = {"layer": self.layer.value}
        for name in ("rev", "scope", "rule", "experiment", "variant", "override_id", "reason"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`."""
        return cls(
            Layer(data["layer"]),
            data.get("rev"),
            data.get("scope"),
            data.get("rule"),
            data.get("experiment"),
            data.get("variant"),
            data.get("override_id"),
            data.get("reason"),
        )

    def describe(self) -> str:
        """A short human form, e.g. ``tenant acme rule enterprise @rev 3``."""
        if self.layer is Layer.VERSION:
            return _describe_version(self)
        parts = [self.layer.value]
        if self.scope:
            parts.append(self.scope)
        if self.rule:
            parts.append(f"rule {self.rule}")
        if self.experiment:
            parts.append(f"{self.experiment}={self.variant}")
        if self.override_id:
            parts.append(self.override_id)
        if self.rev is not None:
            parts.append(f"@rev {self.rev}")
        return " ".join(parts)


def _describe_version(p: Provenance) -> str:
    # "version v1.3.3 (rollout support-agent-1.3.3, stage 25 %)"
    text = f"version {p.scope}"
    inner = []
    if p.experiment:
        inner.append(f"rollout {p.experiment}")
    if p.variant:
        inner.append(f"stage {p.variant} %")
    return f"{text} ({', '.join(inner)})" if inner else text


DEFAULT_PROVENANCE = Provenance(Layer.DEFAULT)
