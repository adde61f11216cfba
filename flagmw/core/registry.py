"""The flag registry: the typed schema of every flag an application reads.

A registry is defined in YAML (the ``flags:`` section of a flags file) or in
Python; both produce the same :class:`FlagRegistry`::

    flags:
      tools.refund_api.enabled: {type: bool, default: true, binding: hot, owner: payments}
      model.primary: {type: enum, choices: [gpt-4o, gpt-4o-mini], default: gpt-4o}

    FlagRegistry([
        Flag("tools.refund_api.enabled", "bool", True, binding="hot", owner="payments"),
        Flag("model.primary", "enum", "gpt-4o", choices=("gpt-4o", "gpt-4o-mini")),
    ])

Values are checked strictly when a snapshot is published, never discovered at run
time: ``"flase"`` is an error for a bool, ``"5"`` is an error for an int.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pydantic

from flagmw.core.canonical import content_hash
from flagmw.core.problems import did_you_mean, pydantic_problems, suggest
from flagmw.core.source import DocPath, Locator, load_document
from flagmw.errors import Problem, UnknownFlagError, ValidationError

__all__ = ["KEY_PATTERN", "Binding", "Flag", "FlagRegistry", "FlagType", "env_var_name"]

#: Flag keys: dotted lower case, at least two segments, e.g. ``tools.refund_api.enabled``.
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")
MAX_KEY_LENGTH = 128


class FlagType(StrEnum):
    """The type of a flag's value."""

    BOOL = "bool"
    ENUM = "enum"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    JSON = "json"


class Binding(StrEnum):
    """When a flag binds to a run.

    ``pinned``: resolved once at run start, never changes inside a run (default).
    ``hot``: re-resolved at every step boundary, so a kill reaches a run in flight.
    """

    PINNED = "pinned"
    HOT = "hot"


class _BadValue(Exception):
    def __init__(self, message: str, hint: str = "", code: str = "wrong_type") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


_BOOL_WORDS = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
    "1": True,
    "0": False,
}


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


