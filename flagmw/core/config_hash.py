"""The config hash of a RunConfig (``RunConfig.config_hash``): SHA-256 over the RFC 8785
canonical JSON of its values, built from the candidates' precompiled fragments, and the
0.1 form that pins written by flagmw 0.1 carry."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flagmw.core.candidate import Candidate
from flagmw.core.canonical import sha256_hex

__all__ = ["hash_candidates", "legacy_hash"]


def hash_candidates(candidates: Mapping[str, Candidate]) -> str:
    """``"sha256:" + hex(SHA-256(JCS(values)))`` of a RunConfig's candidates, from their
    precompiled RFC 8785 fragments (:attr:`Candidate.fragment`)."""
    # RFC 8785 orders members by the UTF-16 code units of their names. Flag keys are
    # ASCII (registry.KEY_PATTERN), where that is the code-point order Python sorts by,
    # and a RunConfig keeps its candidates sorted (the resolver starts from a sorted
    # base and only replaces entries; from_json sorts): the fragments join in order.
    return sha256_hex("{" + ",".join([c.fragment for c in candidates.values()]) + "}")


def legacy_hash(values: Any) -> str | None:
    """The 0.1 config hash (``json.dumps`` with sorted keys, Python float repr), so
    RunConfigs pinned by 0.1 still verify on resume. None when it cannot be built."""
    try:
        body = json.dumps(
            values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError):
        return None
    return "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()
