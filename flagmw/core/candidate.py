"""Candidate: one precompiled value a layer offers for one key (value, provenance,
hash fragment), and the JSON copy that reads of mutable values use."""

from __future__ import annotations

from typing import Any, NamedTuple

from flagmw.core.canonical import json_fragment, key_fragment
from flagmw.core.provenance import Provenance

__all__ = ["Candidate", "copy_json", "make_candidate"]


class Candidate(NamedTuple):
    """A value a layer offers for one key, precompiled.

    Attributes:
        value: the value (JSON primitives, lists, mappings).
        provenance: where it comes from.
        fragment: its RFC 8785 member ``"key":value`` (:mod:`flagmw.core.canonical`),
            from which a RunConfig's ``config_hash`` is joined without re-encoding.
        mutable: True for lists and mappings: reads return copies.
    """

    value: Any
    provenance: Provenance
    fragment: str
    mutable: bool


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (lists, dicts, primitives) — several times faster than
    ``copy.deepcopy``; every read of a json flag from a RunConfig returns one."""
    t = type(value)
    if t is list:
        return [copy_json(v) if type(v) in _CONTAINERS else v for v in value]
    if t is dict:
        return {k: copy_json(v) if type(v) in _CONTAINERS else v for k, v in value.items()}
    return value


_CONTAINERS = (list, dict)


def make_candidate(key: str, value: Any, provenance: Provenance) -> Candidate:
    """Build a :class:`Candidate` (computes the hash fragment once).

    Raises:
        CanonicalizationError: ``value`` is not representable in RFC 8785 (validation
            of registries and snapshots refuses such values first).
    """
    return Candidate(
        value, provenance, f"{key_fragment(key)}:{json_fragment(value)}", type(value) in _CONTAINERS
    )
