"""flagd's ``fractional`` operator, written from its specification and implementations.

Sources (read 2026-12, both agree): open-feature/flagd ``core/pkg/evaluator/fractional.go``
(``Fractional.Evaluate``, ``parseFractionalEvaluationData``, ``distributeValue``) and
open-feature/python-sdk-contrib ``tools/openfeature-flagd-core`` ``custom_ops.fractional``.

* **Bucketing key.** When the first argument is a string (the evaluated bucketing
  expression, e.g. ``{"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]}``) it is the
  key; otherwise (the shorthand) the key is ``flagKey + targetingKey``, concatenated with
  no separator, and a context without a ``targetingKey`` gives null.
* **Hash.** ``h = murmur3_x86_32(key as UTF-8, seed 0)``, unsigned.
* **Distribution.** Every other argument is ``[variant]`` or ``[variant, weight]``
  (weight: a non-negative integer, default 1, the sum at most 2³¹ − 1); the bucket is
  ``(h * total_weight) >> 32`` and the variant is the first whose cumulative weight
  exceeds it. A total weight of 0 gives ``""``.

Older flagd releases (before the high-precision change of 2025) computed
``int(abs(int32(h)) / MaxInt32 * 100)`` over percentages; files evaluated by those
releases bucket differently (see ``docs/flagd.md``).

flagmw's own scheme, ``bucketing: flagd`` (:mod:`flagmw.core.bucketing`), is this one with
the weights in basis points, so the two agree unit for unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import mmh3

__all__ = ["MAX_WEIGHT_SUM", "distribute", "flagd_hash", "fractional_bucket"]

#: The largest total weight flagd accepts (MaxInt32).
MAX_WEIGHT_SUM: Final = 2_147_483_647


def flagd_hash(key: str) -> int:
    """murmur3_x86_32 of ``key``'s UTF-8 bytes, seed 0, unsigned (0 … 2³² − 1); a lone
    surrogate is hashed in its ``surrogatepass`` form (as flagmw does) instead of crashing."""
    try:
        data = key.encode("utf-8")
    except UnicodeEncodeError:
        data = key.encode("utf-8", "surrogatepass")
    return int(mmh3.hash(data, 0, False))


def fractional_bucket(key: str, total_weight: int) -> int:
    """The bucket of ``key`` among ``total_weight`` (``0 … total_weight − 1``)."""
    return (flagd_hash(key) * total_weight) >> 32


def distribute(key: str, distribution: Sequence[tuple[Any, int]]) -> Any:
    """The variant flagd's ``fractional`` gives ``key``.

    Args:
        key: the bucketing key (already evaluated).
        distribution: ``(variant, weight)`` pairs in the order written; weights are
            non-negative integers.

    Returns:
        the chosen variant; ``""`` when every weight is 0 (as flagd does).

    Raises:
        ValueError: a negative weight, or a total above :data:`MAX_WEIGHT_SUM`.
    """
    total = 0
    for _, weight in distribution:
        if weight < 0:
            raise ValueError(f"negative weight {weight}")
        total += weight
    if total > MAX_WEIGHT_SUM:
        raise ValueError(f"sum of weights {total} exceeds {MAX_WEIGHT_SUM}")
    if total == 0:
        return ""
    bucket = fractional_bucket(key, total)
    end = 0
    for variant, weight in distribution:
        end += weight
        if bucket < end:
            return variant
    return ""  # unreachable: bucket < total
