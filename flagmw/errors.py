"""The error tree of flagmw.

Every error flagmw raises is a :class:`FlagmwError`. The subclasses form a
closed set with stable names, in the spirit of OpenFeature's error codes:

``FlagmwError``
    ├── ``ValidationError``        a registry, snapshot document or value is invalid
    │                              (``.problems`` lists every problem with its location)
    ├── ``UnknownFlagError``       a key the registry does not define (also a ``KeyError``)
    ├── ``ConflictError``          a publish with a stale expected parent rev
    ├── ``NotFoundError``          a snapshot rev or override id that does not exist
    ├── ``StoreUnavailableError``  the store cannot be reached or read
    ├── ``OverrideError``          an override or kill was refused (missing reason, TTL
    │                              above the maximum, protected flag without ``force`` …)
    ├── ``IntegrityError``         a stored RunConfig whose ``config_hash`` does not match
    ├── ``NoRunConfigError``       ``flagmw.current()`` called outside a run
    ├── ``RefusedError``           a gated capability was refused by a flag
    ├── ``UnknownRouteError``      a route flag names a model route that does not exist
    └── ``ConfigChangedError``     a resume under ``on_resume="fail_if_changed"`` found
                                   that pinned flags changed

``flagmw.RunDrained`` (a run kill drained a run) also derives from ``FlagmwError``; it
lives in :mod:`flagmw.graph` because it is a LangGraph ``GraphDrained`` too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConfigChangedError",
    "ConflictError",
    "FlagmwError",
    "IntegrityError",
    "NoRunConfigError",
    "NotFoundError",
    "OverrideError",
    "Problem",
    "RefusedError",
    "StoreUnavailableError",
    "UnknownFlagError",
    "UnknownRouteError",
    "ValidationError",
]


class FlagmwError(Exception):
    """Base class of every error raised by flagmw."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found while validating a registry or a snapshot document.

    Attributes:
        location: where it is, as ``"file:line"`` for YAML, ``"file"`` or
            ``"<document>"`` otherwise.
        path: the document path of the offending node, dotted, e.g.
            ``"tenants.acme.values.model.primary"`` (flag keys are quoted with
            brackets when they contain dots: ``tenants.acme.values[model.primary]``).
        message: what is wrong, naming the key and the value.
        hint: what to do about it (may be empty).
        code: a stable machine-readable name, e.g. ``"unknown_key"``, ``"wrong_type"``,
            ``"out_of_bounds"``, ``"unknown_choice"``, ``"weights_sum"``.
        severity: ``"error"`` (blocks a publish) or ``"warning"`` (reported only).
    """

    location: str
    path: str
    message: str
    hint: str = ""
    code: str = "invalid"
    severity: str = "error"

    def __str__(self) -> str:
        where = self.location
        if self.path:
            where = f"{where}: {self.path}" if where else self.path
        text = f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, str]:
        """The problem as JSON primitives (for ``--json`` output)."""
        return {
            "location": self.location,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
            "code": self.code,
            "severity": self.severity,
        }


class ValidationError(FlagmwError, ValueError):
    """A registry, snapshot document or value failed validation.

    Attributes:
        problems: every problem found (errors and warnings), each with its location.
        source: the file or document that was validated, when known.

    Nothing is published when this is raised.
    """

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.source = source
        errors = self.errors
        head = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        if source:
            head += f" in {source}"
        lines = [head + ":"] + [f"  - {p}" for p in errors]
        super().__init__("\n".join(lines))

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems with severity ``"error"``."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The problems with severity ``"warning"``."""
        return tuple(p for p in self.problems if p.severity == "warning")


class UnknownFlagError(FlagmwError, KeyError):
    """A flag key that the registry does not define.

    Attributes:
        key: the unknown key.
        suggestions: close matches among the registry's keys.
    """

    def __init__(self, key: str, suggestions: Iterable[str] = ()) -> None:
        self.key = key
        self.suggestions = tuple(suggestions)
        msg = f"unknown flag {key!r}"
        if self.suggestions:
            msg += f"; did you mean {' or '.join(repr(s) for s in self.suggestions)}?"
        else:
            msg += "; define it in the registry (flags: section) first"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError quotes its argument; keep the sentence readable
        return str(self.args[0])


