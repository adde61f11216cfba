"""The resolver: a pure function of (snapshot, overrides, context, time) → RunConfig.

Resolution order (DESIGN §2), lowest first; within a layer, the first matching rule
beats the layer's plain values::

    default → environment → snapshot → tenant → route → experiment → override

A snapshot is compiled once per rev (:class:`CompiledSnapshot`) into one
:class:`View` per environment: the unconditional layers are folded into one base
mapping of precompiled candidates, conditions become closures, and tenant and route
overlays are compiled on first use and looked up in O(1) — resolving touches only
what the context selects, so its cost does not grow with the number of tenants or
routes. Overrides are indexed separately (:class:`OverrideIndex`) because they
change without a new rev.

Nothing here reads a clock, the environment or a store: the same inputs always give
the same RunConfig.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from flagmw.core.bucketing import BUCKETS, UNIT_ATTRIBUTES, bucket, percent_to_bps
from flagmw.core.bucketing import _hash as _murmur3
from flagmw.core.conditions import Predicate, compile_when
from flagmw.core.context import EvaluationContext
from flagmw.core.overrides import Override, ScopeKind
from flagmw.core.registry import FlagRegistry
from flagmw.core.runconfig import (
    DEFAULT_PROVENANCE,
    Candidate,
    Layer,
    Provenance,
    RunConfig,
    make_candidate,
)
from flagmw.core.snapshot import Snapshot
from flagmw.errors import UnknownFlagError

__all__ = [
    "CompiledSnapshot",
    "ExplainedCandidate",
    "Explanation",
    "OverrideIndex",
    "View",
    "resolve",
    "resolve_key",
]

_MISSING: Any = object()
_CTX_INDEX = {name: i for i, name in enumerate(EvaluationContext._fields)}

# A compiled rule: (predicate or True, ((key, candidate), ...))
_Rule = tuple[Predicate | bool, tuple[tuple[str, Candidate], ...]]


def _rule_predicate(
    rule: Mapping[str, Any], segments: Mapping[str, Predicate | bool], environment: str
) -> Predicate | bool:
    cond = compile_when(rule.get("when"), segments, environment)
    rollout = rule.get("rollout")
    if rollout is None or cond is False:
        return cond
    bps = percent_to_bps(rollout["percent"])
    if bps <= 0:
        return False
    prefix = rollout["salt"] + ":"
    index = _CTX_INDEX[UNIT_ATTRIBUTES[rollout["unit"]]]

    def in_rollout(ctx: EvaluationContext) -> bool:
        # bucketing.bucket(salt, unit) inlined: this runs on every evaluation
        unit: Any = ctx[index]
        return unit is not None and _murmur3(prefix + unit, 0, False) % BUCKETS < bps

    if cond is True:
        return in_rollout
    return lambda ctx: cond(ctx) and in_rollout(ctx)


class _Layer:
    """The compiled values and rules of one layer scope (environment, global, a tenant,
    a route)."""

    __slots__ = ("requires", "rules", "rules_by_key", "unique", "values")

    def __init__(
        self,
        values: dict[str, Candidate],
        rules: list[_Rule],
        requires: frozenset[str] = frozenset(),
    ) -> None:
        self.values = values
        self.rules = rules
        self.requires = requires
        by_key: dict[str, list[tuple[Predicate | bool, Candidate]]] = {}
        for pred, sets in rules:
            for key, cand in sets:
                by_key.setdefault(key, []).append((pred, cand))
        self.rules_by_key = by_key
        self.unique = all(len(v) == 1 for v in by_key.values())

    def apply(self, vals: dict[str, Candidate], ctx: EvaluationContext) -> None:
        """Plain values, then the first matching rule per key."""
        if self.values:
            vals.update(self.values)
        if not self.rules:
            return
        if self.unique:
            for pred, sets in self.rules:
                if pred is True or (pred is not False and pred(ctx)):
                    for key, cand in sets:
                        vals[key] = cand
            return
        done: set[str] = set()
        for pred, sets in self.rules:
            if pred is True or (pred is not False and pred(ctx)):
                for key, cand in sets:
                    if key not in done:
                        vals[key] = cand
                        done.add(key)

    def lookup(self, key: str, ctx: EvaluationContext) -> Candidate | None:
        """The value this layer gives ``key`` for ``ctx``, or None."""
        for pred, cand in self.rules_by_key.get(key, ()):
            if pred is True or (pred is not False and pred(ctx)):
                return cand
        return self.values.get(key)


@dataclass(slots=True)
class _Experiment:
    name: str
    key: str
    pred: Predicate | bool
    unit_index: int
    salt: str
    bounds: tuple[int, ...]  # cumulative upper bounds in basis points
    candidates: tuple[Candidate, ...]
    variant_names: tuple[str, ...]
    prefix: str = ""

    def __post_init__(self) -> None:
        self.prefix = self.salt + ":"

    def assign(self, ctx: EvaluationContext) -> int:
        """Index of the variant for ``ctx``, or -1 when the experiment does not apply."""
        pred = self.pred
        if pred is False or (pred is not True and not pred(ctx)):
            return -1
        unit: Any = ctx[self.unit_index]
        if unit is None:
            return -1
        b = _murmur3(self.prefix + unit, 0, False) % BUCKETS  # bucketing.bucket, inlined
        for i, upper in enumerate(self.bounds):
            if b < upper:
                return i
        return -1


class _KeyPlan(NamedTuple):
    """What can decide one key in a view, for :func:`resolve_key`: its base candidate
    (default / environment values / process variable / global value), its experiments,
    and its unconditional-layer rules (global first, then environment rules that no
    global value or process variable shadows)."""

    base: Candidate
    experiments: tuple[_Experiment, ...]
    rules: tuple[tuple[Predicate | bool, Candidate], ...]


class View:
    """One snapshot rev compiled for one environment. Build with
    :meth:`CompiledSnapshot.view`."""

    def __init__(self, compiled: CompiledSnapshot, environment: str) -> None:
        self.compiled = compiled
        self.environment = environment
        self.rev = compiled.rev
        doc = compiled.document
        rev = compiled.rev
        registry = compiled.registry
        self._segments: dict[str, Predicate | bool] = {
            name: compile_when(when, None, environment) for name, when in doc["segments"].items()
        }
        base: dict[str, Candidate] = {}
        for flag in sorted(registry, key=lambda f: f.key):
            base[flag.key] = make_candidate(flag.key, flag.default, DEFAULT_PROVENANCE)
        env_doc = doc["environments"].get(environment, {"values": {}, "rules": []})
        env_prov = Provenance(Layer.ENVIRONMENT, rev, environment)
        for key, value in env_doc["values"].items():
            base[key] = make_candidate(key, value, env_prov)
        env_rules = self._rules(env_doc["rules"], Layer.ENVIRONMENT, environment)
        shadowing = set(compiled.env_values) | set(doc["values"])
        for key, value in compiled.env_values.items():
            base[key] = make_candidate(
                key, value, Provenance(Layer.ENVIRONMENT, None, _env_var(key))
            )
        snap_prov = Provenance(Layer.SNAPSHOT, rev, "global")
        for key, value in doc["values"].items():
            base[key] = make_candidate(key, value, snap_prov)
        # FF_ variables and global values beat environment rules: drop what they shadow
        env_rules = [
            (p, tuple((k, c) for k, c in sets if k not in shadowing)) for p, sets in env_rules
        ]
        env_rules = [(p, sets) for p, sets in env_rules if sets]
        self.base = base
        self.env_layer = _Layer({}, env_rules)
        self.global_layer = _Layer({}, self._rules(doc["rules"], Layer.SNAPSHOT, "global"))
        self._tenant_docs: Mapping[str, Any] = doc["tenants"]
        self._route_docs: Mapping[str, Any] = doc["routes"]
        self._tenants: dict[str, _Layer | None] = {}
        self._routes: dict[str, _Layer | None] = {}
        self.experiments: list[_Experiment] = []
        # several experiments on one flag: tried in the order written (recorded as
        # `order` in the normalised document, so it is part of the content hash)
        ordered = sorted(doc["experiments"].items(), key=lambda item: item[1].get("order", 0))
        for name, exp in ordered:
            if not exp.get("enabled", True):
                continue
            bounds, cands, names, upper = [], [], [], 0
            weights = exp["weights"]  # [[variant, weight], …]; a mapping before format 1.1
            for vname, weight in weights.items() if isinstance(weights, Mapping) else weights:
                upper += percent_to_bps(weight)
                bounds.append(upper)
                names.append(vname)
                cands.append(
                    make_candidate(
                        exp["flag"],
                        exp["variants"][vname],
                        Provenance(Layer.EXPERIMENT, rev, None, None, name, vname),
                    )
                )
            self.experiments.append(
                _Experiment(
                    name,
                    exp["flag"],
                    compile_when(exp.get("when"), self._segments, environment),
                    _CTX_INDEX[UNIT_ATTRIBUTES[exp["unit"]]],
                    exp["salt"],
                    tuple(bounds),
                    tuple(cands),
                    tuple(names),
                )
            )
        self.experiments_by_key: dict[str, list[_Experiment]] = {}
        for e in self.experiments:
            self.experiments_by_key.setdefault(e.key, []).append(e)
        self.has_tenants = bool(self._tenant_docs)
        self.has_routes = bool(self._route_docs)
        self.plans: dict[str, _KeyPlan] = {
            key: _KeyPlan(
                cand,
                tuple(self.experiments_by_key.get(key, ())),
                tuple(self.global_layer.rules_by_key.get(key, ()))
                + tuple(self.env_layer.rules_by_key.get(key, ())),
            )
            for key, cand in base.items()
        }

    def _rules(self, rules: Iterable[Mapping[str, Any]], layer: Layer, scope: str) -> list[_Rule]:
        out: list[_Rule] = []
        rev = self.compiled.rev
        for rule in rules:
            pred = _rule_predicate(rule, self._segments, self.environment)
            if pred is False:
                continue
            prov = Provenance(layer, rev, scope, rule["name"])
            out.append(
                (pred, tuple((k, make_candidate(k, v, prov)) for k, v in rule["set"].items()))
            )
        return out

    def _overlay(self, raw: Mapping[str, Any], layer: Layer, scope: str) -> _Layer:
        prov = Provenance(layer, self.compiled.rev, scope)
        values = {k: make_candidate(k, v, prov) for k, v in raw["values"].items()}
        return _Layer(
            values, self._rules(raw["rules"], layer, scope), frozenset(raw.get("requires", ()))
        )

    def tenant(self, tenant_id: str | None) -> _Layer | None:
        """The compiled overlay of a tenant (compiled on first use), or None."""
        if tenant_id is None:
            return None
        layer = self._tenants.get(tenant_id, _MISSING)
        if layer is _MISSING:
            raw = self._tenant_docs.get(tenant_id)
            layer = None if raw is None else self._overlay(raw, Layer.TENANT, tenant_id)
            self._tenants[tenant_id] = layer
        return layer  # type: ignore[no-any-return]

    def route(self, route: str | None) -> _Layer | None:
        """The compiled overlay of a route (compiled on first use), or None."""
        if route is None:
            return None
        layer = self._routes.get(route, _MISSING)
        if layer is _MISSING:
            raw = self._route_docs.get(route)
            layer = None if raw is None else self._overlay(raw, Layer.ROUTE, route)
            self._routes[route] = layer
        return layer  # type: ignore[no-any-return]


def _env_var(key: str) -> str:
    from flagmw.core.registry import env_var_name

    return env_var_name(key)


class CompiledSnapshot:
    """A snapshot (or none) compiled against a registry, with one :class:`View` per
    environment built on demand.

    Args:
        registry: the application's registry.
        snapshot: the validated snapshot, or None when nothing was published (defaults
            and process variables only).
        rev: its snapshot rev.
        env_values: values from ``FF_<KEY>`` process variables, already typed
            (:func:`flagmw.client.read_env_values`); local development only.
    """

    def __init__(
        self,
        registry: FlagRegistry,
        snapshot: Snapshot | None,
        rev: int | None,
        env_values: Mapping[str, Any] | None = None,
    ) -> None:
        from flagmw.core.snapshot import _empty_document

        self.registry = registry
        self.snapshot = snapshot
        self.rev = rev
        self.content_hash = snapshot.content_hash if snapshot is not None else None
        self.document: Mapping[str, Any] = (
            snapshot.document if snapshot is not None else _empty_document()
        )
        self.env_values: Mapping[str, Any] = dict(env_values or {})
        self._views: dict[str, View] = {}

    def view(self, environment: str) -> View:
        """The compiled view for ``environment`` (cached)."""
        v = self._views.get(environment)
        if v is None:
            v = self._views[environment] = View(self, environment)
        return v


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
        self, slot: _OverrideSlot, ctx: EvaluationContext, t: float, tenant: _Layer | None
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


def resolve(
    view: View, overrides: OverrideIndex | None, ctx: EvaluationContext, at: float
) -> RunConfig:
    """Resolve every flag for ``ctx`` at time ``at`` (seconds since the epoch).

    Pure: the same (view, overrides, ctx, at) always give an equal RunConfig.
    """
    vals = dict(view.base)
    if view.env_layer.rules:
        view.env_layer.apply(vals, ctx)
    if view.global_layer.rules:
        view.global_layer.apply(vals, ctx)
    tenant = view.tenant(ctx.tenant_id)
    if tenant is not None:
        tenant.apply(vals, ctx)
    route = view.route(ctx.route)
    if route is not None:
        route.apply(vals, ctx)
    variants: dict[str, str] = {}
    if view.experiments:
        seen: set[str] = set()
        for exp in view.experiments:
            if exp.key in seen:
                continue
            i = exp.assign(ctx)
            if i >= 0:
                vals[exp.key] = exp.candidates[i]
                variants[exp.name] = exp.variant_names[i]
                seen.add(exp.key)
    ids: tuple[str, ...] = ()
    if overrides:
        won = []
        for key, slot in overrides.slots.items():
            cand = overrides.pick(slot, ctx, at, tenant)
            if cand is not None and key in vals:
                vals[key] = cand
                won.append(cand.provenance.override_id)
        ids = tuple(won)  # type: ignore[arg-type]
    return RunConfig(
        vals,
        snapshot_rev=view.rev,
        snapshot_hash=view.compiled.content_hash,
        environment=view.environment,
        context=ctx.frozen(),
        resolved_at=at,
        override_ids=ids,
        variants=variants,
    )


def resolve_key(
    view: View, overrides: OverrideIndex | None, key: str, ctx: EvaluationContext, at: float
) -> Candidate:
    """Resolve one flag (top layer first, stopping at the first that decides).

    Gives the same value and provenance as ``resolve(...)`` does for ``key``, at a
    fraction of the cost: layers that cannot decide ``key`` are skipped by a per-key
    plan compiled with the view.

    Raises:
        UnknownFlagError: ``key`` is not in the registry.
    """
    plan = view.plans.get(key)
    if plan is None:
        raise UnknownFlagError(key, view.compiled.registry.suggest(key))
    tenant_id = ctx[0]  # EvaluationContext.tenant_id
    tenant = view.tenant(tenant_id) if tenant_id is not None and view.has_tenants else None
    if overrides is not None and overrides.slots:
        slot = overrides.slots.get(key)
        if slot is not None:
            cand = overrides.pick(slot, ctx, at, tenant)
            if cand is not None:
                return cand
    if plan.experiments:
        for exp in plan.experiments:
            i = exp.assign(ctx)
            if i >= 0:
                return exp.candidates[i]
    route_name = ctx[2]  # EvaluationContext.route
    if route_name is not None and view.has_routes:
        route = view.route(route_name)
        if route is not None:
            found = route.lookup(key, ctx)
            if found is not None:
                return found
    if tenant is not None:
        found = tenant.lookup(key, ctx)
        if found is not None:
            return found
    for pred, cand in plan.rules:  # global rules, then environment rules not shadowed
        if pred is True or pred(ctx):  # type: ignore[operator]
            return cand
    return plan.base


# -- explain ---------------------------------------------------------------------------


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
    """Explain ``key`` for ``ctx`` at ``at``: the winner and every candidate it shadowed.

    Walks the layers from the document itself (not the compiled fast path), so it is
    also an independent check of :func:`resolve`.
    """
    registry = view.compiled.registry
    flag = registry[key]
    doc = view.compiled.document
    rev = view.rev
    env = view.environment
    found: list[tuple[Provenance, Any, bool, str]] = []  # (prov, value, matched, note)

    def rules_of(rules: list[Mapping[str, Any]], layer: Layer, scope: str) -> None:
        for rule in rules:
            if key not in rule["set"]:
                continue
            pred = _rule_predicate(rule, view._segments, env)
            ok = pred is True or (pred is not False and pred(ctx))
            note = "" if ok else _why_not(rule, ctx)
            found.append((Provenance(layer, rev, scope, rule["name"]), rule["set"][key], ok, note))

    found.append((DEFAULT_PROVENANCE, flag.default, True, "registry default"))
    env_doc = doc["environments"].get(env)
    if env_doc is not None:
        if key in env_doc["values"]:
            found.append(
                (Provenance(Layer.ENVIRONMENT, rev, env), env_doc["values"][key], True, "")
            )
        rules_of(env_doc["rules"], Layer.ENVIRONMENT, env)
    if key in view.compiled.env_values:
        found.append(
            (
                Provenance(Layer.ENVIRONMENT, None, _env_var(key)),
                view.compiled.env_values[key],
                True,
                "process variable (local development)",
            )
        )
    if key in doc["values"]:
        found.append((Provenance(Layer.SNAPSHOT, rev, "global"), doc["values"][key], True, ""))
    rules_of(doc["rules"], Layer.SNAPSHOT, "global")
    tdoc = doc["tenants"].get(ctx.tenant_id) if ctx.tenant_id is not None else None
    if tdoc is not None:
        if key in tdoc["values"]:
            found.append(
                (Provenance(Layer.TENANT, rev, ctx.tenant_id), tdoc["values"][key], True, "")
            )
        rules_of(tdoc["rules"], Layer.TENANT, ctx.tenant_id)  # type: ignore[arg-type]
    rdoc = doc["routes"].get(ctx.route) if ctx.route is not None else None
    if rdoc is not None:
        if key in rdoc["values"]:
            found.append((Provenance(Layer.ROUTE, rev, ctx.route), rdoc["values"][key], True, ""))
        rules_of(rdoc["rules"], Layer.ROUTE, ctx.route)  # type: ignore[arg-type]
    exp_taken = False
    for exp in view.experiments_by_key.get(key, ()):
        i = exp.assign(ctx)
        if i >= 0 and not exp_taken:
            found.append(
                (
                    exp.candidates[i].provenance,
                    exp.candidates[i].value,
                    True,
                    f"bucket {bucket(exp.salt, str(ctx[exp.unit_index]))} of 10000",
                )
            )
            exp_taken = True
        elif i >= 0:
            found.append(
                (
                    exp.candidates[i].provenance,
                    exp.candidates[i].value,
                    False,
                    "an earlier experiment on the same flag took the context",
                )
            )
        else:
            unit = ctx[exp.unit_index]
            note = (
                f"no {EvaluationContext._fields[exp.unit_index]} in the context"
                if unit is None
                else "its condition does not match"
            )
            found.append(
                (Provenance(Layer.EXPERIMENT, rev, None, None, exp.name), None, False, note)
            )
    # overrides: every one for this key, in the order the resolver considers them
    winner_override = None
    if overrides:
        slot = overrides.slots.get(key)
        if slot is not None:
            winner_override = overrides.pick(slot, ctx, at, view.tenant(ctx.tenant_id))
    tenant_layer = view.tenant(ctx.tenant_id)
    for ov in sorted(all_overrides, key=lambda o: o.order, reverse=True):
        if ov.key != key or not ov.applies_to(env):
            continue
        prov = Provenance(Layer.OVERRIDE, None, ov.scope_label, None, None, None, ov.id, ov.reason)
        in_scope = (
            ov.scope is ScopeKind.GLOBAL
            or (ov.scope is ScopeKind.TENANT and ov.target == ctx.tenant_id)
            or (ov.scope is ScopeKind.ROUTE and ov.target == ctx.route)
        )
        if not in_scope:
            continue
        if ov.ended_at is not None and ov.ended_at <= at:
            found.append((prov, ov.value, False, f"ended by {ov.ended_by}: {ov.end_reason}"))
        elif not ov.active_at(at):
            found.append(
                (prov, ov.value, False, "expired" if at >= ov.expires_at else "not yet active")
            )
        elif (
            flag.protected
            and ov.value is False
            and not ov.force
            and tenant_layer is not None
            and key in tenant_layer.requires
        ):
            found.append(
                (
                    prov,
                    ov.value,
                    False,
                    f"exempt: tenant {ctx.tenant_id} requires {key} (protected); "
                    "only a forced kill applies",
                )
            )
        else:
            won = winner_override is not None and winner_override.provenance.override_id == ov.id
            found.append(
                (prov, ov.value, won, "" if won else "superseded by a newer or narrower override")
            )
    # the winner: what the fast path says
    winner = resolve_key(view, overrides, key, ctx, at)
    out: list[ExplainedCandidate] = []
    won_marked = False
    for prov, value, matched, note in sorted(
        found, key=lambda f: _LAYER_RANK[f[0].layer], reverse=True
    ):
        if not won_marked and matched and prov == winner.provenance:
            out.append(ExplainedCandidate(prov, value, "won", note))
            won_marked = True
        elif not matched:
            status = "not matched"
            if prov.layer is Layer.OVERRIDE:
                status = (
                    "ended"
                    if note.startswith("ended")
                    else "exempt"
                    if note.startswith("exempt")
                    else "superseded"
                    if note.startswith("superseded")
                    else "expired"
                )
            out.append(ExplainedCandidate(prov, value, status, note))
        else:
            out.append(
                ExplainedCandidate(
                    prov, value, "shadowed", f"{winner.provenance.layer.value} layer wins"
                )
            )
    return Explanation(
        key, winner.value, winner.provenance, tuple(out), ctx, rev, at, flag.description
    )


_LAYER_RANK = {layer: i for i, layer in enumerate(Layer)}


def _why_not(rule: Mapping[str, Any], ctx: EvaluationContext) -> str:
    rollout = rule.get("rollout")
    if rollout is not None:
        attr = UNIT_ATTRIBUTES[rollout["unit"]]
        unit: Any = getattr(ctx, attr)
        if unit is None:
            return f"rollout needs {attr}, which the context lacks"
        b = bucket(rollout["salt"], unit)
        if b >= percent_to_bps(rollout["percent"]):
            return f"bucket {b} is outside the {rollout['percent']:g} % rollout"
    return "condition does not match"
