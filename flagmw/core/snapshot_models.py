"""The pydantic models of the parts of a snapshot document (rules, rollouts, overlays,
experiments), imported when a document is validated (``from flagmw.core.snapshot_spec
import RuleSpec`` works as well). See ``docs/flags-file.md`` for every field."""

from __future__ import annotations

from typing import Any, Literal

import pydantic

__all__ = ["ExperimentSpec", "OverlaySpec", "RolloutSpec", "RuleSpec", "TenantSpec"]

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
