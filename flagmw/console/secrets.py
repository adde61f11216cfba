"""Masking the values of ``sensitive`` flags for every role but admin ("viewers read
everything but secrets"): in snapshot documents, diffs, overrides and audit entries,
a sensitive flag's value is replaced by :data:`MASK` wherever the flag's key names it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flagmw.client.client import FlagClient

__all__ = ["MASK", "Masker"]

MASK = "***"


class Masker:
    """Masks the sensitive flags of a registry (a no-op when ``show`` or none are)."""

    def __init__(self, client: FlagClient, *, show: bool) -> None:
        self.keys = (
            frozenset() if show else frozenset(f.key for f in client.registry if f.sensitive)
        )

    def __bool__(self) -> bool:
        return bool(self.keys)

    def document(self, node: Any) -> Any:
        """A copy of ``node`` with the value under every sensitive key masked."""
        if not self.keys:
            return node
        if isinstance(node, Mapping):
            return {k: (MASK if k in self.keys else self.document(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [self.document(v) for v in node]
        return node

    def names(self, text: str) -> bool:
        """Whether ``text`` (a diff path, an audit target) names a sensitive flag."""
        return any(re.search(rf"(^|[\[. ]){re.escape(k)}($|[\]. ])", text) for k in self.keys)

    def changes(self, changes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Diff lines with the values of sensitive flags masked."""
        out = []
        for c in changes:
            if self.names(c["path"]):
                c = {**c, "before": MASK, "after": MASK}
            else:
                c = {**c, "before": self.document(c["before"]), "after": self.document(c["after"])}
            out.append(c)
        return out

    def override(self, row: dict[str, Any]) -> dict[str, Any]:
        """An override row with a sensitive flag's value masked."""
        return {**row, "value": MASK} if row.get("key") in self.keys else row

    def audit(self, entry: dict[str, Any]) -> dict[str, Any]:
        """An audit entry with before/after masked when it is about a sensitive flag."""
        if self.keys and self.names(entry["target"]):
            return {**entry, "before": MASK, "after": MASK}
        return entry
