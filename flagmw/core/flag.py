"""A flag: one typed, named knob of the registry, and the strict checking of its values
(``"flase"`` is an error for a bool, ``"5"`` for an int), with the hints shown to
whoever wrote the value."""

from __future__ import annotations

import builtins
import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flagmw.core.flag_spec import Binding, FlagType, as_date, flag_problems
from flagmw.core.problems import did_you_mean, suggest
from flagmw.core.source import DocPath, Locator
from flagmw.errors import Problem, ValidationError

if TYPE_CHECKING:  # pragma: no cover - pydantic is imported only for a flag with a model
    import pydantic

__all__ = ["Flag"]


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
        key: lower case, dot-separated segments of letters, digits, ``_`` and ``-``,
            e.g. ``"tools.refund_api.enabled"``, ``"use_v3_style"``,
            ``"agent-new-planner"`` (:data:`~flagmw.core.flag_spec.KEY_PATTERN`).
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
        tenant_editable: the console's ``tenant-editor`` role may set its value in a
            tenant's overlay (``flagmw serve``; docs/console.md).
        choices: the allowed values of an ``enum`` flag (strings).
        min, max: inclusive bounds of an ``int`` / ``float`` flag.
        schema: a JSON schema (Draft 2020-12) that a ``json`` flag's value must match.
        model: a pydantic model that a ``json`` flag's value must validate against
            (Python only). ``RunConfig[key]`` then returns a model instance.
        check_schemas: True (default): ``schema`` is checked (a valid Draft 2020-12
            schema that refers only to itself) and ``default`` is checked against it
            here. False: both checks are deferred to the first value the flag checks
            (:meth:`coerce`, :meth:`check`, which then fail with a located ``schema``
            problem when the schema or the default is bad, never a ``jsonschema``
            exception), so building the flag does not import ``jsonschema`` and a
            broken schema fails only what reads this flag (the incident commands).

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
    tenant_editable: bool = False
    choices: tuple[str, ...] | None = None
    min: int | float | None = None
    max: int | float | None = None
    schema: Mapping[str, Any] | None = None
    model: builtins.type[pydantic.BaseModel] | None = None
    _validator: Any = field(default=None, repr=False, compare=False)
    #: check_schemas=False and the schema not checked yet
    _schema_pending: bool = field(default=False, repr=False, compare=False)
    #: why the schema (or the default against it) failed its deferred check
    _schema_error: str | None = field(default=None, repr=False, compare=False)

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
        tenant_editable: bool = False,
        choices: Iterable[str] | None = None,
        min: int | float | None = None,
        max: int | float | None = None,
        schema: Mapping[str, Any] | None = None,
        model: builtins.type[pydantic.BaseModel] | None = None,
        check_schemas: bool = True,
    ) -> None:
        problems = flag_problems(
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
            check_schemas=check_schemas,
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
        setter(self, "expires", as_date(expires))
        setter(self, "protected", bool(protected))
        setter(self, "run_kill", bool(run_kill))
        setter(self, "sensitive", bool(sensitive))
        setter(self, "tenant_editable", bool(tenant_editable))
        setter(self, "choices", tuple(choices) if choices is not None else None)
        setter(self, "min", min)
        setter(self, "max", max)
        setter(self, "schema", dict(schema) if schema is not None else None)
        setter(self, "model", model)
        validator = None
        if schema is not None and check_schemas:
            from flagmw.core.json_schema import compile_schema

            validator = compile_schema(schema)  # checked by flag_problems above
        setter(self, "_validator", validator)
        setter(self, "_schema_pending", False)
        setter(self, "_schema_error", None)
        setter(self, "default", None)
        setter(self, "default", self.coerce(default))
        # deferred: the next value checked checks the schema, then this default against it
        setter(self, "_schema_pending", schema is not None and not check_schemas)

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
            import pydantic

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
        if self._schema_pending or self._schema_error is not None:
            self._check_schema()
        if self._validator is not None:
            self._match_schema(value)
        return value

    def _check_schema(self) -> None:
        """The deferred check of ``check_schemas=False``: the schema itself, then the
        default against it; remembered (a bad schema fails every later check alike)."""
        if self._schema_pending:
            from flagmw.core.json_schema import compile_schema

            setter = object.__setattr__
            assert self.schema is not None
            try:
                validator = compile_schema(self.schema)
            except ValueError as exc:
                setter(self, "_schema_error", f"its JSON schema is unusable ({exc})")
            else:
                try:
                    self._match_schema(self.default, validator)
                except _BadValue as bad:
                    detail = bad.message.removeprefix(f"{self.key} ")
                    setter(self, "_schema_error", f"its default {detail}")
                else:
                    setter(self, "_validator", validator)
            setter(self, "_schema_pending", False)
        if self._schema_error is not None:
            raise _BadValue(
                f"{self.key} cannot be checked: {self._schema_error}",
                "fix the flag in the registry file (`flagmw validate FILE` locates it)",
                "schema",
            )

    def _match_schema(self, value: Any, validator: Any = None) -> None:
        import jsonschema
        from referencing.exceptions import Unresolvable

        key = self.key
        validator = validator or self._validator
        try:
            best = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except (Unresolvable, RecursionError) as exc:
            raise _BadValue(
                f"{key} cannot be checked against its JSON schema: {exc}", "", "schema"
            ) from None
        if best is not None:
            where = "/".join(str(p) for p in best.absolute_path)
            raise _BadValue(
                f"{key} does not match its JSON schema: "
                f"{'at ' + where + ': ' if where else ''}{best.message}",
                "",
                "schema",
            )

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
        for name in ("protected", "run_kill", "sensitive", "tenant_editable"):
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
