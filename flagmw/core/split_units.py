"""Which bucketing unit a split needs and a context lacks (OpenFeature's
``TARGETING_KEY_MISSING``): an experiment or a rule's percentage rollout can only place
a context that has the id it hashes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flagmw.core.bucketing import UNIT_ATTRIBUTES
from flagmw.core.compiled_layers import RulesLayer
from flagmw.core.conditions import compile_when
from flagmw.core.context import EvaluationContext
from flagmw.core.layers import RESOLUTION_ORDER
from flagmw.core.provenance import LAYER_ORDER, Layer

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.core.compiled import View
    from flagmw.core.rules import Rules

__all__ = ["missing_unit"]


def missing_unit(
    view: View, key: str, ctx: EvaluationContext, winner: Layer = Layer.DEFAULT
) -> str | None:
    """The context field (``user_id``, ``tenant_id``, ``thread_id`` or ``run_id``) that
    an enabled experiment on ``key``, or the percentage rollout of a rule that sets
    ``key`` (global, environment, ``ctx``'s tenant or route), buckets by — when its
    condition admits ``ctx`` — and ``ctx`` lacks; else None. Only splits in a layer at
    or above ``winner`` (the layer that decided the value) count: one below it could not
    have decided anyway."""
    floor = LAYER_ORDER[winner]
    for exp in view.experiments:
        if exp.key != key or ctx[exp.unit_index] is not None:
            continue
        pred = exp.pred
        if pred is True or (pred is not False and pred(ctx)):
            return EvaluationContext._fields[exp.unit_index]
    scopes: list[Rules] = [
        state.rules
        for layer, state in zip(RESOLUTION_ORDER, view.layers, strict=True)
        if isinstance(state, RulesLayer) and state and LAYER_ORDER[layer.layer] >= floor
    ]
    for overlay, layer in (
        (view.tenant(ctx.tenant_id), Layer.TENANT),
        (view.route(ctx.route), Layer.ROUTE),
    ):
        if overlay is not None and LAYER_ORDER[layer] >= floor:
            scopes.append(overlay.rules)
    for rules in scopes:
        for _pred, sets, rule in rules.rules:
            rollout = rule.get("rollout")
            if rollout is None or all(k != key for k, _ in sets):
                continue
            field = UNIT_ATTRIBUTES[rollout["unit"]]
            if getattr(ctx, field) is not None:
                continue
            cond = compile_when(rule.get("when"), view.segments, view.environment)
            if cond is True or (cond is not False and cond(ctx)):
                return field
    return None
