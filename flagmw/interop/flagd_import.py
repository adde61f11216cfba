"""A flagd flag-definition file as a flagmw flags file (registry + snapshot document).

Accepted input: a flagd file (``{"flags": {...}, "$evaluators": {...}, "metadata":
{...}}``, https://flagd.dev/schema/v0/flags.json) and the OpenFeature conformance
suites' ``test-flags.json`` form (flags at the top level, ``disabled: true``,
``flagMetadata``, CEL ``contextEvaluator``). The file is **untrusted input**: it is read
with flagmw's document loader and limits (:mod:`flagmw.core.limits`), a ``$ref`` names an
entry of the same file's ``$evaluators`` only (never a file or a URL), and every problem
is a located :class:`~flagmw.errors.ValidationError`.

Each flag becomes (``docs/flagd.md`` has the table):

* a registry entry: the definition kept in metadata ``flagmw.flag`` by ``flagmw export``
  when present, else a type inferred from the variants (all booleans → ``bool``, all
  integers → ``int``, all numbers → ``float``, all strings → ``string``, else ``json``)
  with the default variant's value as default;
* the targeting's ``if`` chain, in order, as rules of the snapshot's global ``rules:``
  (flagmw's first-match-per-key is JsonLogic's first true branch), a branch returning
  null as a rule giving the default variant's value, the final ``else`` as a global value;
* a ``fractional`` branch as an experiment with ``bucketing: flagd`` (its ``when`` the
  branch condition minus the earlier branches; the later rules skip its condition, since
  flagd answers null — the default — when the unit is missing); a ``fractional`` compared
  with one variant inside a condition as a rollout.

What cannot be imported is returned as **losses** (severity ``warning``, stable codes):
``disabled`` (flagd answers the caller's code default; flagmw has no disabled state),
``no_default`` (a null default variant), ``cel`` (a ``contextEvaluator``), ``renamed``
(a key flagmw refuses, e.g. camelCase), ``unsupported`` (a JsonLogic construct without a
flagmw counterpart: the branch is left out, i.e. never matches), ``weights_rounded``
(weights whose total does not divide 10 000), ``metadata`` (flag metadata other than
``description`` and ``flagmw.flag``).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flagmw.core.bucketing import UNIT_ATTRIBUTES
from flagmw.core.flag_spec import KEY_PATTERN, MAX_KEY_LENGTH
from flagmw.core.registry import FlagRegistry
from flagmw.core.snapshot import validate_document
from flagmw.core.source import DocPath, Locator, load_document
from flagmw.errors import Problem, ValidationError
from flagmw.interop.flagd_conditions import FIELD_TO_FLAGD, Unsupported, jsonlogic_to_when
from flagmw.interop.flagd_flags import flagmw_key, flags_map, infer_type
from flagmw.interop.flagd_split import Split, parse_fractional, split_rollout

__all__ = ["FlagdImport", "import_flagd"]


@dataclass
class FlagdImport:
    """The result of :func:`import_flagd`.

    Attributes:
        document: the flags file (``flags:`` and the snapshot sections), valid.
        losses: what could not be carried over (severity ``warning``), each located.
    """

    document: dict[str, Any]
    losses: list[Problem] = field(default_factory=list)

    @property
    def lossy(self) -> bool:
        """Whether anything was lost (``--strict`` fails then)."""
        return any(p.severity == "warning" for p in self.losses)


_DEFAULT = object()  # the outcome "flagd's default variant" (a null targeting result)


class _Importer:
    def __init__(self, locator: Locator) -> None:
        self.loc = locator
        self.problems: list[Problem] = []
        self.losses: list[Problem] = []
        self.flags: dict[str, Any] = {}
        self.values: dict[str, Any] = {}
        self.rules: list[dict[str, Any]] = []
        self.experiments: dict[str, Any] = {}
        self.evaluators: Mapping[str, Any] = {}
        self.flagd_key = ""  # the flag being imported (flagd's $flagd.flagKey)

    def error(self, path: DocPath, message: str, hint: str = "", code: str = "invalid") -> None:
        self.problems.append(self.loc.problem(path, message, hint, code))

    def loss(self, path: DocPath, code: str, message: str, hint: str = "") -> None:
        problem = self.loc.problem(path, message, hint, code, severity="warning")
        if problem not in self.losses:  # a condition is read again for a later split
            self.losses.append(problem)

    # -- one flag -----------------------------------------------------------------------

    def flag(self, key: str, raw: Any, path: DocPath, test_dialect: bool) -> None:
        if not isinstance(raw, Mapping):
            self.error(path, f"flag {key!r} must be an object", code="wrong_type")
            return
        variants = raw.get("variants")
        if not isinstance(variants, Mapping) or not variants:
            self.error((*path, "variants"), f"flag {key!r} needs a non-empty variants object")
            return
        new_key = key
        if not (KEY_PATTERN.match(key) and len(key) <= MAX_KEY_LENGTH):
            new_key = flagmw_key(key)
            self.loss(
                path,
                "renamed",
                f"flag key {key!r} is not a flagmw key; imported as {new_key!r}",
                "applications must read the new key",
            )
        if new_key in self.flags:
            self.error(path, f"flag {key!r} and another flag both import as {new_key!r}")
            return
        disabled = raw.get("state") == "DISABLED" or raw.get("disabled") is True
        state = raw.get("state", "ENABLED")
        if not test_dialect and state not in ("ENABLED", "DISABLED"):
            self.error((*path, "state"), f"state must be ENABLED or DISABLED, got {state!r}")
            return
        if disabled:
            self.loss(
                path,
                "disabled",
                f"{key}: flagd answers a disabled flag with the caller's code default; flagmw "
                "has no disabled flags, so it resolves to its default variant",
                "kill it with `flagmw kill` if it must be off",
            )
        if "contextEvaluator" in raw:
            self.loss(
                (*path, "contextEvaluator"),
                "cel",
                f"{key}: CEL contextEvaluator is not imported; the flag resolves to its "
                "default variant",
                "rewrite it as flagd targeting (JsonLogic) or as flagmw rules",
            )
        meta = raw.get("flagMetadata" if test_dialect else "metadata") or {}
        definition = self.definition(key, meta, list(variants.values()), (*path, "metadata"))
        default_name = raw.get("defaultVariant")
        if default_name is None:
            first = next(iter(variants))
            self.loss(
                (*path, "defaultVariant"),
                "no_default",
                f"{key}: no default variant (flagd answers the caller's code default); flagmw "
                f"needs one: took variant {first!r}",
            )
            default_name = first
        if not isinstance(default_name, str) or default_name not in variants:
            self.error(
                (*path, "defaultVariant"), f"default variant {default_name!r} is not a variant"
            )
            return
        default_value = variants[default_name]
        definition.setdefault("default", default_value)
        self.flags[new_key] = definition
        if definition["default"] != default_value or type(definition["default"]) is not type(
            default_value
        ):
            self.values[new_key] = default_value
        targeting = raw.get("targeting")
        if targeting not in (None, {}):
            self.targeting(
                new_key, key, targeting, dict(variants), default_value, (*path, "targeting")
            )

    def definition(self, key: str, meta: Any, values: list[Any], path: DocPath) -> dict[str, Any]:
        if not isinstance(meta, Mapping):
            return infer_type(values)
        text = meta.get("flagmw.flag")
        definition: dict[str, Any] | None = None
        if isinstance(text, str):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                definition = parsed
            else:
                self.loss(path, "metadata", f"{key}: metadata flagmw.flag is not a JSON object")
        if definition is None:
            definition = infer_type(values)
            if isinstance(meta.get("description"), str):
                definition["description"] = meta["description"]
        extra = sorted(str(k) for k in meta if k not in ("flagmw.flag", "description"))
        if extra:
            self.loss(path, "metadata", f"{key}: flag metadata not imported: {', '.join(extra)}")
        return definition

    # -- targeting ----------------------------------------------------------------------

    def targeting(
        self,
        key: str,
        flagd_key: str,
        node: Any,
        variants: dict[str, Any],
        default: Any,
        path: DocPath,
    ) -> None:
        self.flagd_key = flagd_key
        entries: list[tuple[list[Any], Any, DocPath]] = []
        self.walk(node, [], entries, path, flagd_key, variants)
        # the first unconditional entry ends the chain
        for i, (conds, _, _) in enumerate(entries):
            if not conds:
                entries = entries[: i + 1]
                break
        negate_later: list[dict[str, Any]] = []
        earlier: list[tuple[list[Any], DocPath]] = []
        n_rule = n_exp = 0
        for conds, outcome, p in entries:
            try:
                when, rollout = self.conjunction(conds, p)
            except Unsupported as exc:
                self.unsupported(exc, p, key)
                continue
            if when is False:
                continue
            if isinstance(outcome, Split):
                self.missing_unit(outcome.text_key, outcome.unit, conds, p)
                if rollout is not None:
                    self.unsupported(Unsupported("a fractional split under a rollout"), p, key)
                    continue
                try:
                    before = [self.conjunction(c, q) for c, q in earlier]
                except Unsupported as exc:
                    self.unsupported(exc, p, key)
                    continue
                if any(r is not None for _, r in before):
                    self.unsupported(
                        Unsupported("a fractional split after a branch with a rollout"), p, key
                    )
                    continue
                parts = [w for w, _ in before if w is not True]
                full = _and([when, *({"not": w} for w in parts if w is not False)])
                exp: dict[str, Any] = outcome.experiment(key, variants, default)
                if full is not True:
                    exp["when"] = full
                n_exp += 1
                self.experiments[f"{key}-split-{n_exp}"] = exp
                if when is not True:
                    negate_later.append(when)
                else:
                    break  # nothing after an unconditional split is reached
                earlier.append((conds, p))
                continue
            value = default if outcome is _DEFAULT else outcome
            full = _and([when, *({"not": w} for w in negate_later)])
            earlier.append((conds, p))
            if full is True and rollout is None:
                if value != default or key in self.values:
                    self.values[key] = value
                break
            n_rule += 1
            rule: dict[str, Any] = {"name": f"{key}-if-{n_rule}", "set": {key: value}}
            if full is not True:
                rule["when"] = full
            if rollout is not None:
                self.missing_unit(rollout.pop("_text_key", False), rollout["unit"], conds, p)
                rule["rollout"] = rollout
            self.rules.append(rule)

    def missing_unit(self, text_key: bool, unit: str, conds: list[Any], path: DocPath) -> None:
        name = FIELD_TO_FLAGD[UNIT_ATTRIBUTES[unit]]
        if text_key and name not in _required(conds):
            self.loss(
                path,
                "missing_unit",
                f"{self.flagd_key}: a context without {name} is hashed as the text 'null' by "
                "flagd; flagmw gives it no share",
                f'require it in the condition: {{"!==": [{{"var": "{name}"}}, null]}}',
            )

    def unsupported(self, exc: Unsupported, path: DocPath, key: str) -> None:
        where = exc.path if exc.located else (*path, *exc.path)
        self.loss(
            where,
            "unsupported",
            f"{key}: {exc}; this targeting branch is not imported (never matches)",
        )

    def conjunction(self, conds: list[Any], path: DocPath) -> tuple[Any, dict[str, Any] | None]:
        whens: list[Any] = []
        rollout: dict[str, Any] | None = None
        for cond, cond_path in conds:
            try:
                rest, found = split_rollout(cond, self.flagd_key)
                if found is not None:
                    if rollout is not None:
                        raise Unsupported("two fractional rollouts in one branch")
                    rollout = found
                notes: list[tuple[DocPath, str]] = []
                whens.append(jsonlogic_to_when(rest, self.evaluators, notes=notes))
                for where, message in notes:
                    self.loss((*cond_path, *where), "coercion", f"{self.flagd_key}: {message}")
            except Unsupported as exc:
                if exc.located:
                    raise
                located = Unsupported(str(exc), (*cond_path, *exc.path))
                located.located = True
                raise located from None
        return _and(whens), rollout

    def walk(
        self,
        node: Any,
        conds: list[Any],
        out: list[tuple[list[Any], Any, DocPath]],
        path: DocPath,
        flagd_key: str,
        variants: dict[str, Any],
    ) -> None:
        if len(path) > 400:  # a loaded file is depth-limited already; a mapping is not
            self.error(path, "targeting is nested too deeply", code="too_large")
            return
        if node is None:
            out.append((conds, _DEFAULT, path))
            return
        if isinstance(node, bool):
            node = "true" if node else "false"
        if isinstance(node, str):
            if node not in variants:
                self.error(path, f"targeting returns {node!r}, which is not a variant")
                return
            out.append((conds, variants[node], path))
            return
        if isinstance(node, Mapping) and len(node) == 1 and "if" in node:
            args = node["if"]
            if not isinstance(args, list):
                self.error((*path, "if"), "if takes a list")
                return
            for i in range(0, len(args) - 1, 2):
                self.walk(
                    args[i + 1],
                    [*conds, (args[i], (*path, "if", i))],
                    out,
                    (*path, "if", i + 1),
                    flagd_key,
                    variants,
                )
            if len(args) % 2:
                self.walk(args[-1], conds, out, (*path, "if", len(args) - 1), flagd_key, variants)
            elif conds:
                out.append((conds, _DEFAULT, path))
            return
        if isinstance(node, Mapping) and len(node) == 1 and "fractional" in node:
            try:
                split = parse_fractional(node["fractional"], flagd_key)
            except Unsupported as exc:
                self.unsupported(exc, (*path, "fractional"), flagd_key)
                return
            for name in split.names():
                if name is not None and name not in variants:
                    self.error((*path, "fractional"), f"fractional names {name!r}, not a variant")
                    return
            if split.rounded:
                self.loss(
                    (*path, "fractional"),
                    "weights_rounded",
                    f"{flagd_key}: weights totalling {split.total} do not divide 10000; rounded "
                    "to 0.01 %: units near the boundaries may get another variant",
                )
            out.append((conds, split, path))
            return
        self.unsupported(Unsupported(f"a targeting result of {_short(node)}"), path, flagd_key)


def _required(conds: list[Any]) -> set[str]:
    """The context attributes a branch requires present: ``{"!==": [{"var": a}, null]}``
    (or ``!=``) as the condition or a term of its top ``and``."""
    out: set[str] = set()
    terms = [c for c, _ in conds]
    while terms:
        term = terms.pop()
        if isinstance(term, Mapping) and len(term) == 1:
            ((op, args),) = term.items()
            if op == "and" and isinstance(args, list):
                terms.extend(args)
            elif op in ("!==", "!=") and isinstance(args, list) and len(args) == 2:
                var, other = args if args[1] is None else args[::-1]
                if other is None and isinstance(var, Mapping) and isinstance(var.get("var"), str):
                    out.add(var["var"])
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _and(parts: list[Any]) -> Any:
    if any(p is False for p in parts):
        return False
    maps = [p for p in parts if p is not True]
    if not maps:
        return True
    if len(maps) == 1:
        return maps[0]
    out: dict[str, Any] = {}
    for m in maps:
        if any(k in out for k in m):
            return {"not": {"any": [{"not": m} for m in maps]}}
        out.update(m)
    return out


def import_flagd(
    source: str | os.PathLike[str] | Mapping[str, Any], *, locator: Locator | None = None
) -> FlagdImport:
    """Read a flagd file and return the equivalent flagmw flags file.

    Args:
        source: a path (JSON or YAML by suffix) or the loaded document.
        locator: where a loaded document came from (for locations).

    Returns:
        the flags file, validated against its own ``flags:`` section, and the losses.

    Raises:
        ValidationError: the file is unreadable, malformed, too large, or not a flagd file
            (every problem, located); nothing is written.
    """
    if locator is not None:
        data, loc = source, locator
    else:
        data, loc = load_document(source)
    imp = _Importer(loc)
    if not isinstance(data, Mapping):
        raise ValidationError(
            [loc.problem((), "a flagd file is a JSON object", "", "wrong_type")], loc.source
        )
    test_dialect = "flags" not in data
    flags = data.get("flags") if not test_dialect else data
    if isinstance(flags, list):  # flagd's array form: [{"key": …, "state": …}, …]
        flags = flags_map(flags, loc)
    if not isinstance(flags, Mapping) or (
        test_dialect and not all(isinstance(v, Mapping) and "variants" in v for v in flags.values())
    ):
        raise ValidationError(
            [
                loc.problem(
                    ("flags",),
                    "no flags object: not a flagd file",
                    'a flagd file has {"flags": {...}}',
                    "wrong_type",
                )
            ],
            loc.source,
        )
    evaluators = data.get("$evaluators", {}) if not test_dialect else {}
    if not isinstance(evaluators, Mapping):
        imp.error(("$evaluators",), "$evaluators must be an object", code="wrong_type")
        evaluators = {}
    imp.evaluators = evaluators
    base: DocPath = () if test_dialect else ("flags",)
    for key, raw in flags.items():
        imp.flag(str(key), raw, (*base, str(key)), test_dialect)
    if imp.problems:
        raise ValidationError(imp.problems, loc.source)
    document: dict[str, Any] = {"flags": imp.flags}
    # conditions are shared between rules and experiments: each gets its own copy
    imp.rules = copy.deepcopy(imp.rules)
    imp.experiments = copy.deepcopy(imp.experiments)
    if imp.values:
        document["values"] = imp.values
    if imp.rules:
        document["rules"] = imp.rules
    if imp.experiments:
        document["experiments"] = imp.experiments
    check = Locator(f"{loc.source} (imported)")
    registry = FlagRegistry.from_dict(document, locator=check)
    validate_document(document, registry, locator=check)
    return FlagdImport(document, imp.losses)
