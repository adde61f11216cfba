"""The pin: the stored form of a run's RunConfig — :func:`encode_pin` /
:func:`decode_pin`, format ``flagmw.pin/2`` with an integrity digest over RFC 8785
canonical JSON (HMAC-SHA256 with ``FLAGMW_PIN_KEY``). Where it lives in a thread and how
a resume finds it: :mod:`flagmw.langgraph.pin_store` (re-exported here)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import rfc8785

from flagmw.core.candidate import Candidate
from flagmw.core.canonical import canonical_json, canonical_json_small, json_fragment
from flagmw.core.context import WELL_KNOWN_ATTRIBUTES, EvaluationContext
from flagmw.core.provenance import Layer, Provenance
from flagmw.core.runconfig import FORMAT as RUNCONFIG_FORMAT
from flagmw.core.runconfig import RunConfig
from flagmw.errors import IntegrityError
from flagmw.langgraph.keys import PIN_FORMAT
from flagmw.langgraph.pin_store import _Found as _Found  # re-exported: wrap, lifecycle
from flagmw.langgraph.pin_store import afind_pin, find_pin

__all__ = [
    "LEGACY_PIN_FORMAT",
    "PIN_KEY_ENV",
    "afind_pin",
    "decode_pin",
    "encode_pin",
    "find_pin",
    "pin_digest",
]

#: The environment variable holding the optional pin signing key (any string; its UTF-8
#: bytes are the HMAC-SHA256 key).
PIN_KEY_ENV = "FLAGMW_PIN_KEY"
#: The 0.1 pin format: no digest; read (when no key is configured), never written.
LEGACY_PIN_FORMAT = "flagmw.pin/1"

_SHA256 = "sha256:"
_HMAC = "hmac-sha256:"


def _key(key: str | bytes | None) -> bytes | None:
    """The signing key: ``key`` when given, else ``$FLAGMW_PIN_KEY``; None when neither
    is set (or it is empty)."""
    if key is None:
        key = os.environ.get(PIN_KEY_ENV)
    if not key:
        return None
    return key.encode("utf-8") if isinstance(key, str) else key


def pin_digest(payload: bytes, key: bytes | None) -> str:
    """The pin's ``digest`` member for ``payload`` (the RFC 8785 canonical JSON of the pin
    without its ``digest`` member, UTF-8): ``"sha256:<64 hex>"`` without key,
    ``"hmac-sha256:<64 hex>"`` (HMAC-SHA256, RFC 2104) with one."""
    if key is None:
        return _SHA256 + hashlib.sha256(payload).hexdigest()
    return _HMAC + hmac.new(key, payload, hashlib.sha256).hexdigest()


# -- RFC 8785 canonical JSON ----------------------------------------------------------
# The digest is computed over RFC 8785 (JCS) canonical JSON, so any language can check it.
# JCS and the compact JSON flagmw writes agree on strings, true/false/null, integers and
# the order of ASCII keys; they differ on floats (ES6 number form: 1.0 → 1, 1e-05 →
# 0.00001; the rfc8785 library formats them) and on the order of non-ASCII keys (UTF-16
# code units). One extension: an integer beyond ±(2**53 - 1), which RFC 8785 cannot
# represent, is written as its exact decimal digits (the rfc8785 library refuses it).
# tests/test_pin.py checks it against the library for every other value.


_encode_str = json.encoder.encode_basestring  # ensure_ascii=False form of a JSON string


#: RFC 8785 canonical JSON with flagmw's one extension (exact digits for integers beyond
#: ±(2**53 - 1)): the core's encoder, which also computes config and content hashes
_jcs = canonical_json
#: the same for the small members of a pin (context, override ids, variants): one pass of
#: the C encoder when its output is already the RFC 8785 form
_jcs_small = canonical_json_small


def _provenance_jcs(groups: Iterable[tuple[Provenance, list[str]]]) -> str:
    """``[[provenance, [keys…]], …]`` as JCS, equal provenances merged into one group."""
    merged: dict[str, list[str]] = {}
    for prov, names in groups:
        hit = _PROVENANCE_JCS.get(id(prov))
        if hit is not None and hit[0] is prov:
            head = hit[1]
        else:
            if len(_PROVENANCE_JCS) >= 1024:
                _PROVENANCE_JCS.clear()
            head = _jcs(prov.to_dict())
            _PROVENANCE_JCS[id(prov)] = (prov, head)
        group = merged.get(head)
        if group is None:
            merged[head] = names
        else:
            merged[head] = group + names
    parts = [f"[{head},[{','.join(map(_encode_str, names))}]]" for head, names in merged.items()]
    return "[" + ",".join(parts) + "]"


# id(provenance) → (provenance, its JCS form): runs share a handful of provenance objects
# (the snapshot rev, a tenant, an override); the entry holds the object, so its id cannot
# be reused while cached
_PROVENANCE_JCS: dict[int, tuple[Provenance, str]] = {}


# id(candidate) → (candidate, its "key":value in RFC 8785 form), for the values whose
# compact JSON is not already that (floats, lists, mappings). Candidates are shared by
# the runs resolved against one snapshot; the entry holds the candidate, so its id cannot
# be reused while cached.
_FRAGMENTS: dict[int, tuple[Candidate, str]] = {}


def _jcs_fragment(name: str, cand: Candidate) -> str:
    hit = _FRAGMENTS.get(id(cand))
    if hit is not None and hit[0] is cand:
        return hit[1]
    fragment = f"{_encode_str(name)}:{_jcs(cand.value)}"
    if len(_FRAGMENTS) >= 4096:
        _FRAGMENTS.clear()
    _FRAGMENTS[id(cand)] = (cand, fragment)
    return fragment


# -- encoding -------------------------------------------------------------------------


def _members_of(rc: RunConfig) -> tuple[str, str, str]:
    """``(values as JCS, values as stored, provenance)`` members of a pin: encoded once
    per audience (the runs resolved from the very same candidates share them through
    :attr:`RunConfig.memo <flagmw.core.runconfig.RunConfig.memo>`), so a new run
    re-encodes only its context."""
    memo = rc.memo
    members: tuple[str, str, str] | None = memo.get("pin")
    if members is None:
        members = memo["pin"] = _encode_members(rc.candidates)
    return members


def _encode_members(candidates: Mapping[str, Candidate]) -> tuple[str, str, str]:
    # Built from the RunConfig's precompiled JSON fragments rather than to_dict() +
    # json.dumps: this runs on the critical path of a new run (once per audience).
    groups: dict[int, tuple[Provenance, list[str]]] = {}
    last: Provenance | None = None
    names: list[str] = []
    frags: list[str] = []
    odd: dict[int, str] | None = None  # position → stored form, where it is not the JCS one
    previous = ""
    ordered = True  # RFC 8785 order: RunConfig keeps its keys sorted, flag keys are ASCII
    for name, cand in candidates.items():
        if name <= previous or not name.isascii():
            ordered = False
        previous = name
        value = cand.value
        t = type(value)
        if t is str or t is bool or t is int or value is None:
            frags.append(cand.fragment)
        else:
            if odd is None:
                odd = {}
            # the stored form keeps Python's float text, also inside a json value: the
            # RFC 8785 form writes 5.077929799959558e16 as 50779297999595580, which reads
            # back as a different (int) number; the digest covers the JCS form either way
            odd[len(frags)] = (
                f"{_encode_str(name)}:{float.__repr__(value)}"
                if t is float
                else f"{_encode_str(name)}:{_ENCODER.encode(value)}"
            )
            frags.append(_jcs_fragment(name, cand))
        prov = cand.provenance
        if prov is not last:
            if prov.layer is Layer.DEFAULT:
                continue
            last = prov
            group = groups.get(id(prov))
            if group is None:
                groups[id(prov)] = group = (prov, [])
            names = group[1]
        names.append(name)
    provenance = _provenance_jcs(groups.values())
    jcs_values_text = (
        "{" + ",".join(frags) + "}"
        if ordered
        else _jcs({name: cand.value for name, cand in candidates.items()})
    )
    if odd is not None:
        for i, text in odd.items():
            frags[i] = text
    text_values_text = jcs_values_text if odd is None else "{" + ",".join(frags) + "}"
    return jcs_values_text, text_values_text, provenance


#: The context's id fields in RFC 8785 member order (their names are ASCII): the
#: member's ``"name":`` and the field's index in the context tuple.
_CONTEXT_FIELDS: tuple[tuple[str, int], ...] = tuple(
    (f'"{name}":', EvaluationContext._fields.index(name)) for name in sorted(WELL_KNOWN_ATTRIBUTES)
)


def _context_jcs(ctx: EvaluationContext) -> str:
    """``ctx.to_dict()`` in RFC 8785 form. A context of id fields only (the wrapper's
    default) is written field by field: a str without lone surrogates (which the context
    escapes) encodes as RFC 8785 does with the standard library's C string encoder
    (``"``, ``\\`` and control characters escaped, the rest as it is); free attributes
    go through the general writer."""
    if ctx.attributes:
        return _jcs_small(ctx.to_dict())
    parts = []
    for member, index in _CONTEXT_FIELDS:
        value = ctx[index]
        if value is not None:
            if type(value) is not str:  # pragma: no cover - the constructor makes text
                return _jcs_small(ctx.to_dict())
            parts.append(member + _encode_str(value))
    return "{" + ",".join(parts) + "}"


# one encoder: json.dumps with options builds a new JSONEncoder at every call
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_pin(rc: RunConfig, *, key: str | bytes | None = None) -> str:
    """The form of a RunConfig stored in the checkpoint: ``RunConfig.to_dict()`` with
    ``format: "flagmw.pin/2"``, the provenance grouped — a list of ``[provenance,
    [keys…]]`` instead of one provenance object per key — and a ``digest``, as compact
    JSON text (≈2.5 KB for 50 flags).

    ``digest`` covers every other member (context, environment, snapshot rev and hash,
    override ids, variants, provenance, values, changes, config hash):
    ``"sha256:" + hex(SHA-256(P))``, or with a key ``"hmac-sha256:" +
    hex(HMAC-SHA256(key, P))``, where ``P`` is the UTF-8 RFC 8785 canonical JSON of the
    pin without ``digest`` (docs/langgraph.md has the algorithm and a test vector).

    Args:
        rc: the RunConfig to pin.
        key: the signing key; default ``$FLAGMW_PIN_KEY`` (unset: an unkeyed digest).

    """
    head_jcs, head_text, mid, tail_jcs, tail_text = _pieces(rc)
    # the context in its JCS form in the stored text too: it is what the digest covers,
    # and a float attribute read back as an int (1.0 → 1) compares equal
    context = _context_jcs(rc.context)
    # resolved_at: the stored text keeps Python's float form; the digest covers its JCS
    # form, which is the same text unless it has an exponent or ends in ".0"
    at_text = float.__repr__(float(rc.resolved_at))
    at_jcs = (
        at_text
        if "e" not in at_text and not at_text.endswith(".0") and at_text[-1] not in "fn"
        else json_fragment(rc.resolved_at)
    )
    payload = "".join((head_jcs, context, ",", mid, at_jcs, tail_jcs))
    digest = pin_digest(payload.encode("utf-8", "surrogatepass"), _key(key))
    # "digest" goes between context and environment in the stored text
    return "".join((head_text, context, ',"digest":"', digest, '",', mid, at_text, tail_text))


def _pieces(rc: RunConfig) -> tuple[str, str, str, str, str]:
    """The pin around its context and ``resolved_at``, in RFC 8785 member order (keys
    sorted): ``(head as JCS, head as stored, middle, tail as JCS, tail as stored)`` —
    changes, config hash and ``"context":``; environment … ``"resolved_at":``;
    snapshot, values and variants. Without hot changes (every new run) they are the
    same for every run of an audience and kept in :attr:`RunConfig.memo`, with the
    fields they depend on besides the candidates."""
    ids = rc.override_ids
    variants = rc.variants
    fields = (
        rc.environment,
        ids,
        rc.snapshot_hash,
        rc.snapshot_rev,
        tuple(variants.items()) if variants else (),
    )
    if not rc.changes:
        memo = rc.memo
        hit = memo.get("pin_pieces")
        if hit is not None and hit[0] == fields:
            pieces: tuple[str, str, str, str, str] = hit[1]
            return pieces
    jcs_values_text, text_values_text, provenance = _members_of(rc)
    config_hash = f'"config_hash":{_encode_str(rc.config_hash)},"context":'
    if rc.changes:
        changes = [ch.to_dict() for ch in rc.changes]
        head_jcs = f'{{"changes":{_jcs(changes)},{config_hash}'
        head_text = f'{{"changes":{_ENCODER.encode(changes)},{config_hash}'
    else:
        head_jcs = head_text = "{" + config_hash
    mid = (
        f'"environment":{_encode_str(rc.environment)},"format":"{PIN_FORMAT}",'
        f'"override_ids":{_jcs_small(list(ids)) if ids else "[]"},"provenance":{provenance},'
        '"resolved_at":'
    )
    tail = (
        f',"snapshot_hash":{json_fragment(rc.snapshot_hash)},'
        f'"snapshot_rev":{json_fragment(rc.snapshot_rev)},"values":'
    )
    end = f',"variants":{_jcs_small(dict(variants)) if variants else "{}"}}}'
    pieces = (
        head_jcs,
        head_text,
        mid,
        tail + jcs_values_text + end,
        tail + text_values_text + end,
    )
    if not rc.changes:
        memo["pin_pieces"] = (fields, pieces)
    return pieces


def decode_pin(text: str | Mapping[str, Any], *, key: str | bytes | None = None) -> RunConfig:
    """Inverse of :func:`encode_pin`: verifies the digest, then the ``config_hash``.

    Also accepts the 0.1 form (``flagmw.pin/1``, no digest) and a plain
    ``RunConfig.to_json()`` form — only while no key is configured.

    Args:
        text: the stored pin (JSON text or its parsed mapping).
        key: the signing key; default ``$FLAGMW_PIN_KEY``.

    Raises:
        IntegrityError: not a pin, malformed, its digest does not match (anything in it
            was altered: tenant, snapshot rev, an override id, a value …), it is not
            signed while a key is configured, it is signed while none is, or its
            ``config_hash`` does not match its values.
    """
    data: Any = text
    if isinstance(text, str):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IntegrityError(f"stored pin is not valid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise IntegrityError("stored pin is not a JSON object")
    secret = _key(key)
    fmt = data.get("format")
    if fmt == PIN_FORMAT:
        _verify(data, secret)
    elif fmt in (LEGACY_PIN_FORMAT, RUNCONFIG_FORMAT) and secret is not None:
        raise IntegrityError(
            f"stored pin ({fmt}) carries no signature and {PIN_KEY_ENV} is set: refused"
        )
    if fmt in (PIN_FORMAT, LEGACY_PIN_FORMAT):
        groups: Any = data.get("provenance")
        try:
            provenance = {name: dict(prov) for prov, names in groups for name in names}
        except (TypeError, ValueError) as exc:
            raise IntegrityError(f"stored pin has malformed provenance: {exc!r}") from None
        data = {**data, "format": RUNCONFIG_FORMAT, "provenance": provenance}
        data.pop("digest", None)
    return RunConfig.from_json(data)


def _verify(data: Mapping[str, Any], secret: bytes | None) -> None:
    digest = data.get("digest")
    if not isinstance(digest, str):
        raise IntegrityError("stored pin has no digest")
    if secret is not None and not digest.startswith(_HMAC):
        raise IntegrityError(f"stored pin is not signed and {PIN_KEY_ENV} is set: refused")
    if secret is None and digest.startswith(_HMAC):
        raise IntegrityError(
            f"stored pin is signed (hmac-sha256) but no key is configured: set {PIN_KEY_ENV}"
        )
    body = {k: v for k, v in data.items() if k != "digest"}
    try:
        payload = _jcs(body).encode("utf-8", "surrogatepass")
    except rfc8785.CanonicalizationError as exc:
        raise IntegrityError(f"stored pin cannot be canonicalized: {exc}") from None
    if not hmac.compare_digest(digest, pin_digest(payload, secret)):
        what = "signature" if secret is not None else "digest"
        raise IntegrityError(
            f"stored pin's {what} does not match its content: the pin was altered "
            "(context, snapshot rev, override ids, values …)"
            + (" or signed with another key" if secret is not None else "")
        )
