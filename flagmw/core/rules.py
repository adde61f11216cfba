"""Compiled targeting: the rules of one layer scope (:class:`Rules`), a tenant's or a
route's overlay (:class:`Overlay`: values, then rules) and experiments
(:class:`Experiment`). Conditions and rollouts become closures over an
:class:`~flagmw.core.context.EvaluationContext`, compiled once per snapshot rev.

Within a scope the first matching rule beats the scope's plain values (DESIGN §2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from flagmw.core.bucketing import (
    BUCKETS,
    UNIT_ATTRIBUTES,
    bucket,
    percent_to_bps,
    salt_prefix,
    unit_key,
)
from flagmw.core.bucketing import _hash as _murmur3
from flagmw.core.candidate import Candidate, make_candidate
from flagmw.core.conditions import Predicate, compile_when
from flagmw.core.context import EvaluationContext
from flagmw.core.provenance import Layer, Provenance

__all__ = ["CTX_INDEX", "Experiment", "Offer", "Overlay", "Rules", "rule_predicate"]

#: EvaluationContext field name → tuple index (compiled closures read ``ctx[i]``).
CTX_INDEX = {name: i for i, name in enumerate(EvaluationContext._fields)}


class Offer(NamedTuple):
    """One value a layer offers for a key, as :func:`flagmw.core.explain.explain` shows it.

    Attributes:
        provenance: where it comes from.
        value: the value offered (None for an experiment that did not apply).
        matched: True when it applies to the context (the first matched offer, walking
            the resolution order from the top, wins).
        note: why it applies or not, for humans.
    """

    provenance: Provenance
    value: Any
    matched: bool
    note: str = ""


def rule_predicate(
    rule: Mapping[str, Any], segments: Mapping[str, Predicate | bool], environment: str
) -> Predicate | bool:
    """The condition and rollout of a normalised rule as one predicate (True / False
    when it does not depend on the context)."""
    cond = compile_when(rule.get("when"), segments, environment)
    rollout = rule.get("rollout")
    if rollout is None or cond is False:
        return cond
    bps = percent_to_bps(rollout["percent"])
    if bps <= 0:
        return False
    mode = rollout.get("bucketing", "flagmw")
    prefix = salt_prefix(rollout["salt"], mode)
    index = CTX_INDEX[UNIT_ATTRIBUTES[rollout["unit"]]]

    def in_rollout_flagd(ctx: EvaluationContext) -> bool:
        # flagd's fractional: the hash scaled to 0–9999 (bucketing.bucket, mode "flagd")
        unit: Any = ctx[index]
        if unit is None:
            return False
        key = unit_key(prefix, unit)
        return key is not None and (_murmur3(key, 0, False) * BUCKETS) >> 32 < bps

    def in_rollout(ctx: EvaluationContext) -> bool:
        # bucketing.bucket(salt, unit) inlined: this runs on every evaluation; an ASCII
        # str id is hashed as is, anything else through bucketing.unit_key
        unit: Any = ctx[index]
        if unit is None:
            return False
        key = prefix + unit if type(unit) is str and unit.isascii() else unit_key(prefix, unit)
        return key is not None and _murmur3(key, 0, False) % BUCKETS < bps

    test = in_rollout_flagd if mode == "flagd" else in_rollout
    if cond is True:
        return test
    return lambda ctx: cond(ctx) and test(ctx)


def why_not(rule: Mapping[str, Any], ctx: EvaluationContext) -> str:
    """Why a rule does not match ``ctx``, for humans."""
    rollout = rule.get("rollout")
    if rollout is not None:
        attr = UNIT_ATTRIBUTES[rollout["unit"]]
        unit: Any = getattr(ctx, attr)
        if unit is None:
            return f"rollout needs {attr}, which the context lacks"
        if unit_key("", unit) is None:
            return f"rollout needs {attr} to be a str or int id, not {type(unit).__name__}"
        b = bucket(rollout["salt"], unit, rollout.get("bucketing", "flagmw"))
        if b >= percent_to_bps(rollout["percent"]):
            return f"bucket {b} is outside the {rollout['percent']:g} % rollout"
    return "condition does not match"


# A compiled rule: (predicate or True, ((key, candidate), ...), the normalised rule)
_Rule = tuple[Predicate | bool, tuple[tuple[str, Candidate], ...], Mapping[str, Any]]


class Rules:
    """The compiled rules of one layer scope, in the order written (build with
    :meth:`compile`).

    Attributes:
        rules: ``(predicate, ((key, candidate), …), normalised rule)`` per rule.
        by_key: key → ``(predicate, candidate)`` of every rule that sets it.
        unique: no key is set by two rules (the fast path of :meth:`apply`).
    """

    __slots__ = ("by_key", "rules", "unique")

    def __init__(self, rules: list[_Rule]) -> None:
        self.rules = rules
        by_key: dict[str, list[tuple[Predicate | bool, Candidate]]] = {}
        for pred, sets, _ in rules:
            for key, cand in sets:
                by_key.setdefault(key, []).append((pred, cand))
        self.by_key = by_key
        self.unique = all(len(v) == 1 for v in by_key.values())

    @classmethod
    def compile(
        cls,
        rules: Iterable[Mapping[str, Any]],
        segments: Mapping[str, Predicate | bool],
        environment: str,
        scope: Provenance,
        predicates: dict[str, Predicate | bool] | None = None,
    ) -> Rules:
        """Compile normalised rules (``name``, ``when``, ``rollout``, ``set``) of the
        scope ``scope`` (its ``rule`` is filled per rule); rules that can never match
        are dropped. ``predicates``: compiled conditions to share, keyed by their
        ``when`` and ``rollout`` (a view compiling thousands of tenants whose rules
        repeat the same conditions keeps one predicate per distinct condition)."""
        out: list[_Rule] = []
        for rule in rules:
            if predicates is None:
                pred = rule_predicate(rule, segments, environment)
            else:
                key = json.dumps([rule.get("when"), rule.get("rollout")], sort_keys=True)
                cached = predicates.get(key)
                if cached is None:
                    cached = predicates[key] = rule_predicate(rule, segments, environment)
                pred = cached
            if pred is False:
                continue
            prov = Provenance(scope.layer, scope.rev, scope.scope, rule["name"])
            sets = tuple((k, make_candidate(k, v, prov)) for k, v in rule["set"].items())
            out.append((pred, sets, rule))
        return cls(out)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def without(self, keys: Iterable[str]) -> Rules:
        """These rules minus what they set for ``keys`` (shadowed by a higher
        unconditional layer)."""
        drop = frozenset(keys)
        kept = [
            (p, tuple((k, c) for k, c in sets if k not in drop), r) for p, sets, r in self.rules
        ]
        return Rules([rule for rule in kept if rule[1]])

    def apply(self, vals: dict[str, Candidate], ctx: EvaluationContext, *_: Any) -> None:
        """Write the first matching rule's candidate per key into ``vals`` (further
        arguments are ignored: the bulk walk calls this directly, see
        :meth:`flagmw.core.layers.CompiledLayer.applier`)."""
        if self.unique:
            for pred, sets, _rule in self.rules:
                if pred is True or (pred is not False and pred(ctx)):
                    for key, cand in sets:
                        vals[key] = cand
            return
        done: set[str] = set()
        for pred, sets, _rule in self.rules:
            if pred is True or (pred is not False and pred(ctx)):
                for key, cand in sets:
                    if key not in done:
                        vals[key] = cand
                        done.add(key)

    def lookup(self, key: str, ctx: EvaluationContext) -> Candidate | None:
        """The first matching rule's candidate for ``key``, or None."""
        for pred, cand in self.by_key.get(key, ()):
            if pred is True or (pred is not False and pred(ctx)):
                return cand
        return None

    def offers(self, key: str, ctx: EvaluationContext) -> list[Offer]:
        """Every rule that sets ``key``, the first matching one first of the matched."""
        out: list[Offer] = []
        for pred, sets, rule in self.rules:
            for k, cand in sets:
                if k == key:
                    ok = pred is True or (pred is not False and pred(ctx))
                    out.append(
                        Offer(cand.provenance, cand.value, ok, "" if ok else why_not(rule, ctx))
                    )
        return out