@dataclass(frozen=True, slots=True, eq=False)
class Flag:
    """One typed, named knob.

    Args:
        key: dotted lower case, e.g. ``"tools.refund_api.enabled"``.
        type: a :class:`FlagType` or its name (``"bool"``, ``"enum"``, ``"int"``,
            ``"float"``, ``"string"``, ``"json"``).
        default: the value of the ``default`` layer; must fit the type.
        description: what the flag does (shown by ``flagmw explain``).
        owner: the team or person who owns it.
        tags: free labels.
        binding: ``"pinned"`` (default) or ``"hot"``.
        expires: a date after which ``flagmw validate`` and ``flagmw lint`` warn that
            the flag is past its deprecation date.
        protected: a global kill does not turn it off for a tenant that requires it
            (``tenants.<id>.requires``) unless the kill says ``force``.
        run_kill: a hot bool flag whose kill (value ``false``) drains runs in flight
            (e.g. ``agent.enabled``).
        sensitive: its value is redacted in traces.
        choices: the allowed values of an ``enum`` flag (strings).
        min, max: inclusive bounds of an ``int`` / ``float`` flag.
        schema: a JSON schema (Draft 2020-12) that a ``json`` flag's value must match.
        model: a pydantic model that a ``json`` flag's value must validate against
            (Python only). ``RunConfig[key]`` then returns a model instance.

    Raises:
        ValidationError: the definition is invalid (bad key, default of the wrong
            type, bounds reversed, …), with every problem listed.
    """

    key: str
    type: FlagType
    default: Any
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    binding: Binding = Binding.PINNED
    expires: _dt.date | None = None
    protected: bool = False
    run_kill: bool = False
    sensitive: bool = False
    choices: tuple[str, ...] | None = None
    min: int | float | None = None
    max: int | float | None = None
    schema: Mapping[str, Any] | None = None
    model: builtins.type[pydantic.BaseModel] | None = None
    _validator: Any = field(default=None, repr=False, compare=False)

    def __init__(
        self,
        key: str,
        type: FlagType | str,
        default: Any,
        *,
        description: str = "",
        owner: str = "",
        tags: Iterable[str] = (),
        binding: Binding | str = Binding.PINNED,
        expires: _dt.date | str | None = None,
        protected: bool = False,
        run_kill: bool = False,
        sensitive: bool = False,
        choices: Iterable[str] | None = None,
        min: int | float | None = None,
        max: int | float | None = None,
        schema: Mapping[str, Any] | None = None,
        model: builtins.type[pydantic.BaseModel] | None = None,
    ) -> None:
        problems = _flag_problems(
            key,
            type,
            default,
            binding=binding,
            expires=expires,
            choices=choices,
            min=min,
            max=max,
            schema=schema,
            model=model,
            run_kill=run_kill,
            locator=Locator("<python>"),
            path=("flags", key),
        )
        if problems:
            raise ValidationError(problems, f"flag {key!r}")
        setter = object.__setattr__
        setter(self, "key", key)
        setter(self, "type", FlagType(type))
        setter(self, "description", description)
        setter(self, "owner", owner)
        setter(self, "tags", tuple(tags))
        setter(self, "binding", Binding(binding))
        setter(self, "expires", _as_date(expires))
        setter(self, "protected", bool(protected))
        setter(self, "run_kill", bool(run_kill))
        setter(self, "sensitive", bool(sensitive))
        setter(self, "choices", tuple(choices) if choices is not None else None)
        setter(self, "min", min)
        setter(self, "max", max)
        setter(self, "schema", dict(schema) if schema is not None else None)
        setter(self, "model", model)
        validator = None
        if schema is not None:
            import jsonschema

            validator = jsonschema.Draft202012Validator(dict(schema))
        setter(self, "_validator", validator)
        setter(self, "default", None)
        setter(self, "default", self.coerce(default))

    # -- values -----------------------------------------------------------------------

    def coerce(self, value: Any) -> Any:
        """Check ``value`` against the flag's type and return its normalised JSON form
        (floats as ``float``, pydantic models dumped to JSON).

        Raises:
            ValidationError: the value does not fit (one problem, located at the flag).
        """
        try:
            return self._coerce(value)
        except _BadValue as bad:
            raise ValidationError(
                [Problem("<python>", self.key, bad.message, bad.hint, bad.code)], self.key
            ) from None

    def check(self, value: Any, locator: Locator, path: DocPath) -> tuple[Any, Problem | None]:
        """Like :meth:`coerce` but returns ``(value, problem)`` located at ``path``."""
        try:
            return self._coerce(value), None
        except _BadValue as bad:
            return None, locator.problem(path, bad.message, bad.hint, bad.code)

    def _coerce(self, value: Any) -> Any:
        t = self.type
        key = self.key
        if t is FlagType.BOOL:
            if value is True or value is False:
                return value
            hint = "write true or false, without quotes"
            if isinstance(value, str):
                word = value.strip().lower()
                if word in _BOOL_WORDS:
                    hint = f"write {str(_BOOL_WORDS[word]).lower()} without quotes"
                else:
                    close = suggest(word, ["true", "false"], n=1)
                    if close:
                        hint = f"did you mean {close[0]}?"
            raise _BadValue(f"{key} is a bool flag; got {_describe(value)}", hint)
        if t is FlagType.INT:
            if isinstance(value, bool) or not isinstance(value, int):
                hint = ""
                if isinstance(value, float) and value.is_integer():
                    hint = f"write {int(value)}"
                elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
                    hint = f"write {value.strip()} without quotes"
                raise _BadValue(f"{key} is an int flag; got {_describe(value)}", hint)
            self._check_bounds(value)
            return value
        if t is FlagType.FLOAT:
            if isinstance(value, bool) or not isinstance(value, int | float):
                hint = ""
                if isinstance(value, str):
                    try:
                        float(value)
                        hint = f"write {value.strip()} without quotes"
                    except ValueError:
                        pass
                raise _BadValue(f"{key} is a float flag; got {_describe(value)}", hint)
            if not math.isfinite(value):
                raise _BadValue(f"{key} is a float flag; got {value!r}", "use a finite number")
            self._check_bounds(value)
            return float(value)
        if t is FlagType.ENUM:
            assert self.choices is not None
            if not isinstance(value, str) or value not in self.choices:
                hint = did_you_mean(str(value), self.choices) or (
                    "expected one of " + ", ".join(self.choices)
                )
                raise _BadValue(
                    f"{key}: unknown choice {value!r}; expected one of {', '.join(self.choices)}",
                    hint,
                    "unknown_choice",
                )
            return value
        if t is FlagType.STRING:
            if not isinstance(value, str):
                raise _BadValue(
                    f"{key} is a string flag; got {_describe(value)}", "quote the value"
                )
            return value
        # JSON
        if self.model is not None:
            try:
                return self.model.model_validate(value).model_dump(mode="json")
            except pydantic.ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise _BadValue(
                    f"{key} does not match {self.model.__name__}: "
                    f"{where + ': ' if where else ''}{first['msg']}",
                    f"{exc.error_count()} error(s) in all",
                    "schema",
                ) from None
        if not _is_json(value):
            raise _BadValue(
                f"{key} is a json flag; got {_describe(value)} which is not JSON",
                "use strings, numbers, booleans, null, lists and mappings",
                "schema",
            )
        if self._validator is not None:
            import jsonschema

            best = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
            if best is not None:
                where = "/".join(str(p) for p in best.absolute_path)
                raise _BadValue(
                    f"{key} does not match its JSON schema: "
                    f"{'at ' + where + ': ' if where else ''}{best.message}",
                    "",
                    "schema",
                )
        return value

    def _check_bounds(self, value: int | float) -> None:
        if self.min is not None and value < self.min:
            raise _BadValue(
                f"{self.key}: {value} is below the minimum {self.min}",
                f"use a value in [{self.min}, {self.max if self.max is not None else '∞'}]",
                "out_of_bounds",
            )
        if self.max is not None and value > self.max:
            raise _BadValue(
                f"{self.key}: {value} is above the maximum {self.max}",
                f"use a value in [{self.min if self.min is not None else '-∞'}, {self.max}]",
                "out_of_bounds",
            )

    # -- identity -----------------------------------------------------------------

    @property
    def hot(self) -> bool:
        """True when the binding is ``hot``."""
        return self.binding is Binding.HOT

    def to_dict(self) -> dict[str, Any]:
        """The definition as JSON primitives (the YAML spec form, without the key).

        A pydantic ``model`` is represented by its JSON schema.
        """
        out: dict[str, Any] = {"type": self.type.value, "default": self.default}
        if self.description:
            out["description"] = self.description
        if self.owner:
            out["owner"] = self.owner
        if self.tags:
            out["tags"] = list(self.tags)
        if self.binding is not Binding.PINNED:
            out["binding"] = self.binding.value
        if self.expires is not None:
            out["expires"] = self.expires.isoformat()
        for name in ("protected", "run_kill", "sensitive"):
            if getattr(self, name):
                out[name] = True
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.schema is not None:
            out["schema"] = dict(self.schema)
        if self.model is not None:
            out["schema"] = self.model.model_json_schema()
            out["model"] = f"{self.model.__module__}.{self.model.__qualname__}"
        return out

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Flag)
            and self.key == other.key
            and (self.to_dict() == other.to_dict())
        )

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Flag({self.key!r}, {self.type.value!r}, default={self.default!r})"


