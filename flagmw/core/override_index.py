"""OverrideIndex: the overrides of one environment, indexed by key and scope for the
override layer (:mod:`flagmw.core.layers`). Overrides change without a new snapshot
rev, so they are indexed apart from the compiled snapshot."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from flagmw.core.candidate import Candidate, make_candidate
from flagmw.core.context import EvaluationContext
from flagmw.core.overrides import Override, ScopeKind
from flagmw.core.provenance import Layer, Provenance
from flagmw.core.registry import FlagRegistry
from flagmw.core.rules import Overlay

__all__ = ["OverrideIndex"]


@dataclass(slots=True)
class _OverrideSlot:
    key: str
    globals_: list[tuple[Override, Candidate]] = field(default_factory=list)
    tenants: dict[str, list[tuple[Override, Candidate]]] = field(default_factory=dict)
    routes: dict[str, list[tuple[Override, Candidate]]] = field(default_factory=dict)
    protected: bool = False


class OverrideIndex:
    """The overrides of one environment, indexed by key and scope.

    Within a scope the most recent override wins; across scopes the narrowest wins
    (route > tenant > global). Expiry is checked at resolution time, so an index stays
    valid until the set of overrides changes.

    Args:
        overrides: overrides from the store (ended ones are ignored; expired ones are
            kept and skipped at resolution time).
        registry: the application's registry (overrides of unknown keys are ignored
            and reported in :attr:`ignored`).
        environment: only overrides for this environment (or for all) are indexed.
    """

    def __init__(
        self, overrides: Iterable[Override], registry: FlagRegistry, environment: str
    ) -> None:
        self.slots: dict[str, _OverrideSlot] = {}
        self.ignored: list[Override] = []
        self.overrides: tuple[Override, ...] = tuple(overrides)
        ordered = sorted(self.overrides, key=lambda o: o.order, reverse=True)
        for ov in ordered:
            if ov.ended_at is not None or not ov.applies_to(environment):
                continue
            flag = registry.get(ov.key)
            if flag is None:
                self.ignored.append(ov)
                continue
            slot = self.slots.get(ov.key)
            if slot is None:
                slot = self.slots[ov.key] = _OverrideSlot(ov.key, protected=flag.protected)
            cand = make_candidate(
                ov.key,
                ov.value,
                Provenance(
                    Layer.OVERRIDE, None, ov.scope_label, None, None, None, ov.id, ov.reason
                ),
            )
            entry = (ov, cand)
            if ov.scope is ScopeKind.GLOBAL:
                slot.globals_.append(entry)
            elif ov.scope is ScopeKind.TENANT:
                slot.tenants.setdefault(ov.target or "", []).append(entry)
            else:
                slot.routes.setdefault(ov.target or "", []).append(entry)
        # slots in key order: a run's override_ids follow the keys they decided, not the
        # order the store listed the overrides in (another tenant's override must not
        # reorder this tenant's ids)
        self.slots = dict(sorted(self.slots.items()))

    def __bool__(self) -> bool:
        return bool(self.slots)

    def next_expiry_after(self, t: float) -> float | None:
        """The earliest expiry strictly after ``t``, or None."""
        later = [
            ov.expires_at
            for slot in self.slots.values()
            for entries in (slot.globals_, *slot.tenants.values(), *slot.routes.values())
            for ov, _ in entries
            if ov.expires_at > t
        ]
        return min(later) if later else None

    def pick(
        self, slot: _OverrideSlot, ctx: EvaluationContext, t: float, tenant: Overlay | None
    ) -> Candidate | None:
        """The winning override candidate of ``slot`` for ``ctx`` at ``t``, or None."""
        required = slot.protected and tenant is not None and slot.key in tenant.requires
        for entries in (
            slot.routes.get(ctx.route, ()) if ctx.route is not None else (),
            slot.tenants.get(ctx.tenant_id, ()) if ctx.tenant_id is not None else (),
            slot.globals_,
        ):
            for ov, cand in entries:
                if not ov.active_at(t):
                    continue
                if required and ov.value is False and not ov.force:
                    continue  # a protected flag the tenant requires: only a forced kill
                return cand
        return None