class ConflictError(FlagmwError):
    """A publish whose expected parent rev is not the store's head rev.

    Attributes:
        expected_parent: the parent rev the publisher expected.
        actual_head: the store's head rev at the time of the publish.

    Re-read the head (``flagmw history``), merge, and publish again.
    """

    def __init__(self, expected_parent: int | None, actual_head: int | None) -> None:
        self.expected_parent = expected_parent
        self.actual_head = actual_head
        super().__init__(
            f"publish conflict: expected parent rev {expected_parent}, but the store's head is "
            f"rev {actual_head}; someone published meanwhile. Review `flagmw diff "
            f"{expected_parent} {actual_head}` and publish again with the new parent"
        )


class NotFoundError(FlagmwError, LookupError):
    """A snapshot rev or override id that the store does not hold."""


class StoreUnavailableError(FlagmwError):
    """The store cannot be reached, opened or read.

    Attributes:
        store: a description of the store (e.g. ``"sqlite:/srv/flagmw.db"``).
    """

    def __init__(self, store: str, reason: str) -> None:
        self.store = store
        super().__init__(f"store {store} is unavailable: {reason}")


class OverrideError(FlagmwError, ValueError):
    """An override or kill switch was refused: missing reason or actor, a TTL above
    the maximum, a non-bool flag for a kill, or a protected flag without ``force``."""


class IntegrityError(FlagmwError):
    """A stored RunConfig whose ``config_hash`` does not match its values (the stored
    form was altered or truncated)."""


class NoRunConfigError(FlagmwError, LookupError):
    """``flagmw.current()`` was called outside a run wrapped by flagmw (and outside
    ``flagmw.testing.pinned``)."""


class RefusedError(FlagmwError):
    """A gated capability (tool, route) was refused by a flag.

    Attributes:
        key: the flag that refused it.
        reason: the kill or override reason, when an override decided it.
        override_id: the override id, when an override decided it.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str,
        reason: str | None = None,
        override_id: str | None = None,
    ) -> None:
        self.key = key
        self.reason = reason
        self.override_id = override_id
        super().__init__(message)


class UnknownRouteError(FlagmwError, LookupError):
    """A route flag names a route the routed model does not have.

    Attributes:
        flag: the route flag.
        route: the value it had.
        known: the routes the model has.
    """

    def __init__(self, flag: str, route: Any, known: Sequence[str]) -> None:
        self.flag = flag
        self.route = route
        self.known = tuple(known)
        super().__init__(
            f"flag {flag} names model route {route!r}, which this routed model does not have; "
            f"known routes: {', '.join(repr(k) for k in self.known)} (make {flag} an enum "
            "of the route names so a bad value is refused when it is published)"
        )


class ConfigChangedError(FlagmwError):
    """``on_resume="fail_if_changed"``: the configuration a resumed run would get now
    differs from the one pinned when it started (a pinned flag changed meanwhile).

    Raised before any step runs; the thread's checkpoint is untouched. Hot flags are
    not compared (they follow the live value by design): the pin with today's hot
    values is compared with a fresh resolution.

    Attributes:
        thread_id: the thread.
        pinned_hash, fresh_hash: the two ``config_hash`` values.
        changed: the pinned flags whose value differs.
    """

    def __init__(
        self, thread_id: str | None, pinned_hash: str, fresh_hash: str, changed: Sequence[str]
    ) -> None:
        self.thread_id = thread_id
        self.pinned_hash = pinned_hash
        self.fresh_hash = fresh_hash
        self.changed = tuple(changed)
        keys = ", ".join(self.changed) or "(none)"
        super().__init__(
            f"thread {thread_id}: the flag configuration changed since the run started "
            f"(pinned {pinned_hash[:19]}…, now {fresh_hash[:19]}…; changed: {keys}) and "
            "the graph is wrapped with on_resume='fail_if_changed'; resume with a graph "
            "wrapped with on_resume='pinned' (keep the run's config) or 'live' (adopt the "
            "new one)"
        )
