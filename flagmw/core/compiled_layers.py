"""The kinds of compiled resolution layer: what each step of
:data:`flagmw.core.layers.RESOLUTION_ORDER` becomes once compiled for a snapshot view.

Each answers *do you have a value for this key in this context, and why* three ways:
:meth:`CompiledLayer.apply` (the bulk walk of ``resolve``), :meth:`CompiledLayer.decider`
(the per-key walk of ``resolve_key``) and :meth:`CompiledLayer.offers` (``explain``).
The kinds: unconditional values (:class:`ValuesLayer`), rules (:class:`RulesLayer`), the
overlay the context selects (:class:`ScopedLayer`: a tenant's, a route's), experiments
(:class:`ExperimentsLayer`) and overrides (:class:`OverridesLayer`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flagmw.core.candidate import Candidate
from flagmw.core.context import EvaluationContext
from flagmw.core.overrides import Override, ScopeKind
from flagmw.core.provenance import Layer, Provenance
from flagmw.core.rules import Experiment, Offer, Overlay, Rules

if TYPE_CHECKING:
    from flagmw.core.compiled import View
    from flagmw.core.override_index import OverrideIndex

__all__ = [
    "CompiledLayer",
    "Decider",
    "ExperimentsLayer",
    "OverridesLayer",
    "RulesLayer",
    "ScopedLayer",
    "ValuesLayer",
    "rules_decider",
]

Decider = Callable[[str, EvaluationContext, float, "OverrideIndex | None"], "Candidate | None"]


class CompiledLayer:
    """A resolution layer compiled for one view.

    Attributes:
        static: the layer's values when they do not depend on the context (the view
            folds such layers into one base mapping), else None.
        per_call: its values come with each call (the override index), not with the
            view: a plan keeps a variant without it for calls that bring none.
    """

    static: Mapping[str, Candidate] | None = None
    per_call = False

    def __bool__(self) -> bool:
        return True

    def apply(
        self,
        vals: dict[str, Candidate],
        ctx: EvaluationContext,
        at: float,
        overrides: OverrideIndex | None,
        variants: dict[str, str],
        ids: list[str],
    ) -> None:
        """Write this layer's candidates for ``ctx`` at ``at`` into ``vals``; record
        experiment variants in ``variants`` and winning override ids in ``ids``."""
        raise NotImplementedError

    def applier(self) -> Callable[..., None]:
        """The callable the bulk walk calls with :meth:`apply`'s arguments (a layer may
        hand out a cheaper one than the method itself)."""
        return self.apply

    def decider(self, key: str) -> Decider | None:
        """A function answering for ``key``, or None when this layer never decides it."""
        raise NotImplementedError

    def offers(
        self,
        key: str,
        ctx: EvaluationContext,
        at: float,
        all_overrides: Sequence[Override],
    ) -> list[Offer]:
        """Every value this layer offers for ``key``, highest precedence first."""
        raise NotImplementedError

    def without(self, keys: Iterable[str]) -> CompiledLayer | None:
        """This layer minus ``keys`` (which an unconditional higher layer decides), or
        None when it cannot be reduced that way."""
        return None


class ValuesLayer(CompiledLayer):
    """Unconditional values (defaults, environment values, ``FF_`` variables, global
    values): ``static``, so the view folds them into its base."""

    def __init__(self, values: dict[str, Candidate], note: str = "") -> None:
        self.static = self.values = values
        self.note = note

    def __bool__(self) -> bool:
        return bool(self.values)

    def apply(
        self,
        vals: dict[str, Candidate],
        ctx: EvaluationContext,
        at: float,
        overrides: OverrideIndex | None,
        variants: dict[str, str],
        ids: list[str],
    ) -> None:
        vals.update(self.values)

    def decider(self, key: str) -> Decider | None:
        cand = self.values.get(key)
        return None if cand is None else (lambda k, ctx, at, ov: cand)

    def offers(
        self, key: str, ctx: EvaluationContext, at: float, all_overrides: Sequence[Override]
    ) -> list[Offer]:
        cand = self.values.get(key)
        return [] if cand is None else [Offer(cand.provenance, cand.value, True, self.note)]


def rules_decider(rules: tuple[tuple[Any, Candidate], ...]) -> Decider | None:
    """A decider trying ``(predicate, candidate)`` pairs in order (None when empty)."""
    if not rules:
        return None

    def decide(k: str, ctx: EvaluationContext, at: float, ov: Any) -> Candidate | None:
        for pred, cand in rules:
            if pred is True or (pred is not False and pred(ctx)):
                return cand
        return None

    return decide


class RulesLayer(CompiledLayer):
    """The rules of one unconditional scope (the environment's, the global ones)."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def __bool__(self) -> bool:
        return bool(self.rules)

    def apply(
        self,
        vals: dict[str, Candidate],
        ctx: EvaluationContext,
        at: float,
        overrides: OverrideIndex | None,
        variants: dict[str, str],
        ids: list[str],
    ) -> None:
        self.rules.apply(vals, ctx)

    def applier(self) -> Callable[..., None]:
        return self.rules.apply  # takes (vals, ctx, ...) and ignores the rest

    def key_rules(self, key: str) -> tuple[tuple[Any, Candidate], ...]:
        """``(predicate, candidate)`` of the rules that set ``key``, in order."""
        return tuple(self.rules.by_key.get(key, ()))

    def decider(self, key: str) -> Decider | None:
        return rules_decider(self.key_rules(key))

    def offers(
        self, key: str, ctx: EvaluationContext, at: float, all_overrides: Sequence[Override]
    ) -> list[Offer]:
        return self.rules.offers(key, ctx)

    def without(self, keys: Iterable[str]) -> CompiledLayer:
        return RulesLayer(self.rules.without(keys))


class ScopedLayer(CompiledLayer):
    """The overlay the context selects: the tenant's (context index 0) or the route's
    (index 2), compiled on first use by ``compile_overlay``."""

    def __init__(
        self,
        index: int,
        docs: Mapping[str, Any],
        memo: dict[str, Overlay],
        compile_overlay: Callable[[str], Overlay | None],
    ) -> None:
        self.index = index
        self.docs = docs
        self.memo = memo
        self.compile_overlay = compile_overlay
        self._decide: Decider | None = None

    def __bool__(self) -> bool:
        return bool(self.docs)

    def select(self, ctx: EvaluationContext) -> Overlay | None:
        scope: Any = ctx[self.index]
        if scope is None:
            return None
        overlay = self.memo.get(scope)
        return overlay if overlay is not None else self.compile_overlay(scope)

    def apply(
        self,
        vals: dict[str, Candidate],
        ctx: EvaluationContext,
        at: float,
        overrides: OverrideIndex | None,
        variants: dict[str, str],
        ids: list[str],
    ) -> None:
        scope: Any = ctx[self.index]  # select(), inlined
        if scope is None:
            return
        overlay = self.memo.get(scope)
        if overlay is None:
            overlay = self.compile_overlay(scope)
            if overlay is None:
                return
        if overlay.values:  # Overlay.apply(), inlined
            vals.update(overlay.values)
        if overlay.rules.rules:
            overlay.rules.apply(vals, ctx)

    def decider(self, key: str) -> Decider | None:
        if not self.docs:
            return None
        if self._decide is None:  # one for every key: the key is an argument
            self._decide = self._make_decider()
        return self._decide

    def _make_decider(self) -> Decider:
        index, memo, docs, compile_overlay = self.index, self.memo, self.docs, self.compile_overlay

        def decide(k: str, ctx: EvaluationContext, at: float, ov: Any) -> Candidate | None:
            # select() and Overlay.lookup() inlined: this runs on every evaluation
            scope: Any = ctx[index]
            if scope is None:
                return None
            overlay = memo.get(scope)
            if overlay is None:
                if scope not in docs:
                    return None
                overlay = compile_overlay(scope)
                if overlay is None:
                    return None
            rules = overlay.by_key.get(k)
            if rules:
                for pred, cand in rules:
                    if pred is True or (pred is not False and pred(ctx)):
                        return cand
            return overlay.values.get(k)

        return decide

    def offers(
        self, key: str, ctx: EvaluationContext, at: float, all_overrides: Sequence[Override]
    ) -> list[Offer]:
        overlay = self.select(ctx)
        return [] if overlay is None else overlay.offers(key, ctx)


class ExperimentsLayer(CompiledLayer):
    """Enabled experiments in their recorded order; per flag the first that assigns
    the context a variant decides."""

    def __init__(self, experiments: list[Experiment]) -> None:
        self.experiments = experiments
        self.by_key: dict[str, list[Experiment]] = {}
        for e in experiments:
            self.by_key.setdefault(e.key, []).append(e)

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def apply(
        self,
        vals: dict[str, Candidate],
        ctx: EvaluationContext,
        at: float,
        overrides: OverrideIndex | None,
        variants: dict[str, str],
        ids: list[str],
    ) -> None:
        seen: set[str] = set()
        for exp in self.experiments:
            if exp.key in seen:
                continue
            i = exp.assign(ctx)
            if i >= 0:
                vals[exp.key] = exp.candidates[i]
                variants[exp.name] = exp.variant_names[i]
                seen.add(exp.key)

    def decider(self, key: str) -> Decider | None:
        exps = tuple(self.by_key.get(key, ()))
        if not exps:
            return None

        def decide(k: str, ctx: EvaluationContext, at: float, ov: Any) -> Candidate | None:
            for exp in exps:
                i = exp.assign(ctx)
                if i >= 0:
                    return exp.candidates[i]
            return None

        return decide

    def offers(
        self, key: str, ctx: EvaluationContext, at: float, all_overrides: Sequence[Override]
    ) -> list[Offer]:
        from flagmw.core.bucketing import bucket

        out: list[Offer] = []
        taken = False
        for exp in self.by_key.get(key, ()):
            i = exp.assign(ctx)
            if i >= 0:
                cand = exp.candidates[i]
                note = (
                    "an earlier experiment on the same flag took the context"
                    if taken
                    else f"bucket {bucket(exp.salt, ctx[exp.unit_index], exp.bucketing)} of 10000"
                )
                out.append(Offer(cand.provenance, cand.value, not taken, note))
                taken = True
                continue
            attr = EvaluationContext._fields[exp.unit_index]
            note = (
                f"no {attr} in the context"
                if ctx[exp.unit_index] is None
                else "its condition does not match"
            )
            prov = Provenance(
                Layer.EXPERIMENT, exp.candidates[0].provenance.rev, None, None, exp.name
            )
            out.append(Offer(prov, None, False, note))
        return out


class OverridesLayer(CompiledLayer):
    """Overrides change without a new rev: they come from the index passed at each call."""

    per_call = True

    def __init__(self, view: View) -> None:
        self.view = view
        self._decide: Decider | None = None

    def apply(
        self,
        vals: dict[str, Candidate],
        ctx: EvaluationContext,
        at: float,
        overrides: OverrideIndex | None,
        variants: dict[str, str],
        ids: list[str],
    ) -> None:
        if overrides is None:
            return
        tenant = self.view.tenant(ctx.tenant_id)
        for key, slot in overrides.slots.items():
            cand = overrides.pick(slot, ctx, at, tenant)
            if cand is not None and key in vals:
                vals[key] = cand
                ids.append(cand.provenance.override_id or "")  # always set on an override

    def decider(self, key: str) -> Decider | None:
        if self._decide is None:  # one for every key: the key is an argument
            self._decide = self._make_decider()
        return self._decide

    def _make_decider(self) -> Decider:
        tenant_of = self.view.tenant

        def decide(
            k: str, ctx: EvaluationContext, at: float, ov: OverrideIndex | None
        ) -> Candidate | None:
            if ov is None:
                return None
            slot = ov.slots.get(k)
            if slot is None:
                return None
            return ov.pick(slot, ctx, at, tenant_of(ctx.tenant_id) if slot.protected else None)

        return decide

    def offers(
        self, key: str, ctx: EvaluationContext, at: float, all_overrides: Sequence[Override]
    ) -> list[Offer]:
        view = self.view
        flag = view.compiled.registry[key]
        tenant = view.tenant(ctx.tenant_id)
        required = flag.protected and tenant is not None and key in tenant.requires
        scopes = (
            (ScopeKind.ROUTE, ctx.route),
            (ScopeKind.TENANT, ctx.tenant_id),
            (ScopeKind.GLOBAL, None),
        )
        newest_first = sorted(all_overrides, key=lambda o: o.order, reverse=True)
        out: list[Offer] = []
        won = False
        for kind, target in scopes:  # narrowest scope first, as OverrideIndex.pick
            for ov in newest_first:
                if ov.key != key or not ov.applies_to(view.environment) or ov.scope is not kind:
                    continue
                if kind is not ScopeKind.GLOBAL and (target is None or ov.target != target):
                    continue
                prov = Provenance(
                    Layer.OVERRIDE, None, ov.scope_label, None, None, None, ov.id, ov.reason
                )
                if ov.ended_at is not None:  # the index drops ended overrides, whenever
                    note = f"ended by {ov.ended_by}: {ov.end_reason}"
                elif not ov.active_at(at):
                    note = "expired" if at >= ov.expires_at else "not yet active"
                elif required and ov.value is False and not ov.force:
                    note = (
                        f"exempt: tenant {ctx.tenant_id} requires {key} (protected); "
                        "only a forced kill applies"
                    )
                elif won:
                    note = "superseded by a newer or narrower override"
                else:
                    won = True
                    out.append(Offer(prov, ov.value, True))
                    continue
                out.append(Offer(prov, ov.value, False, note))
        return out