def _as_date(value: _dt.date | str | None) -> _dt.date | None:
    if value is None or isinstance(value, _dt.date):
        if isinstance(value, _dt.datetime):
            return value.date()
        return value
    return _dt.date.fromisoformat(value)


def _flag_problems(
    key: Any,
    type_: Any,
    default: Any,
    *,
    binding: Any,
    expires: Any,
    choices: Any,
    min: Any,
    max: Any,
    schema: Any,
    model: Any,
    run_kill: Any,
    locator: Locator,
    path: DocPath,
) -> list[Problem]:
    """Structural problems of one flag definition (not the default's value)."""
    out: list[Problem] = []
    if not isinstance(key, str) or not KEY_PATTERN.match(key) or len(key) > MAX_KEY_LENGTH:
        fixed = re.sub(r"[^a-z0-9_.]+", "_", str(key).lower().replace("-", "_"))
        out.append(
            locator.problem(
                path,
                f"invalid flag key {key!r}: keys are dotted lower case with at least two "
                "segments (letters, digits, underscores), at most 128 characters",
                f"e.g. {fixed!r}"
                if KEY_PATTERN.match(fixed)
                else "e.g. 'tools.refund_api.enabled'",
                "invalid_key",
            )
        )
    try:
        t = FlagType(type_)
    except ValueError:
        out.append(
            locator.problem(
                (*path, "type"),
                f"unknown flag type {type_!r}",
                did_you_mean(str(type_), [x.value for x in FlagType])
                or "one of " + ", ".join(x.value for x in FlagType),
                "unknown_type",
            )
        )
        return out
    try:
        b = Binding(binding)
    except ValueError:
        out.append(
            locator.problem(
                (*path, "binding"),
                f"unknown binding {binding!r}",
                "use pinned or hot",
                "unknown_binding",
            )
        )
        b = Binding.PINNED
    if expires is not None:
        try:
            _as_date(expires)
        except (TypeError, ValueError):
            out.append(
                locator.problem(
                    (*path, "expires"),
                    f"invalid date {expires!r}",
                    "write YYYY-MM-DD",
                    "wrong_type",
                )
            )
    if t is FlagType.ENUM:
        if not choices or not isinstance(choices, list | tuple):
            out.append(
                locator.problem(
                    (*path, "choices"),
                    "an enum flag needs a list of choices",
                    "e.g. choices: [gpt-4o, gpt-4o-mini]",
                    "missing_field",
                )
            )
        elif not all(isinstance(c, str) for c in choices) or len(set(choices)) != len(choices):
            out.append(
                locator.problem(
                    (*path, "choices"),
                    "choices must be distinct strings",
                    "quote numeric choices",
                    "wrong_type",
                )
            )
    elif choices is not None:
        out.append(
            locator.problem(
                (*path, "choices"),
                f"choices only apply to enum flags, not {t}",
                "remove choices or use type: enum",
                "invalid",
            )
        )
    if t in (FlagType.INT, FlagType.FLOAT):
        for name, bound in (("min", min), ("max", max)):
            if bound is not None and (
                isinstance(bound, bool)
                or not isinstance(bound, int | float)
                or (t is FlagType.INT and not isinstance(bound, int))
            ):
                out.append(
                    locator.problem(
                        (*path, name), f"{name} must be a number, got {bound!r}", "", "wrong_type"
                    )
                )
        if isinstance(min, int | float) and isinstance(max, int | float) and min > max:
            out.append(
                locator.problem(
                    (*path, "min"), f"min {min} is above max {max}", "swap them", "invalid"
                )
            )
    elif min is not None or max is not None:
        out.append(
            locator.problem(
                (*path, "min" if min is not None else "max"),
                f"bounds only apply to int and float flags, not {t}",
                "remove min/max",
                "invalid",
            )
        )
    if t is FlagType.JSON:
        if schema is not None and model is not None:
            out.append(
                locator.problem(
                    (*path, "schema"),
                    "give a JSON schema or a pydantic model, not both",
                    "",
                    "invalid",
                )
            )
        if schema is not None:
            if not isinstance(schema, Mapping):
                out.append(
                    locator.problem(
                        (*path, "schema"),
                        "schema must be a mapping (a JSON schema)",
                        "",
                        "wrong_type",
                    )
                )
            else:
                import jsonschema

                try:
                    jsonschema.Draft202012Validator.check_schema(dict(schema))
                except jsonschema.SchemaError as exc:
                    out.append(
                        locator.problem(
                            (*path, "schema"),
                            f"not a valid JSON schema: {exc.message}",
                            "",
                            "schema",
                        )
                    )
    elif schema is not None or model is not None:
        out.append(
            locator.problem(
                (*path, "schema"),
                f"a schema only applies to json flags, not {t}",
                "remove schema or use type: json",
                "invalid",
            )
        )
    if run_kill and (t is not FlagType.BOOL or b is not Binding.HOT):
        out.append(
            locator.problem(
                (*path, "run_kill"),
                "a run kill flag must be a hot bool flag",
                "set type: bool and binding: hot",
                "invalid",
            )
        )
    return out


