"""What a valid flag definition is: key syntax, types, bindings and the checks of one
flag's fields (shared by :class:`~flagmw.core.flag.Flag` built in Python and the
``flags:`` section of a flags file).

The structure of one ``flags:`` entry (its fields and their types) is checked by
:func:`plain_flag_fields` when it is exactly well formed — what the YAML and JSON loaders
of :mod:`flagmw.core.source` yield for a correct file — and otherwise by the pydantic model
:class:`~flagmw.core.flag_spec_model.FlagSpec`, which locates every problem. pydantic is
imported only for that fallback, so a process that loads a correct registry (``flagmw
kill`` in an incident) never imports it. ``FlagSpec`` is still importable from here
(imported on first use, PEP 562).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from flagmw.core.problems import did_you_mean
from flagmw.core.source import DocPath, Locator
from flagmw.errors import Problem

if TYPE_CHECKING:  # pragma: no cover
    from flagmw.core.flag_spec_model import FlagSpec

__all__ = [
    "KEY_PATTERN",
    "MAX_KEY_LENGTH",
    "Binding",
    "FlagFields",
    "FlagSpec",
    "FlagType",
    "as_date",
    "flag_problems",
    "plain_flag_fields",
]

#: Flag keys: lower case segments of letters, digits, ``_`` and ``-``, joined by dots; the
#: first character a letter. The shapes of the systems teams migrate from are all valid:
#: ``tools.refund_api.enabled`` (dotted), ``use_v3_style`` (snake_case, one segment),
#: ``agent-new-planner`` (kebab-case), and mixes. Upper case, spaces and control
#: characters are not (a hint proposes the fixed key).
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*$")
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


def as_date(value: _dt.date | str | None) -> _dt.date | None:
    if value is None or isinstance(value, _dt.date):
        if isinstance(value, _dt.datetime):
            return value.date()
        return value
    return _dt.date.fromisoformat(value)


def flag_problems(
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
    check_schemas: bool = True,
) -> list[Problem]:
    """Structural problems of one flag definition (not the default's value).

    ``check_schemas=False`` leaves out the check of a ``json`` flag's JSON schema itself
    (:func:`~flagmw.core.json_schema.schema_problems`, which imports ``jsonschema``); that
    it is a mapping is still checked. :class:`~flagmw.core.flag.Flag` then checks the
    schema when it first checks a value."""
    out: list[Problem] = []
    if not isinstance(key, str) or not KEY_PATTERN.match(key) or len(key) > MAX_KEY_LENGTH:
        fixed = re.sub(r"[^a-z0-9_.-]+", "_", str(key).lower()).strip("._-")
        out.append(
            locator.problem(
                path,
                f"invalid flag key {key!r}: keys are lower case letters, digits, '_' and "
                "'-', in dot-separated segments starting with a letter (tools.refund_api."
                "enabled, use_v3_style, agent-new-planner), at most 128 characters",
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
            as_date(expires)
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
            elif check_schemas:
                from flagmw.core.json_schema import schema_problems

                for message in schema_problems(schema):
                    out.append(locator.problem((*path, "schema"), message, "", "schema"))
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


_STR_FIELDS = ("description", "owner", "binding")
_BOOL_FIELDS = ("protected", "run_kill", "sensitive", "tenant_editable")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


class FlagFields:
    """The fields of one ``flags:`` entry, parsed (structure only: the type's name, the
    binding and the default are checked by :func:`flag_problems` and
    :class:`~flagmw.core.flag.Flag`). What :func:`plain_flag_fields` returns, and what
    :func:`~flagmw.core.flag_spec_model.parse_spec` makes of the pydantic model. (A plain
    class, not a dataclass: it is built once per flag of every registry loaded.)"""

    __slots__ = (
        "binding",
        "choices",
        "default",
        "description",
        "expires",
        "max",
        "min",
        "model",
        "owner",
        "protected",
        "run_kill",
        "schema",
        "sensitive",
        "tags",
        "tenant_editable",
        "type",
    )

    def __init__(
        self,
        *,
        type: str,
        default: Any,
        description: str = "",
        owner: str = "",
        tags: list[str] | None = None,
        binding: str = "pinned",
        expires: _dt.date | None = None,
        protected: bool = False,
        run_kill: bool = False,
        sensitive: bool = False,
        tenant_editable: bool = False,
        choices: list[Any] | None = None,
        min: int | float | None = None,
        max: int | float | None = None,
        schema: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> None:
        self.type = type
        self.default = default
        self.description = description
        self.owner = owner
        self.tags: list[str] = [] if tags is None else tags
        self.binding = binding
        self.expires = expires
        self.protected = protected
        self.run_kill = run_kill
        self.sensitive = sensitive
        self.tenant_editable = tenant_editable
        self.choices = choices
        self.min = min
        self.max = max
        self.schema = schema
        self.model = model

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"FlagFields({inner})"


#: the fields of one ``flags:`` entry (``schema`` is ``FlagSpec.schema_`` in pydantic)
SPEC_FIELDS = frozenset(FlagFields.__slots__)


def plain_flag_fields(spec: Mapping[Any, Any]) -> FlagFields | None:
    """``spec`` (one ``flags:`` entry) parsed without pydantic, when it is exactly well
    formed: only the fields of :data:`SPEC_FIELDS`, ``type`` and ``default`` present, and
    every field of its exact type — ``str`` for ``type``, ``description``, ``owner``,
    ``binding`` and ``model``; ``bool`` for ``protected``, ``run_kill``, ``sensitive`` and
    ``tenant_editable``; a ``list`` of ``str`` for ``tags``; a ``list`` for ``choices``;
    ``int`` or ``float`` (not ``bool``) for ``min`` and ``max``; a ``dict`` with ``str``
    keys for ``schema``; a ``datetime.date`` (not a ``datetime``) or a ``YYYY-MM-DD``
    string for ``expires``; None for any optional field but the ``str`` and ``bool``
    ones.

    Returns:
        the same fields the pydantic model :class:`FlagSpec` would give, or None: anything
        else, for the model to parse (and to locate every problem). Lists and the schema
        mapping are copied, as the model copies them.
    """
    if type(spec) is not dict:
        spec = dict(spec)
    if "type" not in spec or "default" not in spec or not spec.keys() <= SPEC_FIELDS:
        return None
    get = spec.get
    kind = spec["type"]
    if type(kind) is not str:
        return None
    for name in _STR_FIELDS:
        if name in spec and type(spec[name]) is not str:
            return None
    for name in _BOOL_FIELDS:
        if name in spec and type(spec[name]) is not bool:
            return None
    tags = get("tags", [])
    if type(tags) is not list or not all(type(t) is str for t in tags):
        return None
    choices = get("choices")
    if choices is not None and type(choices) is not list:
        return None
    bounds = (get("min"), get("max"))
    if not all(b is None or type(b) is int or type(b) is float for b in bounds):
        return None
    schema = get("schema")
    if schema is not None and (type(schema) is not dict or not all(type(k) is str for k in schema)):
        return None
    model = get("model")
    if model is not None and type(model) is not str:
        return None
    expires = get("expires")
    if expires is not None and type(expires) is not _dt.date:
        if type(expires) is not str or not _ISO_DATE.fullmatch(expires):
            return None
        try:
            expires = _dt.date.fromisoformat(expires)
        except ValueError:
            return None
    return FlagFields(
        type=kind,
        default=spec["default"],
        description=get("description", ""),
        owner=get("owner", ""),
        tags=list(tags),
        binding=get("binding", "pinned"),
        expires=expires,
        protected=get("protected", False),
        run_kill=get("run_kill", False),
        sensitive=get("sensitive", False),
        tenant_editable=get("tenant_editable", False),
        choices=None if choices is None else list(choices),
        min=bounds[0],
        max=bounds[1],
        schema=None if schema is None else dict(schema),
        model=model,
    )


def __getattr__(name: str) -> Any:
    """``FlagSpec`` (the pydantic model) on first use (PEP 562), so that importing this
    module does not import pydantic."""
    if name == "FlagSpec":
        from flagmw.core.flag_spec_model import FlagSpec

        return FlagSpec
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
