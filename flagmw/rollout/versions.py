"""Agent versions as artifacts: a named, immutable bundle of flag values — model route
and fallbacks, prompt version with the prompt text's content hash, tool set, policies,
cost and token limits — validated against the registry (issue 12 §1).

A version is written as a file such as ``agents/support-agent/v1.3.3.yaml``::

    agent: support-agent
    version: v1.3.3
    message: shorter refund prompt, gpt-4o-mini first
    values:                       # flag key → value, each checked against the registry
      model.primary: gpt-4o-mini
      model.fallbacks: [gpt-4o]
      loop.max_iterations: 6
      tools.refund_api.enabled: true
    prompt:                       # optional
      version: refund-v7
      file: prompts/refund-v7.txt # or text: "...", relative to this file; never fetched
      key: prompt.style           # optional: the flag that receives the prompt version

or built in Python with :meth:`AgentVersion.build`. Its ``content_hash`` (sha-256 of the
RFC 8785 form of agent, version, values and prompt) identifies the content; publishing
the same name with other content is a conflict.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flagmw.core.canonical import content_hash, sha256_hex
from flagmw.core.registry import FlagRegistry
from flagmw.core.source import Locator, load_document
from flagmw.core.versions import version_ref
from flagmw.errors import FlagmwError, Problem, ValidationError

__all__ = ["AgentVersion", "VersionDiff", "diff_versions", "load_version"]

#: agent names and versions: letters, digits, ``. _ -``, 1–64 characters
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOP = ("agent", "version", "message", "description", "values", "prompt")
_MAX_PROMPT_BYTES = 1 << 20


def check_name(text: Any, what: str) -> str:
    """``text`` when it is a valid agent name or version, else :class:`FlagmwError`."""
    if not isinstance(text, str) or not _NAME.match(text):
        raise FlagmwError(
            f"invalid {what} {text!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return text


@dataclass(frozen=True)
class AgentVersion:
    """One published (or ready to publish) agent version.

    Attributes:
        agent: the agent (the route of its runs), e.g. ``"support-agent"``.
        version: e.g. ``"v1.3.3"``.
        values: flag key → value (JSON form, validated).
        prompt: ``{"version": str, "hash": "sha256:<hex>"}`` or None.
        message: why this version exists.
        author: who published it ('' before publishing).
        created_at: when it was published (seconds since the epoch; 0 before).
        content_hash: sha-256 hex of the canonical content.
    """

    agent: str
    version: str
    values: Mapping[str, Any]
    prompt: Mapping[str, str] | None = None
    message: str = ""
    author: str = ""
    created_at: float = 0.0
    content_hash: str = field(default="")

    @property
    def ref(self) -> str:
        """``"<agent>@<version>"``."""
        return version_ref(self.agent, self.version)

    @classmethod
    def build(
        cls,
        registry: FlagRegistry,
        agent: str,
        version: str,
        values: Mapping[str, Any],
        *,
        prompt_text: str | None = None,
        prompt_version: str | None = None,
        prompt_key: str | None = None,
        message: str = "",
        source: str = "<python>",
    ) -> AgentVersion:
        """Validate and build a version.

        Raises:
            ValidationError: an unknown key, a value that does not fit its flag, a bad
                name (every problem located, nothing built).
        """
        doc: dict[str, Any] = {"agent": agent, "version": version, "values": dict(values)}
        if message:
            doc["message"] = message
        if prompt_text is not None or prompt_version is not None:
            doc["prompt"] = {"version": prompt_version or "", "text": prompt_text or ""}
            if prompt_key:
                doc["prompt"]["key"] = prompt_key
        return _from_document(registry, doc, Locator(source), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON primitives (the stored form)."""
        return {
            "agent": self.agent,
            "version": self.version,
            "values": dict(self.values),
            "prompt": dict(self.prompt) if self.prompt else None,
            "message": self.message,
            "author": self.author,
            "created_at": self.created_at,
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentVersion:
        """Inverse of :meth:`to_dict` (a stored version; not re-validated)."""
        return cls(
            str(data["agent"]),
            str(data["version"]),
            dict(data.get("values") or {}),
            dict(data["prompt"]) if data.get("prompt") else None,
            str(data.get("message") or ""),
            str(data.get("author") or ""),
            float(data.get("created_at") or 0.0),
            str(data.get("content_hash") or ""),
        )

    def published(self, author: str, at: float) -> AgentVersion:
        """A copy stamped with its author and publication time."""
        return AgentVersion(
            self.agent,
            self.version,
            self.values,
            self.prompt,
            self.message,
            author,
            at,
            self.content_hash,
        )

    def revalidate(self, registry: FlagRegistry) -> list[str]:
        """Problems of the stored values against ``registry`` now (a flag removed or
        retyped since publishing), as sentences; empty when all still fit."""
        out: list[str] = []
        for key, value in self.values.items():
            flag = registry.get(key)
            if flag is None:
                out.append(f"{self.ref}: {key} is no longer in the registry")
                continue
            try:
                flag.coerce(value)
            except ValidationError as exc:
                out.append(f"{self.ref}: {exc.errors[0].message if exc.errors else exc}")
        return out


def load_version(registry: FlagRegistry, path: str | os.PathLike[str]) -> AgentVersion:
    """Load and validate a version file (YAML or JSON, bounded like a flags file).

    Raises:
        ValidationError: the file is missing, malformed, or a value does not fit.
    """
    doc, locator = load_document(path)
    return _from_document(registry, doc, locator, Path(path).parent)


def _from_document(
    registry: FlagRegistry, doc: Any, loc: Locator, base: Path | None
) -> AgentVersion:
    problems: list[Problem] = []
    if not isinstance(doc, Mapping):
        raise ValidationError([loc.problem((), "a version must be a mapping")], loc.source)
    for name in doc:
        if name not in _TOP:
            problems.append(
                loc.problem(
                    (name,), f"unknown field {name!r}", f"use {', '.join(_TOP)}", "unknown_key"
                )
            )
    names = {}
    for what in ("agent", "version"):
        try:
            names[what] = check_name(doc.get(what), what)
        except FlagmwError as exc:
            problems.append(loc.problem((what,), str(exc), "", "invalid_name"))
    values_doc = doc.get("values")
    values: dict[str, Any] = {}
    if not isinstance(values_doc, Mapping) or not values_doc:
        problems.append(loc.problem(("values",), "values must be a non-empty mapping of flags"))
        values_doc = {}
    for key, value in values_doc.items():
        flag = registry.get(key) if isinstance(key, str) else None
        if flag is None:
            hint = ", ".join(repr(s) for s in registry.suggest(str(key)))
            problems.append(
                loc.problem(
                    ("values", key),
                    f"unknown flag {key!r}",
                    f"did you mean {hint}?" if hint else "declare it in the registry",
                    "unknown_key",
                )
            )
            continue
        coerced, problem = flag.check(value, loc, ("values", key))
        if problem is not None:
            problems.append(problem)
        else:
            values[key] = coerced
    prompt = _prompt(registry, doc.get("prompt"), loc, base, values, problems)
    message = doc.get("message", doc.get("description", ""))
    if not isinstance(message, str):
        problems.append(loc.problem(("message",), "message must be text"))
        message = ""
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ValidationError(problems, loc.source)
    hashed = {"agent": names["agent"], "version": names["version"], "values": values}
    if prompt:
        hashed["prompt"] = prompt
    return AgentVersion(
        names["agent"],
        names["version"],
        values,
        prompt,
        message,
        content_hash=content_hash(hashed),
    )


def _prompt(
    registry: FlagRegistry,
    raw: Any,
    loc: Locator,
    base: Path | None,
    values: dict[str, Any],
    problems: list[Problem],
) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(loc.problem(("prompt",), "prompt must be a mapping (version, text|file)"))
        return None
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        problems.append(loc.problem(("prompt", "version"), "prompt.version must be text"))
        return None
    text = raw.get("text")
    if raw.get("file") is not None:
        text = _prompt_file(raw["file"], loc, base, problems)
    if not isinstance(text, str):
        problems.append(loc.problem(("prompt",), "prompt needs text or file"))
        return None
    key = raw.get("key")
    if key is not None:
        flag = registry.get(key) if isinstance(key, str) else None
        if flag is None:
            problems.append(
                loc.problem(("prompt", "key"), f"unknown flag {key!r}", "", "unknown_key")
            )
        else:
            coerced, problem = flag.check(version, loc, ("prompt", "key"))
            if problem is not None:
                problems.append(problem)
            else:
                values[key] = coerced
    return {"version": version, "hash": sha256_hex(text)}


def _prompt_file(name: Any, loc: Locator, base: Path | None, problems: list[Problem]) -> str | None:
    if not isinstance(name, str) or base is None:
        problems.append(loc.problem(("prompt", "file"), "prompt.file needs a version file"))
        return None
    path = (base / name).resolve()
    if base.resolve() not in path.parents:
        problems.append(
            loc.problem(("prompt", "file"), f"{name!r} is outside the version's folder")
        )
        return None
    try:
        with path.open("rb") as f:
            raw = f.read(_MAX_PROMPT_BYTES + 1)
        if len(raw) > _MAX_PROMPT_BYTES:
            raise ValueError("larger than 1 MiB")
        return raw.decode("utf-8")
    except (OSError, ValueError) as exc:
        problems.append(loc.problem(("prompt", "file"), f"cannot read {name!r}: {exc}"))
        return None


@dataclass(frozen=True)
class VersionDiff:
    """What changed from ``old`` to ``new``: ``changed`` key → (old, new), ``added`` and
    ``removed`` keys with their values, and the prompt change or None."""

    old: str
    new: str
    changed: dict[str, tuple[Any, Any]]
    added: dict[str, Any]
    removed: dict[str, Any]
    prompt: tuple[Any, Any] | None

    def __bool__(self) -> bool:
        return bool(self.changed or self.added or self.removed or self.prompt)


def diff_versions(old: AgentVersion, new: AgentVersion) -> VersionDiff:
    """The differences between two versions (values and prompt)."""
    ov, nv = old.values, new.values
    changed = {k: (ov[k], nv[k]) for k in sorted(ov.keys() & nv.keys()) if ov[k] != nv[k]}
    added = {k: nv[k] for k in sorted(nv.keys() - ov.keys())}
    removed = {k: ov[k] for k in sorted(ov.keys() - nv.keys())}
    op = dict(old.prompt) if old.prompt else None
    np_ = dict(new.prompt) if new.prompt else None
    return VersionDiff(
        old.version, new.version, changed, added, removed, None if op == np_ else (op, np_)
    )
