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
from typing import Any

import rfc8785

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "canonical_json",
    "content_hash",
    "json_fragment",
    "key_fragment",
    "sha256_hex",
]

#: The largest integer every JSON reader holds exactly (an IEEE 754 double's 2**53 − 1);
#: RFC 8785 assumes I-JSON, whose integers stay within ±MAX_SAFE_INTEGER.
MAX_SAFE_INTEGER = 2**53 - 1

#: Raised (a ``ValueError``) for data JSON cannot represent: a non-finite float, a lone
#: surrogate, a non-string object key, a non-JSON type.
CanonicalizationError = rfc8785.CanonicalizationError

_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode

# The C encoder's output is RFC 8785 unless it holds a float (a number token with a
# '.' or an exponent), an integer of 16 digits or more (maybe beyond 2**53 - 1), or a
# character at or above U+D800 (surrogates; keys that UTF-16 orders differently from
# code points). A string may contain text that looks like such a number: that only
# sends it to the slow path, never the other way round.
_NOT_FAST = re.compile(r"(?:^|[:\[,])-?\d+[.eE]|(?:^|[:\[,])-?\d{16}|[\ud800-\U0010ffff]")


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
    try:
        text = _dumps(data)
    except (TypeError, ValueError):
        text = None
    if text is not None and _NOT_FAST.search(text) is None:
        return text
    return "".join(_slow(data, []))


def _slow(value: Any, out: list[str]) -> list[str]:
    """RFC 8785 through ``rfc8785`` for strings and floats, exact digits for integers."""
    if isinstance(value, dict):
        try:
            items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16be"))
        except (AttributeError, UnicodeEncodeError):
            raise CanonicalizationError(
                "object keys must be strings without lone surrogates"
            ) from None
        out.append("{")
        for i, (k, v) in enumerate(items):
            if i:
                out.append(",")
            out.append(_scalar(k))
            out.append(":")
            _slow(v, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _slow(v, out)
        out.append("]")
    else:
        out.append(_scalar(value))
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value)
    if value is None or isinstance(value, str | bool | float):
        return rfc8785.dumps(value).decode("utf-8")
    raise CanonicalizationError(f"{type(value).__name__} is not a JSON value")


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
        if _SURROGATE.search(value) is None:
            return _encode_str(value)
        return canonical_json(value)  # raises: a lone surrogate is not UTF-8
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return int.__repr__(value)  # beyond ±2**53 - 1: exact digits, see canonical_json
    if t is float:
        text = float.__repr__(value)
        # repr and ECMAScript agree on plain decimals; "1.0", "-0.0", "1e-07", "1e+16" differ
        if "e" not in text and not text.endswith(".0") and text[0] != "n" and text[-1] != "f":
            return text
        return canonical_json(value)
    if value is None:
        return "null"
    return canonical_json(value)
