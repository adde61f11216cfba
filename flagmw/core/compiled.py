"""A snapshot compiled for resolution: :class:`CompiledSnapshot` (one per rev) and its
:class:`View` per environment.

A view compiles every layer of :data:`~flagmw.core.layers.RESOLUTION_ORDER` once and
precomputes two walks of that one order:

* the **bulk plan** (for :func:`~flagmw.core.resolve.resolve`): the layers whose values
  do not depend on the context are folded into one ``base`` mapping — a rule layer
  below such a layer loses the keys it shadows — and the others are kept, in order,
  as ``steps``;
* the **key plans** (for :func:`~flagmw.core.resolve.resolve_key`): per key, the
  deciders of the layers that can decide it, top first, down to the first layer that
  always does (its candidate is the plan's ``base``).

Tenant and route overlays are compiled on first use and looked up in O(1), so the cost
of resolving does not grow with the number of tenants or routes. Ids the snapshot
does not know are not remembered (they all share the "no overlay" answer), so a stream
of unknown tenant ids cannot grow memory.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

from flagmw.core.candidate import Candidate, make_candidate
from flagmw.core.compiled_layers import CompiledLayer, Decider, RulesLayer, rules_decider
from flagmw.core.conditions import Predicate, compile_when
from flagmw.core.layers import RESOLUTION_ORDER
from flagmw.core.provenance import Layer, Provenance
from flagmw.core.registry import FlagRegistry
from flagmw.core.rules import Experiment, Overlay, Rules
from flagmw.core.snapshot import Snapshot
from flagmw.core.snapshot_hash import OVERLAY_SECTIONS
from flagmw.core.snapshot_spec import empty_document
from flagmw.core.versions import VersionCatalog

__all__ = ["CompiledSnapshot", "KeyPlan", "View"]

_NO_RULES = Rules([])


class KeyPlan(NamedTuple):
    """How one key resolves in a view, top layer first: the deciders of the layers that
    can decide it (``quiet``: the same without the per-call override layer, for calls
    whose override index has nothing for the key), then ``rules`` — the ``(predicate,
    candidate)`` pairs of the rule layers right above the base, tried in order, kept as
    data so that the walk tries them without a call — then ``base``, the candidate of
    the highest layer that always decides it."""

    deciders: tuple[Decider, ...]
    quiet: tuple[Decider, ...]
    rules: tuple[tuple[Any, Candidate], ...]
    base: Candidate


class View:
    """One snapshot rev compiled for one environment. Build with
    :meth:`CompiledSnapshot.view`.

    Attributes:
        compiled: the compiled snapshot.
        environment: the environment.
        rev: the snapshot rev.
        segments: segment name → compiled predicate.
        layers: every layer of ``RESOLUTION_ORDER`` compiled, in that order.
        base: the folded context-independent candidates (every registry key).
        steps: the context-dependent layers, in order, that the bulk walk applies
            (``appliers``: their bulk callables; ``quiet_appliers``: the same without
            the per-call override layer).
        plans: key → :class:`KeyPlan`, built on a key's first use (:meth:`plan`).
        experiments: the enabled experiments, in the order they are tried.
        audiences: the audience memo of :func:`~flagmw.core.resolve.resolve` (context
            without thread and run ids → a RunConfig resolved for it), or None when
            something in the view can read those ids (:data:`RUN_UNIQUE_NAMES`).
    """

    def __init__(self, compiled: CompiledSnapshot, environment: str) -> None:
        self.compiled = compiled
        self.environment = environment
        self.rev = compiled.rev
        doc = compiled.document
        self.segments: dict[str, Predicate | bool] = {
            name: compile_when(when, None, environment) for name, when in doc["segments"].items()
        }
        self._tenant_docs: Mapping[str, Any] = doc["tenants"]
        self._route_docs: Mapping[str, Any] = doc["routes"]
        self._tenants: dict[str, Overlay] = {}
        self._predicates: dict[str, Predicate | bool] = {}  # shared by overlays' rules
        self._routes: dict[str, Overlay] = {}
        # the per-key walks, top layer first (built on use; a layer may clear them)
        self.plans: dict[str, KeyPlan] = {}
        self.layers: tuple[CompiledLayer, ...] = tuple(
            layer.compile(self) for layer in RESOLUTION_ORDER
        )
        self.experiments: list[Experiment] = []
        for state in self.layers:
            self.experiments.extend(getattr(state, "experiments", ()))
        # the bulk walk: fold unconditional layers into the base
        base: dict[str, Candidate] = {}
        steps: list[CompiledLayer] = []
        for state in self.layers:
            static = state.static
            if static is not None:
                reduced = [s.without(static) for s in steps]
                if all(r is not None for r in reduced):
                    base.update(static)
                    steps = [r for r in reduced if r]
                    continue
            if state:
                steps.append(state)
        self.base = base
        self.steps: tuple[CompiledLayer, ...] = tuple(steps)
        self.appliers = tuple(s.applier() for s in steps)
        self.quiet_appliers = tuple(s.applier() for s in steps if not s.per_call)
        # the audience memo of resolve(): only where nothing of this view can read a
        # context's thread or run id (no condition, rollout or experiment names one).
        # Tenant and route overlays (read from the store on first use) are looked at
        # when compiled (_overlay); reading them all here would read the store.
        self.audiences: dict[tuple[str | None, ...], Any] | None = (
            None
            if _names_any(
                [v for k, v in doc.items() if k not in OVERLAY_SECTIONS], RUN_UNIQUE_NAMES
            )
            else {}
        )
        #: overlays named by the snapshot but not read (the store failed): counted so
        #: that resolve() does not remember what was resolved without them
        self.unread = 0

    def plan(self, key: str) -> KeyPlan | None:
        """The :class:`KeyPlan` of ``key`` (built on first use and kept: at most one per
        registry key), or None when ``key`` is not in the registry."""
        plan = self.plans.get(key)
        if plan is None and key in self.base:
            plan = self.plans[key] = self._plan(key)
        return plan

    def _plan(self, key: str) -> KeyPlan:
        deciders: list[Decider] = []
        per_call: list[Decider] = []
        pending: tuple[tuple[Any, Candidate], ...] = ()  # adjacent rule layers: one decider
        for state in reversed(self.layers):
            static = state.static
            if static is not None and key in static:
                break
            if not state:
                continue
            if isinstance(state, RulesLayer):
                pending += state.key_rules(key)
                continue
            decide = rules_decider(pending)
            if decide is not None:
                deciders.append(decide)
            pending = ()
            decide = state.decider(key)
            if decide is not None:
                deciders.append(decide)
                if state.per_call:
                    per_call.append(decide)
        else:
            raise AssertionError(f"{key} has no default")  # the default layer has every key
        quiet = tuple(d for d in deciders if all(d is not p for p in per_call))
        return KeyPlan(tuple(deciders), quiet, pending, static[key])

    def _overlay(self, raw: Mapping[str, Any], layer: Layer, scope: str) -> Overlay:
        prov = Provenance(layer, self.rev, scope)
        # keys and short text values shared across overlays (interned): tenants repeat
        # the same few, and a fleet keeps thousands of compiled overlays
        values = {
            sys.intern(k): make_candidate(
                k, sys.intern(v) if type(v) is str and len(v) <= 64 else v, prov
            )
            for k, v in raw["values"].items()
        }
        # most tenants have no rules: one shared empty Rules (never mutated) saves
        # memory per compiled overlay (100k-tenant fleets)
        rules = (
            Rules.compile(raw["rules"], self.segments, self.environment, prov, self._predicates)
            if raw["rules"]
            else _NO_RULES
        )
        if self.audiences is not None and _names_any(raw, RUN_UNIQUE_NAMES):
            self.audiences = None  # this overlay reads a thread or run id: memo off
        return Overlay(values, rules, frozenset(raw.get("requires", ())))

    def tenant(self, tenant_id: str | None) -> Overlay | None:
        """The compiled overlay of a tenant (compiled on first use), or None when the
        snapshot has none for it."""
        if tenant_id is None:
            return None
        overlay = self._tenants.get(tenant_id)
        if overlay is None:
            raw = self._tenant_docs.get(tenant_id)
            if raw is None:
                if tenant_id in self._tenant_docs:  # named, but its read failed
                    self.unread += 1
                return None  # not remembered: unknown ids must not grow memory
            overlay = self._tenants[tenant_id] = self._overlay(raw, Layer.TENANT, tenant_id)
        return overlay

    def route(self, route: str | None) -> Overlay | None:
        """The compiled overlay of a route (compiled on first use), or None when the
        snapshot has none for it."""
        if route is None:
            return None
        overlay = self._routes.get(route)
        if overlay is None:
            raw = self._route_docs.get(route)
            if raw is None:
                if route in self._route_docs:  # named, but its read failed
                    self.unread += 1
                return None  # not remembered: unknown routes must not grow memory
            overlay = self._routes[route] = self._overlay(raw, Layer.ROUTE, route)
        return overlay


#: What a snapshot document writes to read a context's thread or run id: the attribute
#: names (conditions, segments) and the bucketing units (rollouts, experiments).
RUN_UNIQUE_NAMES = frozenset({"thread_id", "run_id", "thread", "run"})


def _names_any(doc: Any, names: frozenset[str]) -> bool:
    """Whether any key or string value anywhere in ``doc`` (JSON data) is one of
    ``names``: a conservative test (a flag value ``"run"`` counts too)."""
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if item in names:
                return True
        elif isinstance(item, Mapping):
            for k, v in item.items():
                if k in names:
                    return True
                stack.append(v)
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


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
        versions: the agent versions the ``version`` layer can serve (the client's
            :class:`~flagmw.core.versions.VersionCatalog`); None: no version layer.
    """

    def __init__(
        self,
        registry: FlagRegistry,
        snapshot: Snapshot | None,
        rev: int | None,
        env_values: Mapping[str, Any] | None = None,
        versions: VersionCatalog | None = None,
    ) -> None:
        self.registry = registry
        self.versions = versions
        self.snapshot = snapshot
        self.rev = rev
        self.content_hash = snapshot.content_hash if snapshot is not None else None
        self.document: Mapping[str, Any] = (
            snapshot.document if snapshot is not None else empty_document()
        )
        self.env_values: Mapping[str, Any] = dict(env_values or {})
        self._views: dict[str, View] = {}

    def view(self, environment: str) -> View:
        """The compiled view for ``environment`` (cached)."""
        v = self._views.get(environment)
        if v is None:
            v = self._views[environment] = View(self, environment)
        return v
