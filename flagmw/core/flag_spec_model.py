"""The pydantic model of one ``flags:`` entry, for the entries that
:func:`~flagmw.core.flag_spec.plain_flag_fields` does not accept as they are: it parses
what pydantic's lax mode accepts (a tuple of tags, a datetime at midnight for
``expires`` …) and locates every problem (unknown field, missing field, wrong type).

Imported only then, so that loading a correct registry does not import pydantic.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import pydantic

from flagmw.core.flag_spec import FlagFields
from flagmw.core.problems import pydantic_problems
from flagmw.core.source import DocPath, Locator
from flagmw.errors import Problem

__all__ = ["FlagSpec", "parse_spec"]


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

    def fields(self) -> FlagFields:
        """The parsed fields, as :func:`~flagmw.core.flag_spec.plain_flag_fields` gives
        them."""
        return FlagFields(
            type=self.type,
            default=self.default,
            description=self.description,
            owner=self.owner,
            tags=self.tags,
            binding=self.binding,
            expires=self.expires,
            protected=self.protected,
            run_kill=self.run_kill,
            sensitive=self.sensitive,
            tenant_editable=self.tenant_editable,
            choices=self.choices,
            min=self.min,
            max=self.max,
            schema=self.schema_,
            model=self.model,
        )


def parse_spec(
    spec: Mapping[Any, Any], locator: Locator, path: DocPath
) -> tuple[FlagFields | None, list[Problem]]:
    """``spec`` parsed by :class:`FlagSpec`: ``(fields, [])``, or ``(None, problems)``
    with every structural problem located under ``path``."""
    try:
        return FlagSpec.model_validate(dict(spec)).fields(), []
    except pydantic.ValidationError as exc:
        return None, pydantic_problems(exc, locator, path, FlagSpec, what="flag")
