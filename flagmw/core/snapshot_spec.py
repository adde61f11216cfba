"""The structure of a snapshot document: its format version, its sections, the
pydantic models of its parts (rules, rollouts, overlays, experiments) and the empty
document. See ``docs/flags-file.md`` for every field."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

__all__ = [
    "FORMAT_VERSION",
    "OVERLAY_FIELDS",
    "SECTIONS",
    "ExperimentSpec",
    "OverlaySpec",
    "RolloutSpec",
    "RuleSpec",
    "TenantSpec",
    "bucketing_fields",
    "empty_document",
]

#: The version of the snapshot document format.
FORMAT_VERSION = 1

SECTIONS = (
    "version",
    "description",
    "flags",
    "environments",
    "values",
    "rules",
    "segments",
    "tenants",
    "routes",
    "experiments",
)

Unit = Literal["user", "tenant", "thread", "run"]
Bucketing = Literal["flagmw", "flagd"]


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class RolloutSpec(_Strict):
    """A sticky percentage: the rule applies to ``percent`` % of units."""

    percent: float = pydantic.Field(ge=0, le=100)
    unit: Unit = "user"
    salt: str | None = None
    # "flagd": flagd's fractional bucketing (flagmw/core/bucketing.py); kept out of the
    # normalised document when it is the default, so existing content hashes hold
    bucketing: Bucketing = "flagmw"


class RuleSpec(_Strict):
    """A conditional value: the first matching rule of a layer wins per key."""

    name: str = pydantic.Field(min_length=1)
    description: str = ""
    when: dict[str, Any] | None = None
    rollout: RolloutSpec | None = None
    set_: dict[str, Any] = pydantic.Field(alias="set")


class OverlaySpec(_Strict):
    """The values and rules of one environment, tenant or route."""

    description: str = ""
    values: dict[str, Any] = {}
    rules: list[RuleSpec] = []


class TenantSpec(OverlaySpec):
    """A tenant overlay; ``requires`` lists protected flags the tenant requires on."""

    requires: list[str] = []


class ExperimentSpec(_Strict):
    """A weighted split of one flag into variants, by a sticky hash of a unit."""

    flag: str
    description: str = ""
    unit: Unit = "user"
    when: dict[str, Any] | None = None
    variants: dict[str, Any]
    # a mapping as written (the normalised list of [variant, weight] pairs is turned back
    # into a mapping before parsing)
    weights: dict[str, float]
    salt: str | None = None
    bucketing: Bucketing = "flagmw"
    enabled: bool = True
    # the written position; set when a document is normalised (so that the order, which
    # decides between experiments on one flag, is part of the content hash). Derived
    # from the position again whenever a document is validated.
    order: int | None = None


OVERLAY_FIELDS = ("description", "values", "rules")


def bucketing_fields(spec: RolloutSpec | ExperimentSpec, default_salt: str) -> dict[str, Any]:
    """The normalised ``salt`` of a rollout or an experiment (``default_salt``, its rule's
    or its own name, when none is given) and its ``bucketing`` when it is not the default
    ``flagmw`` (left out otherwise, so documents written before it keep their content
    hash). An empty salt is kept in ``flagd`` mode only: flagd can hash the unit alone."""
    keep_empty = spec.salt == "" and spec.bucketing == "flagd"
    out: dict[str, Any] = {"salt": spec.salt if spec.salt or keep_empty else default_salt}
    if spec.bucketing != "flagmw":
        out["bucketing"] = spec.bucketing
    return out


def empty_document() -> dict[str, Any]:
    """The normalised document with every section present and empty."""
    return {
        "version": FORMAT_VERSION,
        "environments": {},
        "values": {},
        "rules": [],
        "segments": {},
        "tenants": {},
        "routes": {},
        "experiments": {},
    }
