"""The resolution order, once, as data (DESIGN §2).

:data:`RESOLUTION_ORDER` is the tuple of :class:`ResolutionLayer` objects, lowest
precedence first::

    default → environment values → environment rules → FF_ process variables
      → snapshot values → snapshot rules → tenant → route → version → experiment
      → override

(within a scope the first matching rule beats the scope's plain values; the enum
:class:`~flagmw.core.provenance.Layer` names the seven layers a provenance reports).
In the spirit of pydantic-settings' ``settings_customise_sources``, each layer is a
small object compiled per snapshot view into a
:class:`~flagmw.core.compiled_layers.CompiledLayer` that answers one question three
ways — *do you have a value for this key in this context, and why*:

* ``apply`` — write your values for the context into a mapping
  (:func:`flagmw.core.resolve.resolve` walks the tuple bottom-up);
* ``decider`` — a function answering for one key, or None when you can never decide it
  (:class:`~flagmw.core.compiled.View` walks the tuple top-down once per key into a
  plan that :func:`~flagmw.core.resolve.resolve_key` runs);
* ``offers`` — every value you offer for the key, matched or not, and why
  (:func:`flagmw.core.explain.explain` walks the tuple top-down).

Nothing else in flagmw encodes the order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flagmw.core.candidate import make_candidate
from flagmw.core.compiled_layers import (
    CompiledLayer,
    ExperimentsLayer,
    OverridesLayer,
    RulesLayer,
    ScopedLayer,
    ValuesLayer,
)
from flagmw.core.provenance import DEFAULT_PROVENANCE, Layer, Provenance
from flagmw.core.rules import CTX_INDEX, Experiment, Rules
from flagmw.core.versions import VersionsLayer

if TYPE_CHECKING:
    from flagmw.core.compiled import View

__all__ = ["RESOLUTION_ORDER", "ResolutionLayer"]


class ResolutionLayer:
    """One step of :data:`RESOLUTION_ORDER`.

    Attributes:
        name: a short name (``"environment rules"``).
        layer: the :class:`~flagmw.core.provenance.Layer` its values report.
    """

    name: str = ""
    layer: Layer = Layer.DEFAULT

    def compile(self, view: View) -> CompiledLayer:
        """This layer compiled for ``view`` (one snapshot rev, one environment)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{self.name} layer>"


class Defaults(ResolutionLayer):
    """The registry's defaults: every key has one."""

    name, layer = "default", Layer.DEFAULT

    def compile(self, view: View) -> CompiledLayer:
        registry = view.compiled.registry
        return ValuesLayer(
            {
                f.key: make_candidate(f.key, f.default, DEFAULT_PROVENANCE)
                for f in sorted(registry, key=lambda f: f.key)
            },
            "registry default",
        )


class EnvironmentValues(ResolutionLayer):
    """``environments.<env>.values`` of the snapshot."""

    name, layer = "environment values", Layer.ENVIRONMENT

    def compile(self, view: View) -> CompiledLayer:
        doc = view.compiled.document["environments"].get(view.environment, {})
        prov = Provenance(Layer.ENVIRONMENT, view.rev, view.environment)
        return ValuesLayer(
            {k: make_candidate(k, v, prov) for k, v in doc.get("values", {}).items()}
        )


class EnvironmentRules(ResolutionLayer):
    """``environments.<env>.rules`` of the snapshot."""

    name, layer = "environment rules", Layer.ENVIRONMENT

    def compile(self, view: View) -> CompiledLayer:
        doc = view.compiled.document["environments"].get(view.environment, {})
        scope = Provenance(Layer.ENVIRONMENT, view.rev, view.environment)
        return RulesLayer(
            Rules.compile(doc.get("rules", ()), view.segments, view.environment, scope)
        )


class ProcessVariables(ResolutionLayer):
    """``FF_<KEY>`` process variables (local development)."""

    name, layer = "process variables", Layer.ENVIRONMENT

    def compile(self, view: View) -> CompiledLayer:
        from flagmw.core.registry import env_var_name

        return ValuesLayer(
            {
                k: make_candidate(k, v, Provenance(Layer.ENVIRONMENT, None, env_var_name(k)))
                for k, v in view.compiled.env_values.items()
            },
            "process variable (local development)",
        )


class SnapshotValues(ResolutionLayer):
    """The snapshot's global ``values``."""

    name, layer = "snapshot values", Layer.SNAPSHOT

    def compile(self, view: View) -> CompiledLayer:
        prov = Provenance(Layer.SNAPSHOT, view.rev, "global")
        values = view.compiled.document["values"]
        return ValuesLayer({k: make_candidate(k, v, prov) for k, v in values.items()})


class SnapshotRules(ResolutionLayer):
    """The snapshot's global ``rules``."""

    name, layer = "snapshot rules", Layer.SNAPSHOT

    def compile(self, view: View) -> CompiledLayer:
        scope = Provenance(Layer.SNAPSHOT, view.rev, "global")
        rules = view.compiled.document["rules"]
        return RulesLayer(Rules.compile(rules, view.segments, view.environment, scope))


class Tenants(ResolutionLayer):
    """The overlay of the context's tenant (values, then rules)."""

    name, layer = "tenant", Layer.TENANT

    def compile(self, view: View) -> CompiledLayer:
        return ScopedLayer(
            CTX_INDEX["tenant_id"], view.compiled.document["tenants"], view._tenants, view.tenant
        )


class Routes(ResolutionLayer):
    """The overlay of the context's route (values, then rules)."""

    name, layer = "route", Layer.ROUTE

    def compile(self, view: View) -> CompiledLayer:
        return ScopedLayer(
            CTX_INDEX["route"], view.compiled.document["routes"], view._routes, view.route
        )


class Versions(ResolutionLayer):
    """The agent version the context was assigned (a rollout's candidate or baseline,
    :mod:`flagmw.core.versions`). Above route: a version is the agent's profile,
    versioned, so it supersedes the route overlay for the keys it sets; below experiment
    and override, so a flag experiment and a kill switch still reach a versioned run."""

    name, layer = "version", Layer.VERSION

    def compile(self, view: View) -> CompiledLayer:
        return VersionsLayer(view.compiled.versions, view)


class Experiments(ResolutionLayer):
    """Enabled experiments, in their recorded ``order``; the first that assigns the
    context a variant decides the flag."""

    name, layer = "experiment", Layer.EXPERIMENT

    def compile(self, view: View) -> CompiledLayer:
        doc = view.compiled.document["experiments"]
        ordered = sorted(doc.items(), key=lambda item: item[1].get("order", 0))
        return ExperimentsLayer(
            [
                Experiment.compile(name, exp, view.segments, view.environment, view.rev)
                for name, exp in ordered
                if exp.get("enabled", True)
            ]
        )


class Overrides(ResolutionLayer):
    """Overrides and kills: the narrowest scope wins (route > tenant > global), then
    the most recent; a kill of a protected flag a tenant requires needs ``force``."""

    name, layer = "override", Layer.OVERRIDE

    def compile(self, view: View) -> CompiledLayer:
        return OverridesLayer(view)


#: The resolution order, lowest precedence first. The one definition of it.
RESOLUTION_ORDER: tuple[ResolutionLayer, ...] = (
    Defaults(),
    EnvironmentValues(),
    EnvironmentRules(),
    ProcessVariables(),
    SnapshotValues(),
    SnapshotRules(),
    Tenants(),
    Routes(),
    Versions(),
    Experiments(),
    Overrides(),
)
