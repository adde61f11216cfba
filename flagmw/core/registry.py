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

import datetime as _dt
import enum
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from flagmw.core.canonical import content_hash
from flagmw.core.flag import Flag
from flagmw.core.flag_spec import flag_problems, plain_flag_fields
from flagmw.core.problems import suggest
from flagmw.core.source import DocPath, Locator, load_document
from flagmw.errors import Problem, UnknownFlagError, ValidationError

__all__ = ["FlagRegistry", "env_var_name"]


def env_var_name(key: str) -> str:
    """The ``FF_`` process variable for a key: upper case, ``.`` and ``-`` as ``_``:
    ``tools.refund_api.enabled`` → ``FF_TOOLS_REFUND_API_ENABLED``, ``use_v3_style`` →
    ``FF_USE_V3_STYLE``, ``agent-new-planner`` → ``FF_AGENT_NEW_PLANNER`` (the names
    ``FeatureFlag`` enums and 12-factor apps already use). Different keys can share a
    name (``a.b`` and ``a_b``): a registry refuses such a pair, so within one application
    every variable names exactly one flag."""
    return "FF_" + key.upper().replace(".", "_").replace("-", "_")


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
        problems.extend(_env_name_problems(self._flags, source))
        if problems:
            raise ValidationError(problems, source)
        self.hot_keys: frozenset[str] = frozenset(k for k, f in self._flags.items() if f.hot)
        self.run_kill_keys: frozenset[str] = frozenset(
            k for k, f in self._flags.items() if f.run_kill
        )
        self._fingerprint: str | None = None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_enum(
        cls,
        enum: type[enum.Enum],
        *,
        defaults: Mapping[Any, Any] | None = None,
        owner: str = "",
        binding: str = "pinned",
    ) -> FlagRegistry:
        """A registry from a ``str`` Enum whose values are the flag keys — the
        ``FeatureFlag`` enum many applications already have::

            class FeatureFlag(StrEnum):
                USE_V3_STYLE = "use_v3_style"
                MAX_STEPS = "agent-max-steps"

            registry = FlagRegistry.from_enum(FeatureFlag, defaults={FeatureFlag.MAX_STEPS: 8})
            client.is_enabled(FeatureFlag.USE_V3_STYLE)

        Each member is a flag whose type follows its default: ``bool``, ``int``,
        ``float``, ``str`` (a string flag), a list or mapping (a json flag); a member
        without a default is a bool flag defaulting to False. Members are accepted
        wherever a key is (a ``str`` Enum member *is* its key).

        Args:
            enum: the Enum class (``StrEnum`` or ``class X(str, Enum)``).
            defaults: member (or key) → default value.
            owner: the owner recorded on every flag.
            binding: ``"pinned"`` or ``"hot"`` for every flag.

        Raises:
            TypeError: a member's value is not a str, or a default of another type.
            ValidationError: a value that is not a valid key (see ``KEY_PATTERN``).
        """
        given = {str(getattr(k, "value", k)): v for k, v in (defaults or {}).items()}
        flags: list[Flag] = []
        for member in enum:
            key = member.value
            if not isinstance(key, str):
                raise TypeError(
                    f"{enum.__name__}.{member.name}: a flag key must be a str, got "
                    f"{type(key).__name__}"
                )
            default = given.pop(key, False)
            if isinstance(default, bool):
                kind = "bool"
            elif isinstance(default, int):
                kind = "int"
            elif isinstance(default, float):
                kind = "float"
            elif isinstance(default, str):
                kind = "string"
            elif isinstance(default, list | dict):
                kind = "json"
            else:
                raise TypeError(
                    f"{enum.__name__}.{member.name}: no flag type for a default of type "
                    f"{type(default).__name__}"
                )
            flags.append(Flag(key, kind, default, owner=owner, binding=binding))
        if given:
            raise TypeError(f"defaults for keys {sorted(given)} that {enum.__name__} lacks")
        return cls(flags, source=f"enum {enum.__module__}.{enum.__qualname__}")

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], *, check_schemas: bool = True) -> FlagRegistry:
        """Read the ``flags:`` section of a YAML (or JSON) flags file.

        Args:
            check_schemas: see :meth:`from_dict`.

        Raises:
            ValidationError: with every problem and its ``file:line``.
        """
        data, locator = load_document(path)
        return cls.from_dict(data, locator=locator, check_schemas=check_schemas)

    from_file = from_yaml

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        locator: Locator | None = None,
        check_schemas: bool = True,
    ) -> FlagRegistry:
        """Build a registry from a document holding a ``flags:`` mapping (other sections
        are ignored) or from the ``flags`` mapping itself.

        Each entry whose fields are exactly well formed is read without pydantic
        (:func:`~flagmw.core.flag_spec.plain_flag_fields`); any other entry is parsed by
        the pydantic model, which locates every problem. Both give the same registry.

        Args:
            data: the document, or its ``flags`` mapping.
            locator: where the document came from (for messages).
            check_schemas: False defers the check of each ``json`` flag's JSON schema,
                and of its default against it, to the first value the flag checks (see
                :class:`~flagmw.core.flag.Flag`): a broken schema then makes that check
                fail with a located problem instead of failing the whole registry. For
                the incident commands (``flagmw kill`` …), which must work whatever
                state an unrelated flag's schema is in, and need not import
                ``jsonschema``. ``flagmw validate`` and ``publish`` check eagerly (the
                default).

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
            parsed = plain_flag_fields(spec)
            if parsed is None:
                from flagmw.core.flag_spec_model import parse_spec

                parsed, spec_problems = parse_spec(spec, locator, path)
                if parsed is None:
                    problems.extend(spec_problems)
                    continue
            structural = flag_problems(
                key,
                parsed.type,
                parsed.default,
                binding=parsed.binding,
                expires=parsed.expires,
                choices=parsed.choices,
                min=parsed.min,
                max=parsed.max,
                schema=parsed.schema,
                model=None,
                run_kill=parsed.run_kill,
                locator=locator,
                path=path,
                check_schemas=check_schemas,
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
                    tenant_editable=parsed.tenant_editable,
                    choices=parsed.choices,
                    min=parsed.min,
                    max=parsed.max,
                    schema=parsed.schema,
                    check_schemas=check_schemas,
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


def _env_name_problems(flags: Mapping[str, Flag], source: str) -> list[Problem]:
    """Keys that would share an ``FF_`` variable (``a.b`` and ``a_b``): ambiguous."""
    seen: dict[str, str] = {}
    out: list[Problem] = []
    for key in sorted(flags):
        name = env_var_name(key)
        other = seen.setdefault(name, key)
        if other != key:
            out.append(
                Problem(
                    source,
                    f"flags[{key}]",
                    f"{key!r} and {other!r} would share the process variable {name}",
                    "rename one: every FF_ variable must name exactly one flag",
                    "invalid_key",
                )
            )
    return out
