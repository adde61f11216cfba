"""Validation and normalisation of a snapshot document against a registry: every
section checked, every problem located, shorthands expanded, values coerced to their
flag's type (:func:`flagmw.core.snapshot.validate_document` is the entry point)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flagmw.core import snapshot_spec as specs
from flagmw.core.bucketing import percent_to_bps
from flagmw.core.conditions import validate_when
from flagmw.core.flag_spec import FlagType
from flagmw.core.overlay_reuse import KnownOverlays
from flagmw.core.problems import did_you_mean, pydantic_problems
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot_spec import (
    FORMAT_VERSION,
    OVERLAY_FIELDS,
    SECTIONS,
    bucketing_fields,
    empty_document,
)
from flagmw.core.source import DocPath, Locator
from flagmw.core.validation_shapes import SCALARS, PlainSpec, plain_overlay, plain_rule
from flagmw.errors import Problem

if TYPE_CHECKING:  # pragma: no cover
    import pydantic

    from flagmw.core.snapshot_spec import OverlaySpec

__all__ = ["DocumentValidator"]

_BAD = object()


def _pairs(items: list[Any]) -> Any:
    """The normalised weights form (a list of ``[variant, weight]``) as an ordered
    mapping, when it is one; anything else is returned for pydantic to report."""
    if all(isinstance(i, list | tuple) and len(i) == 2 and isinstance(i[0], str) for i in items):
        return {name: weight for name, weight in items}
    return items


def _given(value: Any, empty: Any) -> Any:
    """``value``, or ``empty`` when the section is absent or null."""
    return empty if value is None else value


class DocumentValidator:
    """Validates one document (:meth:`document`), collecting :attr:`problems`."""

    def __init__(
        self, registry: FlagRegistry, locator: Locator, known: KnownOverlays | None = None
    ) -> None:
        self.registry = registry
        #: the head's overlays: one written exactly as stored is not validated again
        self.known = known
        self.loc = locator
        self.problems: list[Problem] = []
        self.segments: dict[str, Any] = {}
        self._accepted: dict[tuple[Any, type, Any], Any] = {}

    def add(
        self,
        path: DocPath,
        message: str,
        hint: str = "",
        code: str = "invalid",
        severity: str = "error",
    ) -> None:
        self.problems.append(self.loc.problem(path, message, hint, code, severity=severity))

    def parse(self, model: type[pydantic.BaseModel], data: Any, path: DocPath, what: str) -> Any:
        import pydantic  # the models are built: it is loaded (and needed) already

        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            self.problems.extend(pydantic_problems(exc, self.loc, path, model, what=what))
            return None

    # -- values -----------------------------------------------------------------------

    def values(self, data: Any, path: DocPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not isinstance(data, Mapping):
            self.add(path, "values must be a mapping of flag key → value", "", "wrong_type")
            return out
        accepted = self._accepted
        for key, value in data.items():
            kind = type(value)
            if kind in SCALARS:  # value()'s memo, inlined: most values were seen before
                hit = accepted.get((key, kind, value), _BAD)
                if hit is not _BAD:
                    out[key] = hit
                    continue
            coerced = self.value(key, value, (*path, str(key)))
            if coerced is not _BAD:
                out[key] = coerced
        return out

    def value(self, key: Any, value: Any, path: DocPath) -> Any:
        # a scalar that passed for this key before passes again with the same result
        # (tenants repeat the same few values: 330k checks for 100k tenants)
        memo: tuple[Any, type, Any] | None = None
        if type(value) in SCALARS:
            memo = (key, type(value), value)
        elif type(value) is list and all(type(v) in SCALARS for v in value):
            memo = (key, list, tuple((type(v), v) for v in value))
        if memo is not None:
            hit = self._accepted.get(memo, _BAD)
            if hit is not _BAD:
                return list(hit) if type(hit) is list else hit
        flag = self.registry.get(key) if isinstance(key, str) else None
        if flag is None:
            hint = did_you_mean(str(key), self.registry.keys()) or "define it in the registry first"
            self.add(path, f"unknown flag {key!r}", hint, "unknown_key")
            return _BAD
        coerced, problem = flag.check(value, self.loc, path)
        if problem is not None:
            self.problems.append(problem)
            return _BAD
        if memo is not None and (
            type(coerced) in SCALARS
            or (type(coerced) is list and all(type(v) in SCALARS for v in coerced))
        ):
            self._accepted[memo] = list(coerced) if type(coerced) is list else coerced
        return coerced

    def rules(self, data: Any, path: DocPath) -> list[dict[str, Any]]:
        if not isinstance(data, list):
            self.add(path, "rules must be a list", "", "wrong_type")
            return []
        out = []
        seen: dict[str, int] = {}
        for i, raw in enumerate(data):
            p = (*path, i)
            spec: Any = plain_rule(raw)  # the common shape without building the model
            if spec is None:
                spec = self.parse(specs.RuleSpec, raw, p, "rule")
            if spec is None:
                continue
            if spec.name in seen:
                self.add(
                    (*p, "name"),
                    f"duplicate rule name {spec.name!r} (also rule {seen[spec.name]})",
                    "rule names appear in provenance; make them unique",
                    "duplicate_rule",
                )
            seen[spec.name] = i
            if spec.when is not None:
                self.problems.extend(
                    validate_when(spec.when, self.loc, (*p, "when"), self.segments)
                )
            if not spec.set_:
                self.add((*p, "set"), f"rule {spec.name!r} sets nothing", "add set: {key: value}")
            values = self.values(spec.set_, (*p, "set"))
            rule: dict[str, Any] = {"name": spec.name, "set": values}
            if spec.description:
                rule["description"] = spec.description
            if spec.when:
                rule["when"] = spec.when
            if spec.rollout is not None:
                rollout = spec.rollout
                if percent_to_bps(rollout.percent) != round(rollout.percent * 100, 6):
                    self.add(
                        (*p, "rollout", "percent"),
                        f"percent {rollout.percent} is finer than 0.01",
                        "round it to two decimals",
                        "precision",
                    )
                rule["rollout"] = {
                    "percent": rollout.percent,
                    "unit": rollout.unit,
                    **bucketing_fields(rollout, spec.name),
                }
            out.append(rule)
        return out

    def overlay(
        self,
        data: Any,
        path: DocPath,
        spec_cls: type[OverlaySpec],
        what: str,
        shorthand: bool = False,
    ) -> dict[str, Any] | None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.add(path, f"{what} must be a mapping", "", "wrong_type")
            return None
        if shorthand and data and not any(k in OVERLAY_FIELDS for k in data):
            # `staging: {model.primary: x}`: the values sit right at `path` in the file
            return {"values": self.values(data, path), "rules": []}
        raw_values = data.get("values", {})
        raw_rules = data.get("rules", [])
        structure = {k: v for k, v in data.items() if k not in ("values", "rules")}
        spec: Any
        if plain_overlay(structure, spec_cls):
            # the common shape (no fields but requires/description, well typed): the
            # model would accept it as it is, so skip building it (100k tenants)
            spec = PlainSpec(structure.get("description", ""))
        else:
            spec = self.parse(spec_cls, structure, path, what)
        out: dict[str, Any] = {
            "values": self.values(raw_values, (*path, "values")),
            "rules": self.rules(raw_rules, (*path, "rules")),
        }
        if spec is not None and spec.description:
            out["description"] = spec.description
        if spec_cls is specs.TenantSpec:
            # checked even when another field of the tenant is wrong: one report, all
            # problems
            raw_requires = data.get("requires", [])
            if isinstance(raw_requires, list) and all(isinstance(k, str) for k in raw_requires):
                out["requires"] = self.requires(raw_requires, out, (*path, "requires"))
            elif spec is not None:
                out["requires"] = []
        return out

    def requires(self, keys: list[str], overlay: dict[str, Any], path: DocPath) -> list[str]:
        out = []
        for i, key in enumerate(keys):
            flag = self.registry.get(key)
            if flag is None:
                self.add(
                    (*path, i),
                    f"unknown flag {key!r}",
                    did_you_mean(key, self.registry.keys()) or "",
                    "unknown_key",
                )
                continue
            if not flag.protected or flag.type is not FlagType.BOOL:
                self.add(
                    (*path, i),
                    f"{key} is not a protected bool flag; only those can be required",
                    "set protected: true on the flag (and type: bool)",
                    "not_protected",
                )
                continue
            if overlay["values"].get(key) is False:
                self.add(
                    (*path, i),
                    f"the tenant requires {key} on but its values set it to false",
                    "remove one of the two",
                    "contradiction",
                )
            out.append(key)
        return out

    # -- sections -----------------------------------------------------------------------

    def experiments(self, data: Any, path: DocPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not isinstance(data, Mapping):
            self.add(path, "experiments must be a mapping of name → experiment", "", "wrong_type")
            return out
        for position, (name, raw) in enumerate(data.items()):
            p = (*path, str(name))
            if isinstance(raw, Mapping) and isinstance(raw.get("weights"), list):
                raw = {**raw, "weights": _pairs(raw["weights"])}
            spec = self.parse(specs.ExperimentSpec, raw, p, "experiment")
            if spec is None:
                # still report an unknown target flag: one report, all problems
                target = raw.get("flag") if isinstance(raw, Mapping) else None
                if isinstance(target, str) and target not in self.registry:
                    self.add(
                        (*p, "flag"),
                        f"experiment {name!r} targets unknown flag {target!r}",
                        did_you_mean(target, self.registry.keys()) or "",
                        "unknown_key",
                    )
                continue
            flag = self.registry.get(spec.flag)
            if flag is None:
                self.add(
                    (*p, "flag"),
                    f"experiment {name!r} targets unknown flag {spec.flag!r}",
                    did_you_mean(spec.flag, self.registry.keys()) or "",
                    "unknown_key",
                )
            if spec.when is not None:
                self.problems.extend(
                    validate_when(spec.when, self.loc, (*p, "when"), self.segments)
                )
            if not spec.variants:
                self.add(
                    (*p, "variants"),
                    f"experiment {name!r} has no variants",
                    "e.g. variants: {control: v2, treatment: v3}",
                )
            variants: dict[str, Any] = {}
            for vname, value in spec.variants.items():
                if flag is None:
                    continue
                coerced, problem = flag.check(value, self.loc, (*p, "variants", vname))
                if problem is not None:
                    self.problems.append(problem)
                else:
                    variants[vname] = coerced
            weights: dict[str, float] = {}
            for vname, w in spec.weights.items():
                wp = (*p, "weights", vname)
                if vname not in spec.variants:
                    self.add(
                        wp,
                        f"weight for unknown variant {vname!r}",
                        did_you_mean(vname, spec.variants)
                        or "variants are: " + ", ".join(spec.variants),
                        "unknown_variant",
                    )
                    continue
                if w < 0:
                    self.add(wp, f"weight {w} is negative", "", "out_of_bounds")
                    continue
                if percent_to_bps(w) != round(w * 100, 6):
                    self.add(wp, f"weight {w} is finer than 0.01 %", "round it", "precision")
                weights[vname] = w
            for vname in spec.variants:
                if vname not in spec.weights:
                    self.add(
                        (*p, "weights"),
                        f"variant {vname!r} has no weight",
                        "give it a weight (0 keeps it defined but unused)",
                        "missing_weight",
                    )
            total = sum(percent_to_bps(w) for w in weights.values())
            if weights and len(weights) == len(spec.weights) and total != 10_000:
                self.add(
                    (*p, "weights"),
                    f"weights of experiment {name!r} sum to {total / 100:g} %, not 100 %",
                    "adjust them so they add up to 100",
                    "weights_sum",
                )
            exp: dict[str, Any] = {
                "flag": spec.flag,
                "unit": spec.unit,
                "variants": variants,
                # a list of [variant, weight]: the written order lays the variants over
                # the buckets, so it must be part of the content (and its hash)
                "weights": [[vname, w] for vname, w in weights.items()],
                **bucketing_fields(spec, str(name)),
                "enabled": spec.enabled,
                "order": position,
            }
            if spec.when:
                exp["when"] = spec.when
            if spec.description:
                exp["description"] = spec.description
            out[str(name)] = exp
        by_flag: dict[str, list[str]] = {}
        for name, exp in out.items():
            if exp["enabled"]:
                by_flag.setdefault(exp["flag"], []).append(name)
        for flag_key, names in by_flag.items():
            if len(names) > 1:
                self.add(
                    path,
                    f"experiments {', '.join(names)} all target {flag_key}; a context that "
                    "several of them admit gets the first one written",
                    "give them exclusive `when` conditions, or disable all but one",
                    "overlapping_experiments",
                    severity="warning",
                )
        return out

    def named(self, data: Any, path: DocPath, what: str) -> Mapping[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            self.add(path, f"{what} must be a mapping of name → definition", "", "wrong_type")
            return {}
        bad = [k for k in data if not isinstance(k, str) or not k]
        for k in bad:
            self.add(
                (*path, str(k)),
                f"{what} names must be non-empty strings, got {k!r}",
                "",
                "wrong_type",
            )
        return {k: v for k, v in data.items() if k not in bad}

    def document(self, data: Any) -> dict[str, Any]:
        doc = empty_document()
        if data is None:
            return doc
        if not isinstance(data, Mapping):
            self.add(
                (),
                "a snapshot document must be a mapping of sections",
                "sections: " + ", ".join(SECTIONS[3:]),
                "wrong_type",
            )
            return doc
        for section in data:
            if section not in SECTIONS:
                self.add(
                    (str(section),),
                    f"unknown section {section!r}",
                    did_you_mean(str(section), SECTIONS) or "sections: " + ", ".join(SECTIONS),
                    "unknown_section",
                )
        version = data.get("version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            self.add(
                ("version",),
                f"unsupported format version {version!r}",
                f"this flagmw reads version {FORMAT_VERSION}",
                "version",
            )
        # segments first: rules and experiments refer to them
        segments = self.named(data.get("segments"), ("segments",), "segments")
        self.segments = dict(segments)
        for name, when in segments.items():
            self.problems.extend(
                validate_when(when, self.loc, ("segments", name), {}, in_segment=True)
            )
        doc["segments"] = dict(segments)
        for env, raw in self.named(
            data.get("environments"), ("environments",), "environments"
        ).items():
            ov = self.overlay(
                raw, ("environments", env), specs.OverlaySpec, "environment", shorthand=True
            )
            if ov is not None:
                doc["environments"][env] = ov
        # only an absent (or null) section is empty: `rules: {}` is a mapping where a list
        # belongs, `experiments: []` a list where a mapping does — both are problems
        doc["values"] = self.values(_given(data.get("values"), {}), ("values",))
        doc["rules"] = self.rules(_given(data.get("rules"), []), ("rules",))
        known = self.known if self.known and self.known.same_segments(segments) else None
        for section, spec_cls, what in (
            ("tenants", specs.TenantSpec, "tenant"),
            ("routes", specs.OverlaySpec, "route"),
        ):
            for name, raw in self.named(data.get(section), (section,), section).items():
                ov = known.match(section, name, raw) if known is not None else None
                if ov is None:
                    ov = self.overlay(raw, (section, name), spec_cls, what)
                if ov is not None:
                    doc[section][name] = ov
        doc["experiments"] = self.experiments(_given(data.get("experiments"), {}), ("experiments",))
        if data.get("description"):
            doc["description"] = str(data["description"])
        return doc
