"""Overrides and kill switches: the emergency layer (layer 7).

An override pins one flag to one value for a scope — ``global``, one tenant, or one
route — with a mandatory reason, an actor and a TTL. A **kill switch** is an override
of a bool flag to ``false``. Overrides are not part of any snapshot: they live in the
store, are audited on their own, and expire by themselves.

Expiry is exact to the second: an override with ``expires_at = t`` is active at every
time ``< t`` and inactive at ``t``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

__all__ = ["Override", "OverrideKind", "ScopeKind", "format_duration", "parse_duration"]


class ScopeKind(StrEnum):
    """Where an override applies. Narrowest wins: route > tenant > global."""

    GLOBAL = "global"
    TENANT = "tenant"
    ROUTE = "route"


class OverrideKind(StrEnum):
    """``kill``: a bool flag forced to ``false``; ``override``: any value."""

    KILL = "kill"
    OVERRIDE = "override"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


#: The longest duration :func:`parse_duration` accepts: 100 years of 365 days (every
#: expiry stays a time that a date can show; TTLs are capped far lower, by ``max_ttl``).
MAX_DURATION_SECONDS = 100 * 365 * 86400


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}… ({len(text)} characters)"


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration: a number of seconds, or text like ``"4h"``, ``"90m"``,
    ``"1h30m"``, ``"2d"``, ``"45s"``; finite, positive and at most
    :data:`MAX_DURATION_SECONDS` (100 years).

    Raises:
        ValueError: not a positive duration (also ``inf``, ``nan``, a 400-digit
            number, a value that is not text or a number).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a duration: {_shown(value)} (write e.g. 4h, 90m, 1h30m, 2d)")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond the float range
            seconds = math.inf
    else:
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            pos = 0
            seconds = 0.0
            for m in _DURATION.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError(f"not a duration: {_shown(value)} (write e.g. 4h, 90m, 1h30m, 2d)")
    if math.isnan(seconds):
        raise ValueError(f"not a duration: {_shown(value)} (write e.g. 4h, 90m, 1h30m, 2d)")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {_shown(value)}")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration must be at most 100 years (36500d), got {_shown(value)}")
    return seconds


def format_duration(seconds: float) -> str:
    """``14400`` → ``"4h"``; ``5400`` → ``"1h30m"``; ``59`` → ``"59s"``."""
    left = round(seconds)
    if left <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, left = divmod(left, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


@dataclass(frozen=True, slots=True)
class Override:
    """One entry of the emergency layer.

    Attributes:
        id: the store's id, e.g. ``"ov-17"`` (empty before the store assigns one).
        key: the flag it overrides.
        value: the value it forces (``False`` for a kill).
        kind: ``kill`` or ``override``.
        scope: ``global``, ``tenant`` or ``route``.
        target: the tenant id or route name (None for ``global``).
        reason: why (mandatory, non-empty).
        actor: who (mandatory).
        created_at: seconds since the epoch (UTC).
        expires_at: seconds since the epoch; inactive from this second on.
        force: a kill that also turns a protected flag off for tenants that require it.
        environment: the only environment it applies to (None: every environment).
        ended_at / ended_by / end_reason: set when it was ended early.
    """

    id: str
    key: str
    value: Any
    kind: OverrideKind
    scope: ScopeKind
    target: str | None
    reason: str
    actor: str
    created_at: float
    expires_at: float
    force: bool = False
    environment: str | None = None
    ended_at: float | None = None
    ended_by: str | None = None
    end_reason: str | None = None

    def active_at(self, t: float) -> bool:
        """True when the override applies at time ``t`` (seconds since the epoch)."""
        if self.ended_at is not None and self.ended_at <= t:
            return False
        return self.created_at <= t < self.expires_at

    @property
    def order(self) -> tuple[float, int, str]:
        """Sort key, oldest first: creation time, then the numeric part of the id (so
        ``ov-10`` comes after ``ov-9`` when both were created in the same second)."""
        tail = self.id.rsplit("-", 1)[-1]
        return (self.created_at, int(tail) if tail.isdigit() else -1, self.id)

    @property
    def scope_label(self) -> str:
        """``"global"``, ``"tenant:acme"`` or ``"route:refund-assistant"``."""
        return self.scope.value if self.target is None else f"{self.scope.value}:{self.target}"

    def applies_to(self, environment: str | None) -> bool:
        """True when the override is for every environment or for ``environment``."""
        return self.environment is None or self.environment == environment

    def with_changes(self, **changes: Any) -> Override:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives (None fields are kept, for a stable shape)."""
        return {
            "id": self.id,
            "key": self.key,
            "value": self.value,
            "kind": self.kind.value,
            "scope": self.scope.value,
            "target": self.target,
            "reason": self.reason,
            "actor": self.actor,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "force": self.force,
            "environment": self.environment,
            "ended_at": self.ended_at,
            "ended_by": self.ended_by,
            "end_reason": self.end_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Override:
        """Inverse of :meth:`to_dict`."""
        return cls(
            id=data["id"],
            key=data["key"],
            value=data["value"],
            kind=OverrideKind(data["kind"]),
            scope=ScopeKind(data["scope"]),
            target=data.get("target"),
            reason=data["reason"],
            actor=data["actor"],
            created_at=float(data["created_at"]),
            expires_at=float(data["expires_at"]),
            force=bool(data.get("force", False)),
            environment=data.get("environment"),
            ended_at=data.get("ended_at"),
            ended_by=data.get("ended_by"),
            end_reason=data.get("end_reason"),
        )
