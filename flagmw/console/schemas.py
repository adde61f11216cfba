"""The request bodies of the admin API (pydantic; unknown fields are refused, so an
``actor`` in a body is an error, never a way to name someone else)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EndBody", "OverrideBody", "PublishBody", "RenewBody", "RollbackBody", "TokenBody"]

_Reason = Field(min_length=1, max_length=1000, description="Why (mandatory, audited).")
_Ttl = Field(
    default=None,
    max_length=32,
    description="How long, e.g. 15m, 1h, 4h or seconds as text; default 4h, at most the "
    "console's maximum.",
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OverrideBody(_Body):
    """A kill (``kind: kill``, bool flags only) or an override (``kind: override`` with a
    ``value`` of the flag's type), for a TTL, globally or for one tenant or route."""

    key: str = Field(min_length=1, max_length=256)
    kind: Literal["kill", "override"] = "kill"
    value: Any = None
    reason: str = _Reason
    reason_code: str | None = Field(
        default=None,
        max_length=64,
        description="A reason code (incident, abuse, cost, vendor-outage, compliance, "
        "other), prefixed to the reason as [code].",
    )
    ttl: str | None = _Ttl
    tenant: str | None = Field(default=None, max_length=256)
    route: str | None = Field(default=None, max_length=256)
    environment: str | None = Field(default=None, max_length=256)
    force: bool = Field(
        default=False,
        description="Also turn off a protected flag for tenants that require it, or "
        "scope to a tenant/route the snapshot does not know (audited).",
    )


class RenewBody(_Body):
    """Extend an active override: it now expires ``ttl`` from now."""

    reason: str = _Reason
    ttl: str | None = _Ttl


class EndBody(_Body):
    """End an override or kill early."""

    reason: str = _Reason


class PublishBody(_Body):
    """Publish a snapshot document (``document`` as JSON, or ``yaml`` text), validated
    against the registry, on top of ``parent_rev`` (null only for the first publish)."""

    document: dict[str, Any] | None = None
    yaml: str | None = Field(default=None, max_length=1_000_000)
    message: str = Field(min_length=1, max_length=1000)
    parent_rev: int | None


class RollbackBody(_Body):
    """Publish the content of an older rev as a new rev."""

    message: str = Field(min_length=1, max_length=1000)
    parent_rev: int | None = None


class TokenBody(_Body):
    """A new API token."""

    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "operator", "admin", "tenant-editor"]
