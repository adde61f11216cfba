"""A snapshot rev as a flagd flag-definition file (https://flagd.dev/schema/v0/flags.json).

Each flag becomes one flagd flag (``docs/flagd.md`` has the full mapping):

* **variants** — ``bool``: ``on`` / ``off``; ``enum``: every choice; ``int``, ``float``,
  ``string``, ``json``: every value the snapshot can give the flag in the exported
  environment (named after the value when it is a short string or a number, ``v<n>``
  otherwise);
* **defaultVariant** — what the flag resolves to without any condition: the global value,
  else the environment's value, else the registry default;
* **state** — ``ENABLED`` (flagmw has no disabled flags: a kill is an override);
* **targeting** — nested three-operand JsonLogic ``if`` (the form flagd's schema takes),
  one branch per candidate in flagmw's precedence order: experiments
  (``fractional``), route rules and values, tenant rules and values, global rules,
  environment rules; conditions by :mod:`flagmw.interop.flagd_conditions`, rollouts as a
  ``fractional`` two-way split compared with ``"in"``; segments as ``$evaluators``;
* **metadata** — ``flagmw.flag``: the registry definition as JSON text (so ``flagmw
  import`` restores the flag exactly), ``description``.

What flagd cannot express is returned as **losses** (:class:`~flagmw.errors.Problem`,
severity ``warning``, a stable ``code``), never dropped silently: active overrides and
kills (``override``), flagmw-salted bucketing (``salted_bucketing``: the same shares, other
units — use ``bucketing: flagd`` for exact agreement), JSON-schema validation
(``json_schema``), a tenant's ``requires`` (``requires``), JSON values that are not objects
(``json_value``). Environments other than the exported one are reported with severity
``info`` (``environment``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flagmw.core.bucketing import BUCKETS, UNIT_ATTRIBUTES, percent_to_bps, salt_prefix
from flagmw.core.flag import Flag
from flagmw.core.overrides import Override
from flagmw.core.registry import FlagRegistry
from flagmw.errors import Problem
from flagmw.interop.flagd_conditions import (
    FIELD_TO_FLAGD,
    all_of,
    when_to_jsonlogic,
)

__all__ = ["FLAGD_SCHEMA", "FlagdExport", "export_flagd"]

#: The schema a flagd flag-definition file declares.
FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"

Path = tuple[str | int, ...]


@dataclass
class FlagdExport:
    """The result of :func:`export_flagd`.

    Attributes:
        document: the flagd file (JSON primitives).
        losses: what it cannot express (severity ``warning``) and what it leaves out on
            purpose (severity ``info``), each with a stable ``code``.
    """

    document: dict[str, Any]
    losses: list[Problem] = field(default_factory=list)

    @property
    def lossy(self) -> bool:
        """Whether anything flagd cannot express was found (``--strict`` fails then)."""
        return any(p.severity == "warning" for p in self.losses)


def _unit_var(unit: str) -> dict[str, Any]:
    attr = UNIT_ATTRIBUTES[unit]
    return {"var": FIELD_TO_FLAGD[attr]}


def _bucket_key(spec: Mapping[str, Any]) -> dict[str, Any]:
    prefix = salt_prefix(spec["salt"], spec.get("bucketing", "flagmw"))
    return {"cat": [prefix, _unit_var(spec["unit"])]}


class _Variants:
    """The variants of one flag, named, and the name of a value."""

    def __init__(self, flag: Flag, values: Iterable[Any]) -> None:
        self.by_value: dict[str, str] = {}
        self.variants: dict[str, Any] = {}
        if flag.type.value == "bool":
            self._add("on", True)
            self._add("off", False)
        elif flag.choices is not None:
            for choice in flag.choices:
                self._add(self._name(choice), choice)  # "" is not a variant name
        for value in values:
            if self._ident(value) not in self.by_value:
                self._add(self._name(value), value)

    @staticmethod
    def _ident(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    def _name(self, value: Any) -> str:
        if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
            name = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            name = json.dumps(value)
        else:
            name = f"v{len(self.variants)}"
        base, n = name, 2
        while name in self.variants:
            name, n = f"{base}-{n}", n + 1
        return name

    def _add(self, name: str, value: Any) -> None:
        self.variants[name] = value
        self.by_value[self._ident(value)] = name

    def name(self, value: Any) -> str:
        return self.by_value[self._ident(value)]


class _Exporter:
    def __init__(
        self, registry: FlagRegistry, doc: Mapping[str, Any], environment: str, where: str
    ) -> None:
        self.registry = registry
        self.doc = doc
        self.environment = environment
        self.where = where
        self.env = doc.get("environments", {}).get(environment) or {"values": {}, "rules": []}
        self.losses: list[Problem] = []
        self.experiments = sorted(
            (
                (name, exp)
                for name, exp in doc.get("experiments", {}).items()
                if exp.get("enabled", True)
            ),
            key=lambda item: (item[1].get("order") or 0, item[0]),
        )

    def loss(
        self, path: Path, code: str, message: str, hint: str = "", severity: str = "warning"
    ) -> None:
        from flagmw.core.source import format_path

        self.losses.append(Problem(self.where, format_path(path), message, hint, code, severity))

    # -- the values a flag can take ---------------------------------------------------

    def _scopes(self) -> Iterable[tuple[Path, Mapping[str, Any]]]:
        yield ("environments", self.environment), self.env
        yield (), self.doc
        for kind in ("tenants", "routes"):
            for name, overlay in self.doc.get(kind, {}).items():
                yield (kind, name), overlay

    def values_of(self, key: str) -> list[Any]:
        out = [self.registry[key].default]
        for _, scope in self._scopes():
            if key in scope.get("values", {}):
                out.append(scope["values"][key])
            for rule in scope.get("rules", []):
                if key in rule["set"]:
                    out.append(rule["set"][key])
        for _, exp in self.experiments:
            if exp["flag"] == key:
                out.extend(exp["variants"].values())
        return out

    # -- targeting ----------------------------------------------------------------------

    def rollout_cond(self, rule: Mapping[str, Any], path: Path) -> Any:
        rollout = rule.get("rollout")
        if rollout is None:
            return True
        bps = percent_to_bps(rollout["percent"])
        if bps <= 0:
            return False
        unit = _unit_var(rollout["unit"])
        present = {"!==": [unit, None]}
        if bps >= BUCKETS:
            return present
        self._salted(rollout, (*path, "rollout"))
        split = {"fractional": [_bucket_key(rollout), ["in", bps], ["out", BUCKETS - bps]]}
        return all_of([present, {"===": [split, "in"]}])

    def _salted(self, spec: Mapping[str, Any], path: Path) -> None:
        if spec.get("bucketing", "flagmw") != "flagd":
            self.loss(
                path,
                "salted_bucketing",
                "flagmw bucketing (murmur3 of 'salt:unit' modulo 10000) is not flagd's "
                "fractional: the exported split has the same shares but admits other units",
                "set `bucketing: flagd` for exact agreement (docs/flagd.md)",
            )

    def rules_chain(
        self,
        scope_cond: Any,
        rules: Sequence[Mapping[str, Any]],
        key: str,
        path: Path,
        names: _Variants,
    ) -> list[tuple[Any, Any]]:
        chain = []
        for i, rule in enumerate(rules):
            if key not in rule["set"]:
                continue
            p = (*path, "rules", i)
            cond = all_of(
                [
                    scope_cond,
                    when_to_jsonlogic(rule.get("when"), self.environment),
                    self.rollout_cond(rule, p),
                ]
            )
            if cond is not False:
                chain.append((cond, names.name(rule["set"][key])))
        return chain

    def overlays_chain(
        self, kind: str, attr: str, key: str, names: _Variants
    ) -> list[tuple[Any, Any]]:
        chain: list[tuple[Any, Any]] = []
        var = {"var": FIELD_TO_FLAGD[attr]}
        grouped: dict[str, list[str]] = {}
        for name, overlay in self.doc.get(kind, {}).items():
            chain.extend(
                self.rules_chain(
                    {"===": [var, name]}, overlay.get("rules", []), key, (kind, name), names
                )
            )
            if key in overlay.get("values", {}):
                grouped.setdefault(names.name(overlay["values"][key]), []).append(name)
        for variant, members in grouped.items():
            cond = {"===": [var, members[0]]} if len(members) == 1 else {"in": [var, members]}
            chain.append((cond, variant))
        return chain

    def flag(self, key: str, flag: Flag) -> dict[str, Any]:
        names = _Variants(flag, self.values_of(key))
        chain: list[tuple[Any, Any]] = []
        for name, exp in self.experiments:
            if exp["flag"] != key:
                continue
            p = ("experiments", name)
            cond = all_of(
                [
                    when_to_jsonlogic(exp.get("when"), self.environment),
                    {"!==": [_unit_var(exp["unit"]), None]},
                ]
            )
            if cond is False:
                continue
            self._salted(exp, p)
            dist = [[names.name(exp["variants"][v]), percent_to_bps(w)] for v, w in _weights(exp)]
            chain.append((cond, {"fractional": [_bucket_key(exp), *dist]}))
        chain += self.overlays_chain("routes", "route", key, names)
        chain += self.overlays_chain("tenants", "tenant_id", key, names)
        base: str | None = None
        for scope_path, scope in (((), self.doc), (("environments", self.environment), self.env)):
            chain += self.rules_chain(True, scope.get("rules", []), key, scope_path, names)
            if key in scope.get("values", {}):
                base = names.name(scope["values"][key])
                break
        if base is None:
            base = names.name(flag.default)
        # an unconditional candidate ends the chain: it is the default variant
        for i, (cond, outcome) in enumerate(chain):
            if cond is True and isinstance(outcome, str):
                chain, base = chain[:i], outcome
                break
        out: dict[str, Any] = {
            "state": "ENABLED",
            "variants": names.variants,
            "defaultVariant": base,
        }
        if chain:
            # flagd's schema takes `if` with exactly three operands: the chain is nested,
            # each else holding the next branch, the last else null (the default variant)
            targeting: Any = None
            for cond, outcome in reversed(chain):
                targeting = {"if": [cond, outcome, targeting]}
            out["targeting"] = targeting
        metadata: dict[str, Any] = {
            "flagmw.flag": json.dumps(flag.to_dict(), sort_keys=True, separators=(",", ":"))
        }
        if flag.description:
            metadata["description"] = flag.description
        out["metadata"] = metadata
        if flag.type.value == "json":
            if flag.schema is not None or flag.model is not None:
                self.loss(
                    ("flags", key, "schema"),
                    "json_schema",
                    f"{key}: flagd does not validate values against a JSON schema (kept in "
                    "metadata flagmw.flag for import)",
                )
            if any(not isinstance(v, dict) for v in names.variants.values()):
                self.loss(
                    ("flags", key),
                    "json_value",
                    f"{key}: flagd's schema types object flags as JSON objects; values that "
                    "are lists or scalars may be refused by a flagd schema check",
                )
        return out

    def export(self, overrides: Sequence[Override]) -> dict[str, Any]:
        flags = {key: self.flag(key, flag) for key, flag in self.registry.items()}
        evaluators = {
            name: when_to_jsonlogic(cond, self.environment)
            for name, cond in self.doc.get("segments", {}).items()
        }
        for name, value in evaluators.items():
            if isinstance(value, bool):  # $evaluators hold objects: a constant is written
                evaluators[name] = {"===": [value, True]}
        for name in self.doc.get("environments", {}):
            if name != self.environment:
                self.loss(
                    ("environments", name),
                    "environment",
                    f"environment {name!r} is not in this file (exported: {self.environment!r})",
                    f"export it with --environment {name}",
                    "info",
                )
        for name, tenant in self.doc.get("tenants", {}).items():
            if tenant.get("requires"):
                self.loss(
                    ("tenants", name, "requires"),
                    "requires",
                    f"tenant {name!r} requires {', '.join(tenant['requires'])}: flagd has no "
                    "kills to exempt it from",
                )
        for ov in overrides:
            self.loss(
                ("overrides", ov.id),
                "override",
                f"{ov.kind} {ov.id} of {ov.key} ({ov.scope_label}) is not exported: flagd "
                "has no overrides, TTLs or kill switches; the file holds the snapshot only",
            )
        out: dict[str, Any] = {"$schema": FLAGD_SCHEMA, "flags": flags}
        if evaluators:
            out["$evaluators"] = evaluators
        return out


def _weights(exp: Mapping[str, Any]) -> list[tuple[str, float]]:
    weights = exp["weights"]
    items = weights.items() if isinstance(weights, Mapping) else weights
    return [(str(v), float(w)) for v, w in items]


def export_flagd(
    registry: FlagRegistry,
    document: Mapping[str, Any],
    *,
    environment: str = "production",
    rev: int | None = None,
    overrides: Sequence[Override] = (),
    source: str | None = None,
) -> FlagdExport:
    """A normalised snapshot document as a flagd flag-definition file.

    Args:
        registry: the flags (every flag of the registry is exported).
        document: the normalised snapshot document (a stored rev's).
        environment: the environment whose slice is folded in (flagd has none).
        rev: the snapshot rev, recorded as the file's metadata ``version``.
        overrides: the active overrides, each reported as a loss.
        source: what losses are located in (default ``"rev N"``).

    Returns:
        the file and the losses (see the module docs).
    """
    where = source or (f"rev {rev}" if rev is not None else "<document>")
    exporter = _Exporter(registry, document, environment, where)
    out = exporter.export(overrides)
    metadata: dict[str, Any] = {"flagmw.environment": environment}
    if rev is not None:
        metadata["version"] = str(rev)
    out["metadata"] = metadata
    return FlagdExport(out, exporter.losses)