class _FlagSpec(pydantic.BaseModel):
    """The YAML form of one flag definition (structure only)."""

    model_config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    type: str
    default: Any = pydantic.Field(default=...)
    description: str = ""
    owner: str = ""
    tags: list[str] = []
    binding: str = "pinned"
    expires: _dt.date | None = None
    protected: bool = False
    run_kill: bool = False
    sensitive: bool = False
    choices: list[Any] | None = None
    min: int | float | None = None
    max: int | float | None = None
    schema_: dict[str, Any] | None = pydantic.Field(default=None, alias="schema")
    model: str | None = None  # informational (a registry exported from Python)


def env_var_name(key: str) -> str:
    """The ``FF_`` process variable for a key: ``tools.refund_api.enabled`` →
    ``FF_TOOLS_REFUND_API_ENABLED``."""
    return "FF_" + key.upper().replace(".", "_")


class FlagRegistry:
    """The schema of all flags of one application.

    Args:
        flags: the flag definitions.
        source: where they came from (for messages).

    Raises:
        ValidationError: duplicate keys, or a key that is also a prefix of another key
            (``model`` and ``model.primary`` cannot both be flags).
    """

    def __init__(self, flags: Iterable[Flag], *, source: str = "<python>") -> None:
        self.source = source
        self._flags: dict[str, Flag] = {}
        problems: list[Problem] = []
        for f in flags:
            if f.key in self._flags:
                problems.append(
                    Problem(
                        source,
                        f"flags[{f.key}]",
                        f"duplicate flag {f.key!r}",
                        "define each key once",
                        "duplicate_key",
                    )
                )
            self._flags[f.key] = f
        problems.extend(_prefix_problems(self._flags, Locator(source)))
        if problems:
            raise ValidationError(problems, source)
        self.hot_keys: frozenset[str] = frozenset(k for k, f in self._flags.items() if f.hot)
        self.run_kill_keys: frozenset[str] = frozenset(
            k for k, f in self._flags.items() if f.run_kill
        )
        self._fingerprint: str | None = None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> FlagRegistry:
        """Read the ``flags:`` section of a YAML (or JSON) flags file.

        Raises:
            ValidationError: with every problem and its ``file:line``.
        """
        data, locator = load_document(path)
        return cls.from_dict(data, locator=locator)

    from_file = from_yaml

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, locator: Locator | None = None) -> FlagRegistry:
        """Build a registry from a document holding a ``flags:`` mapping (other sections
        are ignored) or from the ``flags`` mapping itself.

        Raises:
            ValidationError: with every problem and its location.
        """
        locator = locator or Locator("<document>")
        if not isinstance(data, Mapping):
            raise ValidationError(
                [locator.problem((), "expected a mapping with a flags: section", "", "wrong_type")],
                locator.source,
            )
        base: DocPath = ("flags",) if "flags" in data else ()
        section = data.get("flags", data)
        if not isinstance(section, Mapping):
            raise ValidationError(
                [
                    locator.problem(
                        base, "flags: must be a mapping of key → definition", "", "wrong_type"
                    )
                ],
                locator.source,
            )
        problems: list[Problem] = []
        flags: list[Flag] = []
        for key, spec in section.items():
            path = (*base, str(key))
            if not isinstance(spec, Mapping):
                problems.append(
                    locator.problem(
                        path,
                        f"flag {key!r} must be a mapping",
                        "e.g. {type: bool, default: false}",
                        "wrong_type",
                    )
                )
                continue
            try:
                parsed = _FlagSpec.model_validate(dict(spec))
            except pydantic.ValidationError as exc:
                problems.extend(pydantic_problems(exc, locator, path, _FlagSpec, what="flag"))
                continue
            structural = _flag_problems(
                key,
                parsed.type,
                parsed.default,
                binding=parsed.binding,
                expires=parsed.expires,
                choices=parsed.choices,
                min=parsed.min,
                max=parsed.max,
                schema=parsed.schema_,
                model=None,
                run_kill=parsed.run_kill,
                locator=locator,
                path=path,
            )
            if structural:
                problems.extend(structural)
                continue
            try:
                flag = Flag(
                    key,
                    parsed.type,
                    parsed.default,
                    description=parsed.description,
                    owner=parsed.owner,
                    tags=parsed.tags,
                    binding=parsed.binding,
                    expires=parsed.expires,
                    protected=parsed.protected,
                    run_kill=parsed.run_kill,
                    sensitive=parsed.sensitive,
                    choices=parsed.choices,
                    min=parsed.min,
                    max=parsed.max,
                    schema=parsed.schema_,
                )
            except ValidationError as exc:
                for p in exc.problems:  # the default does not fit: point at `default`
                    problems.append(locator.problem((*path, "default"), p.message, p.hint, p.code))
                continue
            flags.append(flag)
        problems.extend(_prefix_problems({f.key: f for f in flags}, locator, base))
        if problems:
            raise ValidationError(problems, locator.source)
        return cls(flags, source=locator.source)

    # -- lookup -------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Flag:
        try:
            return self._flags[key]
        except KeyError:
            raise UnknownFlagError(key, self.suggest(key)) from None

    def get(self, key: str) -> Flag | None:
        """The flag, or None."""
        return self._flags.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._flags

    def __iter__(self) -> Iterator[Flag]:
        return iter(self._flags.values())

    def __len__(self) -> int:
        return len(self._flags)

    def keys(self) -> list[str]:
        """All keys, in definition order."""
        return list(self._flags)

    def items(self) -> list[tuple[str, Flag]]:
        """``(key, flag)`` pairs, in definition order. (Iterating the registry yields the
        :class:`Flag` objects themselves, not keys.)"""
        return list(self._flags.items())

    def suggest(self, key: str) -> list[str]:
        """Keys close to ``key`` (for "did you mean")."""
        return suggest(key, self._flags)

    # -- identity -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``{"flags": {key: spec}}`` as JSON primitives."""
        return {"flags": {k: f.to_dict() for k, f in self._flags.items()}}

    @property
    def fingerprint(self) -> str:
        """``"sha256:…"`` over :meth:`to_dict`; a snapshot records the fingerprint of the
        registry it was validated against."""
        if self._fingerprint is None:
            self._fingerprint = content_hash(self.to_dict())
        return self._fingerprint

    def expired(self, today: _dt.date | None = None) -> list[Flag]:
        """Flags whose ``expires`` date is before ``today``."""
        today = today or _dt.date.today()
        return [f for f in self._flags.values() if f.expires is not None and f.expires < today]

    def expiry_warnings(
        self, locator: Locator | None = None, today: _dt.date | None = None
    ) -> list[Problem]:
        """One warning per expired flag (``flagmw validate`` and ``flagmw lint``)."""
        locator = locator or Locator(self.source)
        return [
            locator.problem(
                ("flags", f.key, "expires"),
                f"flag {f.key} expired on {f.expires}",
                "remove the flag and its reads from the code, or move its expires date",
                "expired",
                severity="warning",
            )
            for f in self.expired(today)
        ]

    def __repr__(self) -> str:
        return f"FlagRegistry({len(self)} flags from {self.source})"


def _prefix_problems(
    flags: Mapping[str, Flag], locator: Locator, base: DocPath = ("flags",)
) -> list[Problem]:
    out = []
    keys = sorted(flags)
    for i, k in enumerate(keys):
        for other in keys[i + 1 :]:
            if not other.startswith(k):
                break
            if other.startswith(k + "."):
                out.append(
                    locator.problem(
                        (*base, other),
                        f"flag {other!r} is nested under flag {k!r}; a key cannot be "
                        "both a flag and a namespace",
                        f"rename {k!r} (e.g. {k + '.enabled'!r})",
                        "key_prefix",
                    )
                )
    return out
