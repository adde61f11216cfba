"""Sticky bucketing: the one hash flagmw uses for rollouts and experiments.

Algorithm (stable; changing it reshuffles every rollout, so the tests pin test vectors)::

    bucket = murmur3_x86_32(f"{salt}:{unit_value}".encode("utf-8"), seed=0) as unsigned % 10_000

The bucket is in basis points, 0–9999. A rollout of ``percent`` p admits a unit when
``bucket < round(p * 100)``. An experiment lays its variants over 0–9999 in the order
they are written, each taking ``round(weight * 100)`` basis points; the unit gets the
variant whose range holds its bucket. With two variants, moving weight between them keeps
every unit of the growing variant inside it; what moves units is changing the written
order (which is why the normalised snapshot keeps ``weights`` as an ordered list, inside
the content hash). A rollout or experiment never applies to a context without its unit.

This is the scheme of Unleash and flagd (murmur3-32), with basis points as in Statsig.
The modulo bias of 2³² mod 10 000 is below 0.0003 %.
"""

from __future__ import annotations

from typing import Final

import mmh3

__all__ = ["BUCKETS", "UNIT_ATTRIBUTES", "bucket", "percent_to_bps"]

#: Number of buckets (basis points of 100 %).
BUCKETS: Final = 10_000

#: Bucketing unit → the context attribute that supplies its value.
UNIT_ATTRIBUTES: Final = {
    "user": "user_id",
    "tenant": "tenant_id",
    "thread": "thread_id",
    "run": "run_id",
}

_hash = mmh3.hash


def bucket(salt: str, unit_value: str) -> int:
    """The bucket (0–9999, basis points) of ``unit_value`` under ``salt``."""
    return _hash(f"{salt}:{unit_value}", 0, False) % BUCKETS


def percent_to_bps(percent: float) -> int:
    """A percentage (0–100, steps of 0.01) in basis points (0–10 000)."""
    return round(percent * 100)