class Overlay:
    """A tenant's or a route's compiled overlay: its plain values, then its rules.

    Attributes:
        values: key → candidate of its plain values.
        rules: its rules (``by_key``: theirs, see :class:`Rules`).
        requires: the protected flags a tenant requires (kills spare them unless forced).
    """

    __slots__ = ("by_key", "requires", "rules", "values")

    def __init__(
        self, values: dict[str, Candidate], rules: Rules, requires: frozenset[str] = frozenset()
    ) -> None:
        self.values = values
        self.rules = rules
        self.by_key = rules.by_key  # read on every evaluation: one attribute less
        self.requires = requires

    def apply(self, vals: dict[str, Candidate], ctx: EvaluationContext) -> None:
        """Plain values, then the first matching rule per key."""
        if self.values:
            vals.update(self.values)
        if self.rules.rules:
            self.rules.apply(vals, ctx)

    def lookup(self, key: str, ctx: EvaluationContext) -> Candidate | None:
        """The value this overlay gives ``key`` for ``ctx``, or None."""
        if self.rules.by_key:
            found = self.rules.lookup(key, ctx)
            if found is not None:
                return found
        return self.values.get(key)

    def offers(self, key: str, ctx: EvaluationContext) -> list[Offer]:
        """Its rules for ``key``, then its plain value (highest precedence first)."""
        out = self.rules.offers(key, ctx)
        cand = self.values.get(key)
        if cand is not None:
            out.append(Offer(cand.provenance, cand.value, True))
        return out


