"""Shapes the snapshot validator accepts without building a pydantic model: the common
tenant overlay (no fields but ``requires``/``description``) and the common rule (name,
set, when, description) — what the models would accept as they are — and the scalar
types whose check the validator remembers per flag key. For 100k-tenant documents
(issue 8 §3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flagmw.core import snapshot_spec as specs

if TYPE_CHECKING:  # pragma: no cover - the models are imported when a document is validated
    from flagmw.core.snapshot_spec import OverlaySpec

__all__ = ["SCALARS", "PlainSpec", "plain_overlay", "plain_rule"]

# values whose check is remembered per key (floats are not: -0.0 == 0.0)
SCALARS = frozenset({str, int, bool, type(None)})
PLAIN_FIELDS = frozenset({"requires", "description"})


class PlainSpec:
    """What :meth:`DocumentValidator.overlay` reads of a parsed overlay spec."""

    __slots__ = ("description",)

    def __init__(self, description: str) -> None:
        self.description = description


class PlainRule:
    """What :meth:`DocumentValidator.rules` reads of a parsed :class:`RuleSpec`."""

    __slots__ = ("description", "name", "rollout", "set_", "when")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.name = raw["name"]
        self.description = raw.get("description", "")
        self.when = raw.get("when")
        self.rollout = None
        self.set_ = raw["set"]


PLAIN_RULE_FIELDS = frozenset({"name", "set", "when", "description"})


def plain_rule(raw: Any) -> PlainRule | None:
    """``raw`` as a rule when it is one the model accepts as it is (name, set, and
    optionally when and description, well typed, no rollout); None: parse the model."""
    if (
        type(raw) is dict
        and "name" in raw
        and "set" in raw
        and not raw.keys() - PLAIN_RULE_FIELDS
        and type(raw["name"]) is str
        and raw["name"]
        and type(raw["set"]) is dict
        and type(raw.get("when", {})) is dict
        and type(raw.get("description", "")) is str
        and all(type(k) is str for k in raw["set"])
        and all(type(k) is str for k in raw.get("when", ()))
    ):
        return PlainRule(raw)
    return None


def plain_overlay(structure: dict[str, Any], spec_cls: type[OverlaySpec]) -> bool:
    """True when ``structure`` (an overlay without values and rules) is one the spec
    model accepts as it is: no other fields, a str description, a list of str requires
    (tenants only)."""
    if not structure:
        return True
    if structure.keys() - PLAIN_FIELDS:
        return False
    if not isinstance(structure.get("description", ""), str):
        return False
    if "requires" in structure:
        requires = structure["requires"]
        return (
            spec_cls is specs.TenantSpec
            and type(requires) is list
            and all(type(k) is str for k in requires)
        )
    return True
