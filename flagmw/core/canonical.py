"""Canonical JSON (RFC 8785, the JSON Canonicalization Scheme) and the hashes built on it.

Every hash flagmw computes — a RunConfig's ``config_hash``, a snapshot's content hash,
a registry's fingerprint — is ``"sha256:" + hex(sha256(JCS(payload)))``, where JCS is
RFC 8785: object members sorted by the UTF-16 code units of their names, no
whitespace, strings escaped minimally and kept as UTF-8, numbers in the ECMAScript
``Number.prototype.toString`` form (``1.0`` → ``1``, ``1e21`` → ``1e+21``, ``1e-7`` →
``1e-7``). Any language with a JCS library recomputes the same hash (see
``docs/concepts.md`` for a worked example).

The reference serialiser is the ``rfc8785`` package. :func:`canonical_json` takes a
faster path through the standard library's C encoder when its output is provably the
same (no floats, every integer and key in the range where both forms agree) and
otherwise writes strings and floats with ``rfc8785``; ``tests/test_properties.py``
checks it against ``rfc8785.dumps``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import rfc8785

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "canonical_json",
    "canonical_json_many",
    "canonical_json_small",
    "content_hash",
    "json_fragment",
    "key_fragment",
    "sha256_hex",
    "sorted_json",
]

#: The largest integer every JSON reader holds exactly (an IEEE 754 double's 2**53 − 1);
#: RFC 8785 assumes I-JSON, whose integers stay within ±MAX_SAFE_INTEGER.
MAX_SAFE_INTEGER = 2**53 - 1

#: Raised (a ``ValueError``) for data JSON cannot represent: a non-finite float, a lone
#: surrogate, a non-string object key, a non-JSON type.
CanonicalizationError = rfc8785.CanonicalizationError

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_dumps: Callable[[Any], str] = _ENCODER.encode


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)  # the C accelerator

if _c_make_encoder is not None:  # pragma: no branch - CPython
    # the same C encoder JSONEncoder.encode builds on every call, built once (100k
    # overlays: ~1 µs each saved); the same output and the same errors
    _markers: dict[int, Any] = {}  # circular references are still refused (ValueError)
    _c_encode = _c_make_encoder(
        _markers,
        _no_default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )

    def _dumps(value: Any) -> str:
        if isinstance(value, str):
            return json.encoder.encode_basestring(value)
        try:
            return "".join(_c_encode(value, 0))
        except BaseException:
            _markers.clear()  # an encode that failed part-way can leave its marks
            raise


# The C encoder's output is RFC 8785 unless it holds a float (a number token with a
# '.' or an exponent), an integer of 16 digits or more (maybe beyond 2**53 - 1), or a
# character at or above U+D800 (surrogates; keys that UTF-16 orders differently from
# code points). A string may contain text that looks like such a number: that only
# sends it to the slow path, never the other way round.
_NUMBER_NOT_FAST = re.compile(r"[:\[,]-?(?:\d+[.eE]|\d{16})")
_CHAR_NOT_FAST = re.compile("[\ud800-\U0010ffff]")


def canonical_json(data: Any) -> str:
    """The RFC 8785 canonical JSON of ``data`` (JSON primitives, lists, tuples, dicts
    with string keys).

    Integers beyond ±2**53 − 1 lie outside I-JSON, which RFC 8785 assumes: they are
    written as their exact decimal digits (as Python, Go and Java write them) rather
    than refused, so no flag value can make a hash fail.

    Raises:
        CanonicalizationError: ``data`` holds something JSON cannot represent (NaN or
            an infinity, a lone surrogate, a non-string key, a non-JSON type).
    """
    if type(data) is not dict:
        return "".join(_write(data, []))
    # a document: member by member, so that one float in one section does not send
    # the whole document through the C encoder twice
    return "".join(_members(data, []))


def sorted_json(data: Any) -> str | None:
    """The C encoder's compact, key-sorted JSON of ``data`` (None when it cannot encode
    it). Not always RFC 8785 (some numbers and characters differ), but **equal to a
    canonical text only when it is that text**: the cheap way to check a value against
    a stored canonical form."""
    try:
        return _dumps(data)
    except (TypeError, ValueError):
        return None


def canonical_json_many(values: Sequence[Any]) -> list[str]:
    """:func:`canonical_json` of each of many small values (100k tenant overlays): the
    C encoder once per value and the RFC 8785 checks once over all of them; a value
    whose output needs the general writer gets it.

    Raises:
        CanonicalizationError: as :func:`canonical_json`.
    """
    texts: list[str | None] = []
    for value in values:
        try:
            texts.append(_dumps(value))
        except (TypeError, ValueError):
            texts.append(None)
    if all(t is not None for t in texts):
        # "\n" never takes part in a match of either check, so one search over the
        # joined texts finds a text that needs the general writer, if any
        joined = "\n".join(t for t in texts if t is not None)
        clean = _NUMBER_NOT_FAST.search(joined) is None and (
            joined.isascii() or _CHAR_NOT_FAST.search(joined) is None
        )
        if clean:
            return [t for t in texts if t is not None]
    return [canonical_json_small(v) for v in values]


def canonical_json_small(data: Any) -> str:
    """:func:`canonical_json` for a small value (a tenant overlay): one pass of the C
    encoder when its output is already the RFC 8785 form, else the general writer.

    Raises:
        CanonicalizationError: as :func:`canonical_json`.
    """
    if isinstance(data, dict | list):
        text = _fast(data)
        if text is not None:
            return text
    return canonical_json(data)


def _fast(value: Any) -> str | None:
    """The C encoder's output for a container when it is the RFC 8785 form, else None."""
    try:
        text = _dumps(value)
    except (TypeError, ValueError):
        return None
    if _NUMBER_NOT_FAST.search(text) is not None:
        return None
    if not text.isascii() and _CHAR_NOT_FAST.search(text) is not None:
        return None
    return text