@dataclass(slots=True)
class Experiment:
    """One enabled experiment compiled for a view.

    Attributes:
        name, key: the experiment and the flag it sets.
        pred: its condition (True / False when constant).
        unit_index: the EvaluationContext index of its bucketing unit.
        salt: its bucketing salt.
        bounds: cumulative upper bounds of its variants, in basis points.
        candidates, variant_names: per variant, in the order written.
        bucketing: ``"flagmw"`` or ``"flagd"`` (see :mod:`flagmw.core.bucketing`).
    """

    name: str
    key: str
    pred: Predicate | bool
    unit_index: int
    salt: str
    bounds: tuple[int, ...]
    candidates: tuple[Candidate, ...]
    variant_names: tuple[str, ...]
    bucketing: str = "flagmw"
    prefix: str = ""
    flagd: bool = False

    def __post_init__(self) -> None:
        self.prefix = salt_prefix(self.salt, self.bucketing)
        self.flagd = self.bucketing == "flagd"

    def assign(self, ctx: EvaluationContext) -> int:
        """Index of the variant for ``ctx``, or -1 when the experiment does not apply."""
        pred = self.pred
        if pred is False or (pred is not True and not pred(ctx)):
            return -1
        unit: Any = ctx[self.unit_index]
        if unit is None:
            return -1
        # bucketing.bucket, inlined (ASCII str ids hashed as is; see bucketing.unit_key)
        if type(unit) is str and unit.isascii():
            key: str | bytes = self.prefix + unit
        else:
            found = unit_key(self.prefix, unit)
            if found is None:
                return -1
            key = found
        h = _murmur3(key, 0, False)
        b = (h * BUCKETS) >> 32 if self.flagd else h % BUCKETS
        for i, upper in enumerate(self.bounds):
            if b < upper:
                return i
        return -1

    @classmethod
    def compile(
        cls,
        name: str,
        exp: Mapping[str, Any],
        segments: Mapping[str, Predicate | bool],
        environment: str,
        rev: int | None,
    ) -> Experiment:
        """Compile a normalised experiment of the snapshot document."""
        bounds, cands, names, upper = [], [], [], 0
        weights = exp["weights"]  # [[variant, weight], …]; a mapping before format 1.1
        for vname, weight in weights.items() if isinstance(weights, Mapping) else weights:
            upper += percent_to_bps(weight)
            bounds.append(upper)
            names.append(vname)
            prov = Provenance(Layer.EXPERIMENT, rev, None, None, name, vname)
            cands.append(make_candidate(exp["flag"], exp["variants"][vname], prov))
        return cls(
            name,
            exp["flag"],
            compile_when(exp.get("when"), segments, environment),
            CTX_INDEX[UNIT_ATTRIBUTES[exp["unit"]]],
            exp["salt"],
            tuple(bounds),
            tuple(cands),
            tuple(names),
            exp.get("bucketing", "flagmw"),
        )
