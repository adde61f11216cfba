"""The argument checks of the admin operations (:mod:`flagmw.client.admin`).

Arguments of ``publish``, ``kill``, ``override``, ``renew``, ``unkill``, ``history``,
``audit`` … come from operators, scripts and HTTP requests. A wrongly typed or malformed
one is a :class:`~flagmw.errors.ValidationError` naming the operation and the argument
(``kill(): reason: must be text (str), got int 5``), raised before anything is read or
written — never a raw ``TypeError``, ``AttributeError``, ``UnicodeEncodeError`` or
``OverflowError`` from deep inside a store, and never a half-done change.

The rules:

* text (keys, reasons, actors, authors, messages, tenants, routes, environments, ids,
  audit actions) is a ``str`` that every store can hold: valid Unicode (no lone
  surrogate such as ``"\\udcff"``, which is what an undecodable byte of a command-line
  argument becomes) and no NUL character (PostgreSQL text cannot hold one). Control
  characters are accepted and stored exactly; the command line escapes them when it
  shows them (:func:`flagmw.cli.output.printable`);
* a rev or a limit is an ``int`` (not a ``bool``); a rev outside the 64-bit range the
  stores use cannot exist (``diff(1, 2**70)`` is "no snapshot rev"), a limit above
  :data:`MAX_LIMIT` means "all" and is clamped;
* flags (``force``, ``include_ended`` …) are ``bool``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flagmw.errors import OverrideError, Problem, ValidationError

__all__ = [
    "MAX_LIMIT",
    "MAX_REV",
    "check_flag",
    "check_int",
    "check_limit",
    "check_required_text",
    "check_source",
    "check_text",
    "check_ttl",
    "check_value_text",
]

#: The largest rev a store can hold (SQLite INTEGER, PostgreSQL BIGINT: 2**63 - 1).
MAX_REV = 2**63 - 1
#: The largest ``limit`` passed on to a store (a larger one is clamped to it).
MAX_LIMIT = 2**31 - 1


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}… ({len(text)} characters)"


def _fail(operation: str, name: str, message: str, code: str) -> ValidationError:
    return ValidationError([Problem(f"{operation}()", name, message, code=code)])


def _text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return f"contains a NUL character (at position {text.index(chr(0))})"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = text[exc.start]
            return (
                f"is not valid Unicode: a lone surrogate {bad.encode('unicode_escape').decode()} "
                f"at position {exc.start} (an undecodable byte?)"
            )
    return None


def check_text(operation: str, name: str, value: Any, *, optional: bool = False) -> str | None:
    """``value`` when it is storable text (see the module docs); None when ``optional``
    and None.

    Raises:
        ValidationError: not a ``str`` (or None when ``optional``), or not storable.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        wanted = "text (str) or None" if optional else "text (str)"
        raise _fail(
            operation,
            name,
            f"must be {wanted}, got {type(value).__name__} {_shown(value)}",
            "wrong_type",
        )
    why = _text_problem(value)
    if why is not None:
        raise _fail(operation, name, why, "invalid_text")
    return value


def check_required_text(operation: str, name: str, value: Any) -> str:
    """A mandatory text argument (a reason, an actor, an author, a message).

    Raises:
        OverrideError: missing (None) or blank, as always.
        ValidationError: wrongly typed or not storable.
    """
    if value is not None:
        check_text(operation, name, value)
    if value is None or not value.strip():
        raise OverrideError(f"a {name} is required and must not be empty")
    return str(value)


def check_ttl(operation: str, value: Any) -> None:
    """A TTL is duration text (``"4h"``) or seconds (an int or a float), or None.

    Raises:
        ValidationError: any other type (the text itself is checked by
            :func:`flagmw.core.overrides.parse_duration`).
    """
    if value is None or isinstance(value, str):
        if value is not None:
            check_text(operation, "ttl", value)
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(
            operation,
            "ttl",
            "must be a duration: text such as '4h' or seconds (int or float), got "
            f"{type(value).__name__} {_shown(value)}",
            "wrong_type",
        )


def check_value_text(operation: str, name: str, value: Any) -> None:
    """Every string inside ``value`` (a flag value: JSON primitives, lists, mappings) is
    storable text.

    Raises:
        ValidationError: a string (or a mapping key) with a lone surrogate or a NUL.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            why = _text_problem(item)
            if why is not None:
                raise _fail(operation, name, f"a string in it {why}", "invalid_text")
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def check_int(operation: str, name: str, value: Any) -> int:
    """``value`` when it is an ``int`` (not a ``bool``).

    Raises:
        ValidationError: any other type.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(
            operation,
            name,
            f"must be an integer (int), got {type(value).__name__} {_shown(value)}",
            "wrong_type",
        )
    return value


def check_limit(operation: str, value: Any) -> int:
    """A ``limit``: an int of at least 1, clamped to :data:`MAX_LIMIT`.

    Raises:
        ValidationError: not an int, or below 1.
    """
    limit = check_int(operation, "limit", value)
    if limit < 1:
        raise _fail(operation, "limit", f"must be at least 1, got {limit}", "out_of_bounds")
    return min(limit, MAX_LIMIT)


def check_flag(operation: str, name: str, value: Any) -> bool:
    """``value`` when it is a ``bool``.

    Raises:
        ValidationError: any other type (``force="no"`` is not False).
    """
    if not isinstance(value, bool):
        raise _fail(
            operation,
            name,
            f"must be True or False (bool), got {type(value).__name__} {_shown(value)}",
            "wrong_type",
        )
    return value


def check_source(operation: str, value: Any) -> None:
    """A document source: a path (``str`` or ``os.PathLike``) or a mapping.

    Raises:
        ValidationError: anything else, or a path that is not storable text.
    """
    if isinstance(value, Mapping):
        return
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        if isinstance(value, bytes):
            raise _fail(operation, "source", "a path must be text, not bytes", "wrong_type")
    if not isinstance(value, str):
        raise _fail(
            operation,
            "source",
            "must be a file path (str or os.PathLike) or a mapping, got "
            f"{type(value).__name__} {_shown(value)}",
            "wrong_type",
        )
    check_text(operation, "source", value)