def _members(value: dict[Any, Any], out: list[str]) -> list[str]:
    try:
        # keys that are not strings become strings as the standard encoder writes them
        pairs = [(k if isinstance(k, str) else _key(k), v) for k, v in value.items()]
        # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names
        items = sorted(pairs, key=lambda kv: kv[0].encode("utf-16be"))
    except (TypeError, ValueError):
        raise CanonicalizationError("object keys must be strings without lone surrogates") from None
    out.append("{")
    for n, (k, v) in enumerate(items):
        out.append(f",{_encode_str(k)}:" if n else f"{_encode_str(k)}:")
        _write(v, out)
    out.append("}")
    return out


def _key(key: Any) -> str:
    if key is None or isinstance(key, int | float):
        return _dumps(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _write(value: Any, out: list[str]) -> list[str]:
    # containers: the C encoder when it gives the RFC 8785 form, else one level down
    # (a large document with a few floats stays mostly on the C encoder)
    if isinstance(value, dict | list | tuple):
        text = _fast(value)
        if text is not None:
            out.append(text)
        elif isinstance(value, dict):
            _members(value, out)
        else:
            out.append("[")
            for n, v in enumerate(value):
                if n:
                    out.append(",")
                _write(v, out)
            out.append("]")
    else:
        out.append(json_fragment(value))
    return out


def sha256_hex(text: str) -> str:
    """``"sha256:<hex>"`` of the UTF-8 bytes of ``text``."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(data: Any) -> str:
    """``"sha256:<hex>"`` of :func:`canonical_json` of ``data``.

    Raises:
        CanonicalizationError: as :func:`canonical_json`.
    """
    return sha256_hex(canonical_json(data))


_encode_str = json.encoder.encode_basestring  # RFC 8785 escaping: see key_fragment
_SURROGATE = re.compile("[\ud800-\udfff]")


def key_fragment(key: str) -> str:
    """The canonical JSON of a string: ``"`` + the text with ``"``, ``\\`` and control
    characters escaped (``\\n`` … or ``\\u00xx``, lowercase hex) + ``"``, other
    characters kept — RFC 8785 §3.2.2.2, which is what the standard library's
    non-ASCII string encoder writes."""
    return _encode_str(key)


def json_fragment(value: Any) -> str:
    """The canonical JSON of one value (as :func:`canonical_json`), with the common
    primitives encoded directly: flags values are compiled into hash fragments on a
    tenant's first run, so this must stay cheap.

    Raises:
        CanonicalizationError: as :func:`canonical_json`.
    """
    t = type(value)
    if t is str:
        if value.isascii() or _SURROGATE.search(value) is None:
            return _encode_str(value)
        raise CanonicalizationError("input contains non-UTF-8 codepoints (a lone surrogate)")
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return int.__repr__(value)  # beyond ±2**53 - 1: exact digits, see canonical_json
    if t is float:
        text = float.__repr__(value)
        # repr and ECMAScript agree on plain decimals; "1.0", "-0.0", "1e-07", "1e+16" differ
        if "e" not in text and not text.endswith(".0") and text[0] != "n" and text[-1] != "f":
            return text
        return rfc8785.dumps(value).decode("ascii")  # ECMAScript form; raises on NaN / inf
    if value is None:
        return "null"
    if isinstance(value, dict | list | tuple):
        return canonical_json(value)
    if isinstance(value, str):  # subclasses (a StrEnum …) as the standard encoder writes them
        return json_fragment(str.__str__(value))
    if isinstance(value, int):
        return json_fragment(int(value))
    if isinstance(value, float):
        return json_fragment(float(value))
    raise CanonicalizationError(f"{type(value).__name__} is not a JSON value")
