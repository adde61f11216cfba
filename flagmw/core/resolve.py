"""The resolver: a pure function of (snapshot view, overrides, context, time) → RunConfig.

Both functions walk :data:`flagmw.core.layers.RESOLUTION_ORDER` as the view
precompiled it (:class:`~flagmw.core.compiled.View`): :func:`resolve` bottom-up over
every key, :func:`resolve_key` top-down for one key, stopping at the first layer that
decides. Nothing here reads a clock, the environment or a store: the same inputs
always give the same RunConfig.
"""

from __future__ import annotations

from types import MappingProxyType

from flagmw.core.candidate import Candidate
from flagmw.core.compiled import View
from flagmw.core.context import EvaluationContext
from flagmw.core.override_index import OverrideIndex
from flagmw.core.runconfig import RunConfig
from flagmw.errors import UnknownFlagError

__all__ = ["resolve", "resolve_key"]


#: Audiences remembered per view (:attr:`View.audiences`); when more are resolved the
#: memo is emptied and refills, so a stream of new tenant or user ids cannot grow memory.
AUDIENCES_PER_VIEW = 256


def resolve(
    view: View, overrides: OverrideIndex | None, ctx: EvaluationContext, at: float
) -> RunConfig:
    """Resolve every flag for ``ctx`` at time ``at`` (seconds since the epoch).

    Pure: the same (view, overrides, ctx, at) always give an equal RunConfig.

    Runs differ in their thread and run ids, which a view reads only when a condition,
    rollout or experiment names them. Where none does (:attr:`View.audiences` is not
    None), and no override and no free attribute is involved (nothing then depends on
    ``at`` or on attributes), the values of a context are those of its **audience** —
    tenant, user, route, plan and environment — and are resolved once per audience:
    later runs of it get the same candidates with their own context and time.
    """
    audiences = view.audiences
    if audiences is None or ctx.attributes or (overrides is not None and overrides.slots):
        return _walk(view, overrides, ctx, at)
    audience = (ctx.tenant_id, ctx.user_id, ctx.route, ctx.plan, ctx.environment)
    known = audiences.get(audience)
    if known is not None:
        rc: RunConfig = known._rebased(ctx, at)
        return rc
    unread = view.unread
    rc = _walk(view, overrides, ctx, at)
    # not when an overlay it needed could not be read (the next run tries again), nor
    # when an overlay compiled meanwhile turned the memo off
    if view.unread == unread and view.audiences is audiences:
        if len(audiences) >= AUDIENCES_PER_VIEW:
            audiences.clear()
        audiences[audience] = rc
    return rc


def _walk(
    view: View, overrides: OverrideIndex | None, ctx: EvaluationContext, at: float
) -> RunConfig:
    """:func:`resolve` without the audience memo: every layer walked for ``ctx``."""
    vals = dict(view.base)
    variants: dict[str, str] = {}
    ids: list[str] = []
    appliers = view.appliers if overrides is not None and overrides.slots else view.quiet_appliers
    for apply in appliers:
        apply(vals, ctx, at, overrides, variants, ids)
    return RunConfig(
        vals,
        snapshot_rev=view.rev,
        snapshot_hash=view.compiled.content_hash,
        environment=view.environment,
        context=ctx.frozen(),
        resolved_at=at,
        override_ids=tuple(ids) if ids else (),
        variants=MappingProxyType(variants) if variants else None,  # ours: no copy needed
    )


def resolve_key(
    view: View, overrides: OverrideIndex | None, key: str, ctx: EvaluationContext, at: float
) -> Candidate:
    """Resolve one flag: the value and provenance ``resolve(...)`` gives ``key``, at a
    fraction of the cost (only the layers that can decide ``key`` are asked).

    Raises:
        UnknownFlagError: ``key`` is not in the registry.
    """
    plan = view.plans.get(key) or view.plan(key)
    if plan is None:
        raise UnknownFlagError(key, view.compiled.registry.suggest(key))
    # the override layer is asked only when the index has something for the key
    deciders = plan.deciders if overrides is not None and key in overrides.slots else plan.quiet
    for decide in deciders:
        cand = decide(key, ctx, at, overrides)
        if cand is not None:
            return cand
    for pred, cand in plan.rules:  # as compiled_layers.rules_decider, without the call
        if pred is True or (pred is not False and pred(ctx)):
            return cand
    return plan.base
