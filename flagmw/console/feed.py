"""The change feed of a store, shared by the event stream and the webhooks.

:class:`ChangeFeed` turns what happened since its last look into events, from the
**audit log** (every publish, rollback, override set, renewal and end is audited in the
same transaction as the change, in order: nothing is missed, not even a kill set and
ended between two looks) and, for what has no audit entry, from the **state**: an
override that left the active set without being ended has expired.

Events and their data (JSON primitives):

* ``rev`` — ``{"rev", "parent_rev", "author", "message", "action", "rollback_of"}``;
* ``override.created`` / ``override.renewed`` / ``override.ended`` — the override as
  ``GET /api/v1/overrides`` shows it (the state after the change);
* ``override.expired`` — the override that expired.
"""

from __future__ import annotations

import contextlib
from typing import Any

from flagmw.console.views import override_row
from flagmw.errors import FlagmwError
from flagmw.stores.base import AuditEntry, Store, StoreState

__all__ = ["ChangeFeed"]

#: How many audit entries one look reads at most (more changes between two looks than
#: this are reported as the newest ones).
AUDIT_WINDOW = 500


class ChangeFeed:
    """What changed in ``store`` since the last :meth:`look`.

    Raises (from every method): :class:`~flagmw.errors.StoreUnavailableError` when the
    store cannot be read; the feed is unchanged then and the next look catches up.
    """

    def __init__(self, store: Store, now: float) -> None:
        self.store = store
        self.state: StoreState = store.read_state(now)
        newest = store.audit(1)
        self.seq = newest[0].seq if newest else 0

    @property
    def token(self) -> Any:
        """The change token of the last look."""
        return self.state.token

    def look(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """The events since the last look, oldest first."""
        state = self.store.read_state(now)
        entries = [e for e in self.store.audit(AUDIT_WINDOW) if e.seq > self.seq]
        out: list[tuple[str, dict[str, Any]]] = []
        ended: set[str] = set()
        for e in reversed(entries):
            event = self._from_audit(e, now)
            if event is not None:
                out.append(event)
                if event[0] == "override.ended":
                    ended.add(event[1]["id"])
        live = {o.id for o in state.overrides}
        for ov in self.state.overrides:
            if ov.id not in live and ov.id not in ended:
                with contextlib.suppress(FlagmwError):
                    ov = self.store.get_override(ov.id)
                if ov.ended_at is None:
                    out.append(("override.expired", override_row(ov, now)))
        if entries:
            self.seq = entries[0].seq
        self.state = state
        return out

    def _from_audit(self, e: AuditEntry, now: float) -> tuple[str, dict[str, Any]] | None:
        family, _, what = e.action.partition(".")
        if e.action in ("publish", "rollback"):
            rev = int(e.target.split()[-1])
            return (
                "rev",
                {
                    "rev": rev,
                    "parent_rev": e.before,
                    "author": e.actor,
                    "message": e.reason,
                    "action": e.action,
                    "rollback_of": dict(e.details).get("rollback_of"),
                },
            )
        if family not in ("kill", "override"):
            return None  # token.* and anything newer
        name = {"set": "created", "forced": "created", "renew": "renewed", "end": "ended"}.get(what)
        if name is None:
            return None
        try:
            ov = self.store.get_override(e.target.split()[0])
        except FlagmwError:
            return None
        return (f"override.{name}", override_row(ov, now))
