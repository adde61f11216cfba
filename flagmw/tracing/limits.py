"""The span attribute-count limit the trace writer fits its attributes under.

OpenTelemetry has no public API to read the limits of a span or of a tracer provider
(the SDK keeps them in private fields), so flagmw takes the limit from public sources
only, in this order:

1. ``RunTracer(span_limits=...)``: the :class:`opentelemetry.sdk.trace.SpanLimits` you
   also gave your ``TracerProvider(span_limits=...)``;
2. otherwise a fresh ``SpanLimits()``, which is what a ``TracerProvider()`` built without
   limits uses: ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT``, else ``OTEL_ATTRIBUTE_COUNT_LIMIT``,
   else 128 (the specification's default);
3. 128 when the SDK is not installed (the default of every SDK that follows the
   specification).

When a provider's real limit is lower than the one used here, the SDK evicts the
*oldest* attributes (per-flag ones first; run-level attributes are re-set last) and the
writer logs one warning naming the option to set.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from opentelemetry.sdk.trace import SpanLimits

__all__ = ["DEFAULT_ATTRIBUTE_LIMIT", "attribute_limit", "warn_if_evicted"]

log = logging.getLogger("flagmw.tracing")

#: The specification's default attribute-count limit per span.
DEFAULT_ATTRIBUTE_LIMIT = 128


def attribute_limit(span_limits: SpanLimits | None) -> int | None:
    """The attribute-count limit per span (None: unlimited) from ``span_limits``, or
    from a default ``SpanLimits()`` (environment variables) when None."""
    limits: Any = span_limits
    if limits is None:
        try:
            from opentelemetry.sdk.trace import SpanLimits
        except ImportError:  # API only: no SDK span, follow the specification's default
            return DEFAULT_ATTRIBUTE_LIMIT
        limits = SpanLimits()
    value = limits.max_span_attributes
    if value is None:
        return None  # SpanLimits(max_span_attributes=SpanLimits.UNSET): unlimited
    return int(value)


def warn_if_evicted(span: Any, limit: int | None) -> bool:
    """Log one warning when the SDK evicted attributes from ``span`` (its public
    ``dropped_attributes`` count) right after flagmw wrote its own: the provider allows
    fewer attributes per span than ``limit``. Returns True when it warned."""
    dropped = getattr(span, "dropped_attributes", 0)
    if not isinstance(dropped, int) or dropped <= 0:
        return False
    log.warning(
        "flagmw: the span of a run dropped %d attribute(s) (the oldest, per-flag ones "
        "first): its tracer provider allows fewer attributes per span than the %s flagmw "
        "fitted to; pass RunTracer(span_limits=<the provider's SpanLimits>)",
        dropped,
        limit,
    )
    return True
