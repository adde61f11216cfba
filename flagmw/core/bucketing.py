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

**flagd-compatible bucketing** (``bucketing: flagd`` on a rollout or an experiment, see
``docs/flagd.md``) reproduces flagd's ``fractional`` operator (open-feature/flagd
``core/pkg/evaluator/fractional.go``; python-sdk-contrib ``openfeature-flagd-core``
``custom_ops.fractional``): the salt and the unit are concatenated *without* a separator
(flagd hashes ``flagKey + targetingKey`` by default) and the 32-bit hash is scaled rather
than reduced modulo::

    h = murmur3_x86_32(f"{salt}{unit_value}".encode("utf-8"), seed=0) as unsigned
    bucket = (h * 10_000) >> 32

so a flagd ``fractional`` over ``{"cat": [salt, {"var": "targetingKey"}]}`` with integer
weights in basis points (or any weights whose sum divides 10 000) assigns every unit the
variant flagmw assigns it.

**Identifiers are untrusted input** (a user id comes from a request). The unit value is
hashed as follows, so that no id can crash the process (the ``mmh3`` C extension
segfaults on a ``str`` holding a lone surrogate such as ``"\ud800"``) and every valid id
keeps its bucket:

* a ``str`` is hashed as its UTF-8 bytes — exactly what ``mmh3`` does with a valid
  ``str``, so the published test vectors hold; a lone surrogate (not valid Unicode, e.g. a
  badly decoded header) is encoded with ``surrogatepass`` (its 3-byte form): a stable
  bucket, no crash;
* an ``int`` (not ``bool``) is hashed as its decimal text: user ``42`` and ``"42"`` share
  a bucket;
* any other value (``bool``, ``float``, ``bytes``, a container …) is not an id: the
  rollout or experiment does not apply, as when the context lacks the unit.

:func:`unit_key` is the one place that applies the rule. Ids reach it through an
:class:`~flagmw.core.context.EvaluationContext`, which already normalises them when it is
built (a lone surrogate becomes its visible escape, an ``int`` or UUID its text, any other
value None), so a run resolved by ``client.resolve``, by ``flagmw explain --user`` and by a
wrapped graph gets the same bucket for the same id; the ``surrogatepass`` and ``int``
cases above keep a direct call of :func:`bucket` from crashing too.
"""

from __future__ import annotations

from typing import Final

import mmh3

__all__ = [
    "BUCKETING_MODES",
    "BUCKETS",
    "UNIT_ATTRIBUTES",
    "bucket",
    "percent_to_bps",
    "salt_prefix",
    "unit_key",
]

#: Number of buckets (basis points of 100 %).
BUCKETS: Final = 10_000

#: Bucketing unit → the context attribute that supplies its value.
UNIT_ATTRIBUTES: Final = {
    "user": "user_id",
    "tenant": "tenant_id",
    "thread": "thread_id",
    "run": "run_id",
}

#: The bucketing modes: ``flagmw`` (``"{salt}:{unit}"``, modulo) and ``flagd``
#: (``"{salt}{unit}"``, scaled: flagd's ``fractional``).
BUCKETING_MODES: Final = ("flagmw", "flagd")

_hash = mmh3.hash


def salt_prefix(salt: str, mode: str = "flagmw") -> str:
    """What precedes the unit in the hashed text: ``"{salt}:"`` in flagmw mode, the
    salt alone in flagd mode."""
    return salt if mode == "flagd" else salt + ":"


def unit_key(prefix: str, unit: object) -> str | bytes | None:
    """What is hashed for ``unit`` after ``prefix`` (``"<salt>:"``): the text itself
    when it is plain ASCII (the fast path), its UTF-8 bytes otherwise (lone surrogates
    with ``surrogatepass``), an ``int``'s decimal text; None for a value that is not an
    id (see the module docs)."""
    if type(unit) is str:
        text = prefix + unit
        return text if text.isascii() else text.encode("utf-8", "surrogatepass")
    if isinstance(unit, str):  # a str subclass
        return unit_key(prefix, str.__str__(unit))
    if isinstance(unit, int) and not isinstance(unit, bool):
        return unit_key(prefix, int.__repr__(unit))
    return None


def bucket(salt: str, unit_value: object, mode: str = "flagmw") -> int:
    """The bucket (0–9999, basis points) of ``unit_value`` under ``salt``.

    Args:
        mode: ``"flagmw"`` (the default scheme) or ``"flagd"`` (flagd's ``fractional``;
            see the module docs).

    Raises:
        TypeError: ``unit_value`` is not an id (a ``str`` or an ``int``).
    """
    key = unit_key(salt_prefix(salt, mode), unit_value)
    if key is None:
        raise TypeError(f"not a bucketing unit (str or int): {type(unit_value).__name__}")
    h = _hash(key, 0, False)
    return (h * BUCKETS) >> 32 if mode == "flagd" else h % BUCKETS


def percent_to_bps(percent: float) -> int:
    """A percentage (0–100, steps of 0.01) in basis points (0–10 000)."""
    return round(percent * 100)
