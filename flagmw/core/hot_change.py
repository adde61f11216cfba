"""HotChange: a hot flag whose value changed inside a run, at a step boundary."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagmw.core.provenance import Provenance

__all__ = ["HotChange"]


@dataclass(frozen=True, slots=True)
class HotChange:
    """A hot key whose value changed at a step boundary inside a run.

    Attributes:
        key: the flag.
        old, new: the values before and after.
        provenance: the provenance of the new value.
        at: when it was re-resolved (seconds since the epoch).
        step: the LangGraph superstep before which it changed (None outside a graph).
    """

    key: str
    old: Any
    new: Any
    provenance: Provenance
    at: float
    step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "key": self.key,
            "old": self.old,
            "new": self.new,
            "provenance": self.provenance.to_dict(),
            "at": self.at,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HotChange:
        """Inverse of :meth:`to_dict`."""
        return cls(
            data["key"],
            data["old"],
            data["new"],
            Provenance.from_dict(data["provenance"]),
            float(data["at"]),
            data.get("step"),
        )
