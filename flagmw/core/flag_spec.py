"""What a valid flag definition is: key syntax, types, bindings and the checks of one
flag's fields (shared by :class:`~flagmw.core.flag.Flag` built in Python and the
``flags:`` section of a flags file, whose structure :class:`FlagSpec` checks)."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import pydantic

from flagmw.core.problems import did_you_mean
from flagmw.core.source import DocPath, Locator
from flagmw.errors import Problem

__all__ = [
    "KEY_PATTERN",
    "MAX_KEY_LENGTH",
    "Binding",
    "FlagSpec",
    "FlagType",
    "as_date",
    "flag_problems",
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
) -> list[Problem]:
    """Structural problems of one flag definition (not the default's value)."""
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
            else:
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


class FlagSpec(pydantic.BaseModel):
    """The YAML form of one flag definition (structure only)."""

    model_config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    # strict types: `min: "1"` or `protected: "yes"` is a problem, never coerced
    type: pydantic.StrictStr
    default: Any = pydantic.Field(default=...)
    description: pydantic.StrictStr = ""
    owner: pydantic.StrictStr = ""
    tags: list[pydantic.StrictStr] = []
    binding: pydantic.StrictStr = "pinned"
    expires: _dt.date | None = None
    protected: pydantic.StrictBool = False
    run_kill: pydantic.StrictBool = False
    sensitive: pydantic.StrictBool = False
    tenant_editable: pydantic.StrictBool = False
    choices: list[Any] | None = None
    min: pydantic.StrictInt | pydantic.StrictFloat | None = None
    max: pydantic.StrictInt | pydantic.StrictFloat | None = None
    schema_: dict[str, Any] | None = pydantic.Field(default=None, alias="schema")
    model: pydantic.StrictStr | None = None  # informational (a registry exported from Python)
