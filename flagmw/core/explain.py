"""Explain: why a key has its value for a context (``flagmw explain``), with every value
each layer offered and what became of it.

:func:`explain` walks :data:`flagmw.core.layers.RESOLUTION_ORDER` from the top, asking
each compiled layer for its offers; the first matched offer wins. It shares the order
with :func:`~flagmw.core.resolve.resolve` and :func:`~flagmw.core.resolve.resolve_key`
but not their fast paths, so the three checking each other is a real check
(``tests/test_properties.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flagmw.core.compiled import View
from flagmw.core.context import EvaluationContext
from flagmw.core.override_index import OverrideIndex
from flagmw.core.overrides import Override
from flagmw.core.provenance import Layer, Provenance
from flagmw.core.rules import Offer
from flagmw.errors import UnknownFlagError

__all__ = ["ExplainedCandidate", "Explanation", "explain"]


@dataclass(frozen=True, slots=True)
class ExplainedCandidate:
    """One value a layer offered for a key, and what became of it.

    Attributes:
        provenance: where it comes from (layer, scope, rule, experiment, override).
        value: the value it offered.
        status: ``"won"``, ``"shadowed"`` (a higher layer won), ``"not matched"``
            (its condition, rollout or bucket did not admit the context),
            ``"expired"`` / ``"ended"`` (overrides), ``"exempt"`` (a kill skipped for
            a tenant that requires a protected flag), or ``"superseded"`` (a newer or
            narrower override of the same layer won).
        note: a human explanation of the status.
    """

    provenance: Provenance
    value: Any
    status: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "provenance": self.provenance.to_dict(),
            "value": self.value,
            "status": self.status,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a key has its value for a context (``flagmw explain``).

    Attributes:
        key: the flag.
        value: the resolved value.
        provenance: the winner's provenance.
        candidates: every candidate considered, highest layer first.
        context: the context explained.
        snapshot_rev: the rev explained against.
        at: the time explained at (seconds since the epoch).
    """

    key: str
    value: Any
    provenance: Provenance
    candidates: tuple[ExplainedCandidate, ...]
    context: EvaluationContext
    snapshot_rev: int | None
    at: float
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives."""
        return {
            "key": self.key,
            "value": self.value,
            "provenance": self.provenance.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "context": self.context.to_dict(),
            "snapshot_rev": self.snapshot_rev,
            "at": self.at,
            "description": self.description,
        }


def explain(
    view: View,
    overrides: OverrideIndex | None,
    key: str,
    ctx: EvaluationContext,
    at: float,
    all_overrides: Iterable[Override] = (),
) -> Explanation:
    """Explain ``key`` for ``ctx`` at ``at`` (seconds since the epoch): the winner and
    every candidate it shadowed, highest layer first.

    Args:
        view: the compiled snapshot view.
        overrides: the override index the resolver uses; its overrides are explained
            when ``all_overrides`` is empty.
        all_overrides: every override to show, ended ones included (the store's list).

    Raises:
        UnknownFlagError: ``key`` is not in the registry.
    """
    flag = view.compiled.registry.get(key)
    if flag is None:
        raise UnknownFlagError(key, view.compiled.registry.suggest(key))
    shown = tuple(all_overrides) or (overrides.overrides if overrides is not None else ())
    offers: list[Offer] = []
    for state in reversed(view.layers):
        offers.extend(state.offers(key, ctx, at, shown))
    winner = next(o for o in offers if o.matched)  # the default layer always matches
    out: list[ExplainedCandidate] = []
    for offer in offers:
        prov, value, matched, note = offer
        if offer is winner:
            out.append(ExplainedCandidate(prov, value, "won", note))
        elif not matched:
            out.append(ExplainedCandidate(prov, value, _status(prov, note), note))
        else:
            note = f"{winner.provenance.layer.value} layer wins"
            out.append(ExplainedCandidate(prov, value, "shadowed", note))
    return Explanation(
        key, winner.value, winner.provenance, tuple(out), ctx, view.rev, at, flag.description
    )


def _status(prov: Provenance, note: str) -> str:
    if prov.layer is not Layer.OVERRIDE:
        return "not matched"
    for status in ("ended", "exempt", "superseded"):
        if note.startswith(status):
            return status
    return "expired"
